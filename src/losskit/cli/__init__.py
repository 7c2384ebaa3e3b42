"""The ``losskit`` command: explain a loss step by step, check a call for misuse, plot losses,
tour the tutorials' worked examples, train a small demo, and complete itself in the shell.

The parser needs only the standard library and losskit; the commands print with rich and
draw with matplotlib (the ``cli`` extra), imported when a command runs.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from .._lib._registry import entries, entry
from .._margin import FALLBACKS
from ._completion import SHELLS, completion_script
from ._curves import PlotSettings, curves, options_taken
from ._explain import explainable
from ._inputs import UsageError, flag, loss_options, parameter_docs, read_array, summary
from ._wine import EXAMPLE_RUN

__all__ = ["build_parser", "main"]

_EXTRA = ("rich", "matplotlib", "sklearn")  # what the commands import beyond the core


_INSTALL = 'pip install ".[cli]" in losskit\'s folder'

_ARRAY_FORMS = (
    "An array literal, such as [[0.1, 0.6, 0.3]] or [1, 0] (inf, -inf and nan in any case), "
    "or a .npy file."
)

_DEMO_LEARNING_RATE = 0.01  # slow enough for the wine demo's losses to differ

_EXIT_STATUS = (
    "Exit status 0 on success (for check: when nothing is found), 1 when check finds a problem "
    "in a call the loss computes, 2 for invalid input: a malformed command line or a call the "
    "loss refuses, reported in one line on stderr (check prints its findings first, which often "
    "say why; explain adds the fixes that make the loss take the call)."
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, with exit status 2, and which
    suggests the closest choice to a misspelt one."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's own check, with difflib's closest match to an unknown choice
        if action.choices is None or value in action.choices:
            return
        choices = [str(choice) for choice in action.choices]
        close = difflib.get_close_matches(str(value), choices, n=1)
        meant = f"; did you mean {close[0]!r}?" if close else ""
        msg = f"invalid choice: {value!r}{meant} (choose from {', '.join(map(repr, choices))})"
        raise argparse.ArgumentError(action, msg)


_JSON_NUMBERS = "; strict JSON: NaN is null, infinities are the strings \"inf\" and \"-inf\""


def _add_loss_parsers(command: argparse.ArgumentParser, names: list[str], json_help: str) -> None:
    """One sub-command per loss of ``names``, with that loss's arrays and every option it takes."""
    losses = command.add_subparsers(
        dest="loss", metavar="LOSS", required=True, title="losses", help="the loss to work with"
    )
    for name in names:
        found = entry(name)
        fn = found.function  # type: ignore[union-attr]
        docs = parameter_docs(fn)
        parser = losses.add_parser(name, help=summary(fn), description=f"{name}: {summary(fn)}")
        arrays = found.arrays  # type: ignore[union-attr]
        flags = ["--input", *(f"--{n}" for n in arrays[1:-1]), "--target"][: len(arrays)]
        for flag, parameter in zip(flags, arrays, strict=True):
            kind, description = docs[parameter]
            parser.add_argument(
                flag,
                required=True,
                type=read_array,
                metavar="ARRAY",
                help=f"{kind}. {description} {_ARRAY_FORMS}",
            )
        for option in loss_options(found):  # type: ignore[arg-type]
            option.add_to(parser)
        parser.add_argument("--json", action="store_true", help=json_help)
        parser.set_defaults(parser=parser)


def _checked(kind: type, expected: str, ok: Callable[[Any], bool]) -> Any:
    """An argparse type: ``kind`` of the text, refused with "must be ``expected``" unless ``ok``."""

    def convert(text: str) -> Any:
        value = kind(text)
        if not ok(value):
            msg = f"must be {expected}, got {text}"
            raise argparse.ArgumentTypeError(msg)
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


def _positive(kind: type) -> Any:
    return _checked(kind, "a finite number > 0", lambda value: 0 < value < math.inf)


