"""What each subcommand does, once the command line is parsed; output through rich."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import cross_entropy, diagnose, focal_loss, value_and_grad
from .._lib._registry import entry
from .._misuse import Finding, loss_arrays
from ._curves import PlotSettings
from ._explain import Explanation, explain, finding_json
from ._inputs import UsageError, loss_options
from ._plot import plot_learning_curves, plot_losses
from ._tour import tour
from ._wine import History, softmax_mse, train

__all__ = ["TOUR_FIGURES", "run"]

TOUR_FIGURES = {
    "classification.png": ("cross_entropy", "focal_loss", "mse_on_probabilities"),
    "regression.png": ("l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss"),
    "binary_cross_entropy.png": ("binary_cross_entropy",),
}
"""The figures ``losskit tour`` writes: file name -> the curves drawn."""


def _console() -> Console:
    return Console(highlight=False)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _array_text(value: Any) -> str:
    return np.array2string(np.asarray(value), precision=6, separator=", ", max_line_width=72)


def _floating(array: np.ndarray) -> np.ndarray:
    """Arrays of numbers typed as integers (``[[1, 0]]``) as float64."""
    return array if array.dtype.kind == "f" else array.astype(np.float64)


def _loss_call(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """The input, target and the options given (those left at their default are not passed);
    the margin losses' centres among the options, as ``explain`` and ``diagnose`` take them."""
    x, options = _floating(args.input), {}
    if x.size == 0:  # no number, or no class: the losses divide by the count of classes
        raise UsageError(f"--input must hold at least one number, got an array of shape {x.shape}")
    if "centers" in vars(args):
        options["centers"] = _floating(args.centers)
    for option in loss_options(entry(args.loss)):
        value = getattr(args, option.name)
        if isinstance(value, np.ndarray):
            options[option.name] = value.item() if value.ndim == 0 else value
        elif value != option.default:
            options[option.name] = value
    return x, getattr(args, "target", None), options


def _print_json(value: Any) -> None:
    # strict JSON: the callers spell NaN and infinities as null, "inf" and "-inf"
    print(json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False))


def _finding_text(finding: Finding) -> Text:
    value = (
        "(cannot be evaluated)"
        if finding.intended_value is None
        else _array_text(finding.intended_value)
    )
    return Text.assemble(
        (f"{finding.code}: ", "bold yellow"),
        finding.message,
        ("\n  fix: ", "bold"),
        finding.fix,
        ("\n  probably meant: ", "bold"),
        f"{finding.intended_call} = {value}",
    )


def _explained(args: argparse.Namespace) -> Explanation:
    """The explanation of the call given; the loss's own refusal of it as a usage error."""
    x, t, options = _loss_call(args)
    try:
        return explain(args.loss, x, t, **options)
    except (ValueError, TypeError) as error:
        hints = "".join(f" [{f.code}: {f.fix}]" for f in diagnose(args.loss, x, t, **options))
        raise UsageError(_one_line(error) + hints) from None


def _explain_command(args: argparse.Namespace) -> int:
    explanation = _explained(args)
    if args.json:
        _print_json(explanation.to_json())
    else:
        _render_explanation(_console(), explanation)
    return 0


def _reduction_row(e: Explanation) -> tuple[str, str, str]:
    if e.reduction == "none":
        return "reduction 'none'", "one loss per position", ""
    if e.denominator is None:
        return "reduction 'sum'", "Σ ℓ", f"{e.numerator:.6g}"
    with np.errstate(divide="ignore", invalid="ignore"):  # D = 0 gives nan (or inf), as torch
        mean = np.float64(e.numerator) / e.denominator
    # A count in full (1234567, not 1.23457e+06); a sum of weights to 6 digits.
    d = f"{e.denominator:.0f}" if float(e.denominator).is_integer() else f"{e.denominator:.6g}"
    return (
        f"reduction {e.reduction!r}",
        f"Σ ℓ / D, D = {e.denominator_is}",
        f"{e.numerator:.6g} / {d} = {mean:.6g}",
    )


def _render_explanation(console: Console, e: Explanation) -> None:
    console.print(Text(e.call, style="bold"))
    console.print(Text.assemble(("loss  ", "bold"), f"ℓ = {e.formula}"))
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("step", max_width=22)
    table.add_column("formula", max_width=34)
    table.add_column("value", overflow="fold")
    for step in e.steps:
        table.add_row(Text(step.label), Text(step.formula), Text(_array_text(step.value)))
    table.add_row(Text("loss per position"), Text("ℓ"), Text(_array_text(e.per_position)))
    table.add_row(*(Text(cell) for cell in _reduction_row(e)), style="bold")
    if e.ignored:
        table.caption = "nan marks a position that ignore_index skips"
    console.print(table)
    console.print(
        Text.assemble(("value     ", "bold"), _array_text(e.value), f"   (losskit.{e.loss})")
    )
    console.print(
        Text.assemble(("gradient  ", "bold"), f"∂ {e.gradient_of} / ∂ input = {e.gradient_formula}")
    )
    console.print(Text(_array_text(e.gradient)))
    for finding in e.findings:
        console.print(_finding_text(finding))


