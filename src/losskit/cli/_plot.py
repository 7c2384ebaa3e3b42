"""``losskit plot`` and ``losskit demo``'s figures, drawn with matplotlib's object API on the
Agg canvas (no display needed, no global pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ._wine import History
from ._curves import AXES, Curve, PlotSettings, curves

__all__ = ["plot_learning_curves", "plot_losses"]


def _labels(drawn: list[Curve]) -> list[str]:
    """The legend of one column: a curve that equals an earlier one, drawn over it, says so."""
    labels = []
    for number, curve in enumerate(drawn):
        under = [
            c.label
            for c in drawn[:number]
            if np.allclose(c.loss, curve.loss) and np.allclose(c.lower, curve.lower)
        ]
        labels.append(f"{curve.label} (the same curves as {under[0]})" if under else curve.label)
    return labels


def plot_losses(
    names: Sequence[str], path: str | Path, settings: PlotSettings | None = None
) -> Path:
    """Draw the losses ``names`` and their gradient magnitudes into the PNG file ``path``.

    Parameters
    ----------
    names : sequence of str
        Keys of :func:`curves`: losskit's losses, and ``"mse_on_probabilities"``.
    path : str or Path
        Where to write the PNG; its folder must exist.
    settings : PlotSettings, optional
        Focal ``gammas``, sigmoid focal ``alpha``, Huber ``delta``, smooth L1 ``beta``,
        ArcFace ``fallbacks`` and SphereFace / L-Softmax ``lambdas``.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = plot_losses(["cross_entropy", "mse_loss"], pathlib.Path(tempfile.mkdtemp()) / "f.png")
    >>> out.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    drawn = curves()
    unknown = [n for n in names if n not in drawn]
    if unknown or not names:
        msg = f"plot: names must be among {', '.join(drawn)}, got {list(names)!r}"
        raise ValueError(msg)
    settings = PlotSettings() if settings is None else settings
    found = [c for name in dict.fromkeys(names) for c in drawn[name](settings)]
    kinds = [k for k in AXES if any(c.kind == k for c in found)]
    figure = Figure(figsize=(5.4 * len(kinds), 6.0), layout="constrained")
    axes = figure.subplots(2, len(kinds), squeeze=False, sharex="col")
    for column, kind in enumerate(kinds):
        axis = AXES[kind]
        top, bottom = axes[0, column], axes[1, column]
        if axis.reference is not None:
            bottom.plot(axis.x, axis.reference[1], color="grey", linewidth=3, alpha=0.5,
                        label=axis.reference[0])  # fmt: skip
        of_kind = [c for c in found if c.kind == kind]
        for number, (curve, label) in enumerate(zip(of_kind, _labels(of_kind), strict=True)):
            style = ("-", "--", "-.", ":")[number % 4]  # curves that coincide stay visible
            top.plot(axis.x, curve.loss, linestyle=style, label=label)
            bottom.plot(axis.x, curve.lower, linestyle=style, label=label)
        top.set_ylabel("loss ℓ")
        top.set_title(f"loss against {axis.against}")
        bottom.set_ylabel(axis.lower)
        bottom.set_xlabel(axis.label)
        top.set_ylim(bottom=0)
        if axis.reference is None:  # gradient magnitudes
            top.legend(fontsize="small")
            bottom.set_ylim(bottom=0)
        else:  # a target logit, which goes below 0 where small angles leave room
            bottom.legend(fontsize="x-small", loc="lower left")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    path = Path(path)
    figure.savefig(path, dpi=90)
    return path


def plot_learning_curves(histories: dict[str, History], path: str | Path) -> Path:
    """Draw training loss and train/test accuracy per epoch of several runs into ``path``.

    Parameters
    ----------
    histories : dict of str to History
        The runs, by legend label.
    path : str or Path
        Where to write the PNG; its folder must exist.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from losskit.cli._wine import History
    >>> run = History(loss=[1.0, 0.5], train_accuracy=[0.4, 0.8], test_accuracy=[0.5, 0.8])
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "c.png"
    >>> plot_learning_curves({"cross-entropy": run}, out).suffix
    '.png'
    """
    figure = Figure(figsize=(10.8, 4.0), layout="constrained")
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    for number, (label, history) in enumerate(histories.items()):
        color = f"C{number}"
        epochs = np.arange(1, len(history.loss) + 1)
        loss_ax.plot(epochs, history.loss, color=color, label=label)
        accuracy_ax.plot(epochs, history.train_accuracy, color=color, label=f"{label}, train")
        accuracy_ax.plot(
            epochs, history.test_accuracy, color=color, linestyle="--", label=f"{label}, test"
        )
    loss_ax.set(
        yscale="log", xlabel="epoch", ylabel="training loss (each on its own scale)", title="loss"
    )
    accuracy_ax.set(
        xlabel="epoch", ylabel="accuracy", title="accuracy (solid: train, dashed: test)"
    )
    for ax in (loss_ax, accuracy_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    path = Path(path)
    figure.savefig(path, dpi=90)
    return path
