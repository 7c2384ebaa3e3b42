"""What each subcommand does, once the command line is parsed; output through rich."""

from __future__ import annotations

import argparse
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .. import cross_entropy, diagnose, focal_loss, value_and_grad
from .._lib._registry import entry
from .._misuse import Finding, loss_arrays
from ._curves import PLOT_OPTIONS, options_taken, plot_settings
from ._explain import Explanation, explain, finding_json
from ._inputs import UsageError, flag, loss_options
from ._plot import plot_learning_curves, plot_losses
from ._tour import tour
from ._wine import EXAMPLE_RUN, History, softmax_mse, train

__all__ = ["TOUR_FIGURES", "run"]

TOUR_FIGURES = {
    "classification.png": ("cross_entropy", "focal_loss", "mse_on_probabilities"),
    "regression.png": ("l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss"),
    "binary_cross_entropy.png": ("binary_cross_entropy",),
}
"""The figures ``losskit tour`` writes: file name -> the curves drawn."""


def _console() -> Console:
    return Console(highlight=False)


def _progress() -> Progress:
    """Progress bars on stderr, so that stdout holds the results alone."""
    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=Console(stderr=True))


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
    """The explanation of the call given; the loss's own refusal of it as a usage error, with
    the fixes of the findings whose probable meaning the loss does take (the others do not
    explain the refusal)."""
    x, t, options = _loss_call(args)
    try:
        return explain(args.loss, x, t, **options)
    except (ValueError, TypeError) as error:
        findings = diagnose(args.loss, x, t, **options)
        fixes = "".join(f" [{f.code}: {f.fix}]" for f in findings if f.intended_value is not None)
        raise UsageError(_one_line(error) + fixes) from None


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
    """The findings on stdout; status 1 with some, and 2 (invalid input) when the loss refuses
    the call, after the findings, which often say why."""
    x, t, options = _loss_call(args)
    findings = diagnose(args.loss, x, t, **options)
    refusal = _refusal(args.loss, x, t, options)
    if findings or refusal is None:  # a refused call with no finding gets the error alone
        if args.json:
            _print_json([finding_json(f) for f in findings])
        else:
            console = _console()
            for finding in findings:
                console.print(_finding_text(finding))
            if not findings:
                console.print(f"{args.loss}: no problems found")
    if refusal is not None:
        raise UsageError(refusal)
    return 1 if findings else 0


def _write(draw: Callable[[], Path]) -> Path:
    """Run a figure writer, turning file-system errors into one-line usage errors."""
    try:
        return draw()
    except OSError as error:
        raise UsageError(f"cannot write the figure: {_one_line(error)}") from None


def _plot_options(args: argparse.Namespace) -> dict[str, Any]:
    """The plot options given, each taken by one of the losses drawn at least."""
    losses = list(dict.fromkeys(args.losses))
    given = {name: getattr(args, name) for name in PLOT_OPTIONS if getattr(args, name) is not None}
    for name in given:
        if not any(name in options_taken(loss) for loss in losses):
            takes = "; ".join(
                f"{loss} takes {', '.join(map(flag, options_taken(loss))) or 'no options'}"
                for loss in losses
            )
            raise UsageError(f"{flag(name)} is not an option of {' or '.join(losses)} ({takes})")
    return given


def _plot_command(args: argparse.Namespace) -> int:
    settings = plot_settings(_plot_options(args))
    with Console(stderr=True).status(f"drawing {args.out}"):  # a spinner, on a terminal only
        try:
            path = _write(lambda: plot_losses(args.losses, args.out, settings))
        except ValueError as error:  # an option the losses refuse, e.g. a negative gamma
            raise UsageError(_one_line(error)) from None
    _console().print(f"wrote {path}")
    return 0


def _tour_command(args: argparse.Namespace) -> int:
    if not args.no_figures:  # the folder first: no tour that cannot end with its figures
        try:
            args.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            msg = f"--out-dir: cannot create the folder {args.out_dir}: {error.strerror or error}"
            raise UsageError(msg) from None
        if not os.access(args.out_dir, os.W_OK):
            raise UsageError(f"--out-dir: the folder {args.out_dir} is read-only")
    console = _console()

    def styled(line: str) -> None:
        text = Text(line, style="" if line.startswith(" ") else "bold")
        text.highlight_words(["WRONG"], "bold red")
        text.highlight_regex(r"(?<=, )right(?=[,)])", "green")
        console.print(text, soft_wrap=True)

    tour(styled)
    if args.no_figures:
        return 0
    with _progress() as progress:
        for name, curves in progress.track(TOUR_FIGURES.items(), description="writing the figures"):
            _write(functools.partial(plot_losses, curves, args.out_dir / name))
    for name, curves in TOUR_FIGURES.items():
        console.print(f"figure: {args.out_dir / name}  ({', '.join(curves)})", soft_wrap=True)
    return 0


def _example_note(args: argparse.Namespace) -> str:
    """How the cross-entropy row's run differs from examples/softmax_regression.py's."""
    differs = {name: value for name, value in EXAMPLE_RUN.items() if getattr(args, name) != value}
    if not differs:
        return "The cross-entropy row is the run of examples/softmax_regression.py."
    given = ", ".join(
        f"{flag(name)} {getattr(args, name):g} where the example has {value:g}"
        for name, value in differs.items()
    )
    same = " ".join(f"{flag(name)} {value:g}" for name, value in differs.items())
    why = " (this demo's default learning rate is smaller, so that the losses differ)"
    return (
        f"The cross-entropy row trains the classifier of examples/softmax_regression.py with "
        f"{given}{why if 'learning_rate' in differs else ''}; {same} gives the example's run."
    )


def _demo_command(args: argparse.Namespace) -> int:
    objectives = {
        "cross-entropy": value_and_grad(cross_entropy),
        "MSE on probabilities": softmax_mse,
        "focal loss, γ=2": functools.partial(value_and_grad(focal_loss), gamma=2.0),
    }
    histories: dict[str, History] = {}
    with _progress() as progress:
        for label, objective in objectives.items():
            task = progress.add_task(f"training with {label}", total=args.epochs)
            histories[label] = train(
                objective,
                epochs=args.epochs,
                learning_rate=args.learning_rate,
                seed=args.seed,
                on_epoch=lambda epoch, history: progress.advance(task),  # before the next task
            )
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
    console.print(_example_note(args))
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