def _refusal(loss: str, x: np.ndarray, t: np.ndarray | None, options: dict[str, Any]) -> str | None:
    """The loss's own refusal of the call, in one line; ``None`` when it takes the call."""
    found = entry(loss)
    arrays, rest = loss_arrays("check", found, x, t, options)  # type: ignore[arg-type]
    try:
        found.function(*arrays, **rest)  # type: ignore[union-attr]
    except (ValueError, TypeError) as error:
        return _one_line(error)
    return None


def _check_command(args: argparse.Namespace) -> int:
    x, t, options = _loss_call(args)
    findings = diagnose(args.loss, x, t, **options)
    refusal = _refusal(args.loss, x, t, options)
    if not findings and refusal is not None:  # a usage error, not "no problems"
        raise UsageError(refusal)
    if args.json:
        _print_json([finding_json(f) for f in findings])
    else:
        console = _console()
        for finding in findings:
            console.print(_finding_text(finding))
        if not findings:
            console.print(f"{args.loss}: no problems found")
    if refusal is not None:  # with findings: the loss's own refusal, which they may not explain
        print(f"losskit check {args.loss}: the loss refuses this call: {refusal}", file=sys.stderr)
    return 1 if findings else 0


def _write(draw: Callable[[], Path]) -> Path:
    """Run a figure writer, turning file-system errors into one-line usage errors."""
    try:
        return draw()
    except OSError as error:
        raise UsageError(f"cannot write the figure: {_one_line(error)}") from None


def _require_png(path: Path) -> None:
    """Refuse an ``--out`` other than a PNG file: matplotlib would pick the format by the
    suffix, or add ``.png`` to a file name without one."""
    if path.suffix.lower() != ".png":
        raise UsageError(f"--out must name a .png file, got {path}")


def _plot_command(args: argparse.Namespace) -> int:
    _require_png(args.out)
    settings = PlotSettings(
        gammas=tuple(args.gamma),
        alpha=args.alpha,
        delta=args.delta,
        beta=args.beta,
        fallbacks=tuple(args.fallback),
        lambdas=tuple(args.lambdas),
    )
    try:
        path = _write(lambda: plot_losses(args.losses, args.out, settings))
    except ValueError as error:  # an option the losses refuse, e.g. a negative gamma
        raise UsageError(_one_line(error)) from None
    _console().print(f"wrote {path}")
    return 0


def _tour_command(args: argparse.Namespace) -> int:
    console = _console()

    def styled(line: str) -> None:
        text = Text(line, style="" if line.startswith(" ") else "bold")
        text.highlight_words(["WRONG"], "bold red")
        text.highlight_words(["right)"], "green")
        console.print(text, soft_wrap=True)

    tour(styled)
    if args.no_figures:
        return 0
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {args.out_dir}: {_one_line(error)}") from None
    for name, curves in TOUR_FIGURES.items():
        path = _write(functools.partial(plot_losses, curves, args.out_dir / name))
        console.print(f"figure: {path}  ({', '.join(curves)})", soft_wrap=True)
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    _require_png(args.out)  # before the training, which takes a while
    objectives = {
        "cross-entropy": value_and_grad(cross_entropy),
        "MSE on probabilities": softmax_mse,
        "focal loss, γ=2": functools.partial(value_and_grad(focal_loss), gamma=2.0),
    }
    histories: dict[str, History] = {
        label: train(
            objective, epochs=args.epochs, learning_rate=args.learning_rate, seed=args.seed
        )
        for label, objective in objectives.items()
    }
    table = Table(
        title=f"softmax regression on the wine data, {args.epochs} epochs, "
        f"learning rate {args.learning_rate:g}"
    )
    for column in (
        "loss",
        f"epochs to {args.accuracy:.0%} train accuracy",
        "final test accuracy",
        "final loss",
    ):
        table.add_column(column, justify="left" if column == "loss" else "right")
    for label, history in histories.items():
        reached = history.epochs_to(args.accuracy)
        table.add_row(
            label,
            "not reached" if reached is None else str(reached),
            f"{history.test_accuracy[-1]:.3f}",
            f"{history.loss[-1]:.4f}",
        )
    console = _console()
    console.print(table)
    console.print(
        "The losses are on different scales: compare the epochs and accuracies, not the losses."
    )
    path = _write(lambda: plot_learning_curves(histories, args.out))
    console.print(f"learning curves: {path}")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "explain": _explain_command,
    "check": _check_command,
    "plot": _plot_command,
    "tour": _tour_command,
    "demo": _demo_command,
}


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; its exit status."""
    return _COMMANDS[args.command](args)