def _png_file(text: str) -> Path:
    """An argparse type: the PNG file a figure goes to, refused before any work unless it can
    be written (matplotlib would pick another format by the suffix, or add ``.png``)."""
    path = Path(text)
    folder = path.parent
    if path.suffix.lower() != ".png":
        problem = f"must be a .png file, got {text}"
    elif path.is_dir():
        problem = f"must be a .png file, got {text}, a folder"
    elif not folder.is_dir():
        problem = f"must be a .png file in an existing folder, got {text}: there is no folder {folder}"
    elif not os.access(folder, os.W_OK):
        problem = f"must be a .png file in a writable folder, got {text}: {folder} is read-only"
    else:
        return path
    raise argparse.ArgumentTypeError(problem)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``losskit`` command line."""
    parser = _Parser(
        prog="losskit",
        description="Loss functions shown at work: the arithmetic, the usual mistakes, the curves.",
        epilog=f"With no command, losskit runs the tour. {_EXIT_STATUS}",
    )
    parser.add_argument("--version", action="version", version=f"losskit {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", help="what to do (default: tour)"
    )
    for name, losses, summary_line, description, json_help in (
        (
            "explain",
            explainable(),
            "compute a loss step by step for the numbers given",
            "Show the formula, every intermediate (softmax per row, the picked probability, -log, "
            "weights, ...; for the margin losses first the cosines, the target angle and its margin "
            "logit), the reduction with its exact denominator, the value and the gradient with "
            "respect to the input, and any misuse losskit check finds.",
            "print the explanation as JSON (steps, reduction, value, gradient, findings)" + _JSON_NUMBERS,
        ),
        (
            "check",
            [e.name for e in entries() if e.is_loss],
            "look for the usual mistakes in a loss call",
            "Run losskit.diagnose on a loss call: probabilities where logits belong, one-hot targets, "
            "unnormalised rows, binary targets outside [0, 1], negative kl_div targets, kl_div's 'mean', "
            "class imbalance, an ArcFace margin in degrees, "
            "transposed class centres. Each finding gives the fix and the "
            f"value under the call probably meant. {_EXIT_STATUS}",
            "print the findings as a JSON list" + _JSON_NUMBERS,
        ),
    ):
        _add_loss_parsers(
            commands.add_parser(name, help=summary_line, description=description), losses, json_help
        )
    _add_plot_parser(commands)
    tour = commands.add_parser(
        "tour",
        help="the tutorials' worked examples, recomputed (the default)",
        description="Walk through every worked example of the tutorials losskit grew out of, show why "
        "cross-entropy ranks two models that the error rate cannot, name the three wrong claims with "
        "what their calls return and the calls that give the claimed numbers, and write the figures.",
    )
    tour.add_argument(
        "--out-dir",
        type=Path,
        default=Path("losskit-figures"),
        metavar="DIR",
        help="folder for the figures, created if missing before the tour starts "
        "(default: losskit-figures)",
    )
    tour.add_argument(
        "--no-figures", action="store_true", help="print the tour only, write no figures"
    )
    demo = commands.add_parser(
        "demo",
        help="train a small model with different losses",
        description="Train a model with several losses and compare them.",
    )
    datasets = demo.add_subparsers(
        dest="dataset", metavar="DATASET", required=True, title="demos", help="the demo to run"
    )
    wine = datasets.add_parser(
        "wine",
        help="softmax regression on scikit-learn's wine data",
        description="Train the softmax classifier of examples/softmax_regression.py (plain NumPy and "
        "losskit.value_and_grad) with cross-entropy, MSE on the probabilities and focal loss; print "
        "epochs to the target train accuracy, final test accuracy and final loss; save the learning "
        f"curves. The default learning rate, {_DEMO_LEARNING_RATE:g}, is smaller than the example's "
        f"{EXAMPLE_RUN['learning_rate']:g}, so that the losses differ: --learning-rate "
        f"{EXAMPLE_RUN['learning_rate']:g} gives the example's run in the cross-entropy row.",
    )
    wine.add_argument("--epochs", type=_positive(int), default=100, metavar="N", help="full-batch epochs (default: 100)")
    wine.add_argument(
        "--learning-rate", type=_positive(float), default=_DEMO_LEARNING_RATE, metavar="LR",
        help=f"gradient-descent step size; small enough that the losses differ (default: {_DEMO_LEARNING_RATE:g})",
    )  # fmt: skip
    wine.add_argument(
        "--seed", type=_checked(int, "in [0, 2**32)", lambda value: 0 <= value < 2**32), default=0,
        help="seed of the split and the initial weights (default: 0)",
    )  # fmt: skip
    wine.add_argument(
        "--accuracy", type=_checked(float, "in (0, 1]", lambda value: 0 < value <= 1), default=0.9, metavar="FRACTION",
        help="the train accuracy whose first epoch the table reports (default: 0.9)",
    )  # fmt: skip
    wine.add_argument(
        "--out", type=_png_file, default="wine-learning-curves.png", metavar="FILE.png",
        help="where to save the learning curves, in an existing folder (default: wine-learning-curves.png)",
    )  # fmt: skip
    completion = commands.add_parser(
        "completion",
        help="print a shell script that completes losskit's command line",
        description="Print a completion script for bash or zsh, generated from this command's "
        "parser: commands, losses, options and their choices. Load it from your shell's start-up "
        'file: eval "$(losskit completion bash)" in ~/.bashrc, or '
        'eval "$(losskit completion zsh)" in ~/.zshrc.',
    )
    completion.add_argument("shell", choices=SHELLS, metavar="SHELL", help=f"one of {', '.join(SHELLS)}")
    return parser


def _taken_by(option: str) -> str:
    return ", ".join(name for name in curves() if option in options_taken(name))


def _add_plot_parser(commands: Any) -> None:
    defaults, drawn = PlotSettings(), curves()
    plot = commands.add_parser(
        "plot",
        help="draw losses and their gradient magnitudes",
        description="Draw each loss and the size of its gradient: classification losses against the "
        "predicted probability of the true class (gradient with respect to its logit), regression "
        "losses against the error input - target. The margin losses are drawn against the angle "
        "between a unit embedding and its class centre, two classes with the other centre at 90 "
        "degrees, each at its default scale and margin, and below the loss their target logit "
        "over the scale. An option none of the losses drawn takes is an error.",
    )
    plot.add_argument(
        "losses",
        nargs="+",
        choices=list(drawn),
        metavar="LOSS",
        help=f"what to draw: {', '.join(drawn)}",
    )
    plot.add_argument(
        "--out", type=_png_file, required=True, metavar="FILE.png",
        help="the PNG file to write, in an existing folder",
    )  # fmt: skip
    several = " ".join(f"{g:g}" for g in defaults.gammas)
    for option, kind, extra, what in (
        ("gamma", float, {"nargs": "+", "metavar": "G"}, f"one curve per γ (default: {several})"),
        ("alpha", float, {}, f"weight of the positive class (default: {defaults.alpha:g})"),
        ("delta", float, {}, f"where the quadratic part ends (default: {defaults.delta:g})"),
        ("beta", float, {}, f"where the quadratic part ends (default: {defaults.beta:g})"),
        (
            "fallback", str, {"nargs": "+", "metavar": "F", "choices": FALLBACKS},
            f"one curve per fallback past θ + m > π, among {', '.join(FALLBACKS)} "
            f"(default: {' '.join(defaults.fallbacks)})",
        ),
        (
            "lambda_", float, {"nargs": "+", "metavar": "L"},
            "one curve per annealing weight λ (default: "
            f"{' '.join(f'{v:g}' for v in defaults.lambdas)}, the full margin)",
        ),
    ):  # fmt: skip
        plot.add_argument(flag(option), dest=option, type=kind, help=f"{_taken_by(option)}: {what}", **extra)


def _without_extra(args: argparse.Namespace, missing: str) -> int:
    """Without the ``cli`` extra: the plain-text tour, or a one-line error."""
    if args.command == "tour":
        from ._tour import tour

        tour()
        print(f"\n({_INSTALL} for the styled tour and its figures)")
        return 0
    print(f"losskit {args.command}: error: needs {missing}, of the cli extra: {_INSTALL}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``losskit`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``losskit`` (default: ``sys.argv[1:]``). None runs the tour.

    Returns
    -------
    int
        The exit status: 0 on success (for ``check``: nothing found), 1 when ``check`` finds
        a problem in a call the loss computes, 2 for invalid input: a malformed command line
        or a call the loss refuses, reported in one line on stderr (``check`` prints its
        findings first; ``explain`` adds the fixes that make the loss take the call).

    Examples
    --------
    >>> main(["check", "cross_entropy", "--input", "[[2.0, -1.0, 0.5]]", "--target", "[0]"])
    cross_entropy: no problems found
    0
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        unknown = f"unrecognized arguments: {' '.join(extra)}"
        if hasattr(args, "parser"):  # a loss's own parser: name the options the loss takes
            takes = ", ".join(option.flag for option in loss_options(entry(args.loss)))  # type: ignore[arg-type]
            args.parser.error(f"{unknown} ({args.loss} takes {takes})")
        parser.error(unknown)
    if args.command is None:
        args = parser.parse_args(["tour"])
    if args.command == "completion":
        print(completion_script(parser, args.shell), end="")
        return 0
    try:
        from . import _commands

        return _commands.run(args)
    except ModuleNotFoundError as error:
        if error.name not in _EXTRA:
            raise
        return _without_extra(args, error.name)
    except UsageError as error:
        prog = args.parser.prog if hasattr(args, "parser") else f"losskit {args.command}"
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
