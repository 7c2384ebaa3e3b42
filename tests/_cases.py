"""The test grid: every loss over shapes and options, as data.

A :class:`Case` holds NumPy float64 arrays and keyword options. It runs the losskit function on
any backend and dtype, and the torch reference of ``_references`` on the same numbers, so a
test module only says which cases to compare and how strictly.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from _references import REFERENCES
from _support import BACKENDS, torch_tensor

import losskit as lk

REDUCTIONS = ("none", "mean", "sum")


@dataclass(frozen=True)
class Case:
    """One call of one loss: positional arrays plus keyword options (arrays allowed)."""

    loss: str
    arrays: tuple[np.ndarray, ...]
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    smooth: bool = True  # False where autograd of the reference is not the true derivative

    @property
    def id(self) -> str:
        return f"{self.loss}[{self.label}]"

    def quantized(self, dtype: Any) -> Case:
        """The same case with its float arrays rounded to ``dtype`` (kept as float64)."""
        arrays = tuple(self._cast(self._cast(a, dtype), np.float64) for a in self.arrays)
        options = {k: self._cast(self._cast(v, dtype), np.float64) for k, v in self.options.items()}
        return Case(self.loss, arrays, options, self.label, self.smooth)

    def _cast(self, a: Any, dtype: Any) -> Any:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            return a.astype(dtype)
        return a

    def run(self, backend: str = "numpy", dtype: Any = np.float64) -> Any:
        """Call the losskit function with arrays of ``backend`` in ``dtype``."""
        convert = BACKENDS[backend].asarray
        arrays = [convert(self._cast(a, dtype)) for a in self.arrays]
        options = {
            k: convert(self._cast(v, dtype)) if isinstance(v, np.ndarray) else v
            for k, v in self.options.items()
        }
        return getattr(lk, self.loss)(*arrays, **options)

    def reference(self, dtype: Any = np.float64, *, requires_grad: bool = False) -> tuple[Any, Any]:
        """The torch reference's result, and the first input tensor (a leaf if requested)."""
        tensors = [torch_tensor(self._cast(a, dtype)) for a in self.arrays]
        if requires_grad:
            tensors[0].requires_grad_(True)
        options = {
            k: torch_tensor(self._cast(v, dtype)) if isinstance(v, np.ndarray) else v
            for k, v in self.options.items()
        }
        return REFERENCES[self.loss](*tensors, **options), tensors[0]


def _rng(*labels: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(labels).encode()))


CLASS_SHAPES = {
    "C": (5,),
    "NC": (6, 5),
    "NCd": (3, 4, 5),
    "NCdd": (2, 3, 4, 2),
    "NCddd": (2, 3, 2, 2, 2),
}
IGNORE_MODES = ("none", "default", "class", "beyond", "negative")


def _class_targets(
    rng: np.random.Generator, shape: tuple[int, ...], mode: str
) -> tuple[np.ndarray, int]:
    """Class indices for logits of ``shape`` with some positions ignored as ``mode`` says."""
    num_classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    target = rng.integers(0, num_classes, size=target_shape)
    ignore_index = {
        "none": -100,
        "default": -100,
        "class": 2,
        "beyond": num_classes + 2,
        "negative": -1,
    }[mode]
    if mode != "none":
        hide = rng.random(target_shape) < 0.3
        if len(shape) > 1:
            hide.flat[0] = True
        target = np.where(hide, ignore_index, target)
    return np.asarray(target, dtype=np.int64), ignore_index


def cross_entropy_cases() -> Iterator[Case]:
    for (name, shape), weighted, mode, eps, red in itertools.product(
        CLASS_SHAPES.items(), (False, True), IGNORE_MODES, (0.0, 0.1, 0.37, 1.0), REDUCTIONS
    ):
        rng = _rng("ce", name, weighted, mode, eps, red)
        target, ignore_index = _class_targets(rng, shape, mode)
        num_classes = shape[0] if len(shape) == 1 else shape[1]
        options: dict[str, Any] = {"reduction": red, "label_smoothing": eps}
        if ignore_index != -100:
            options["ignore_index"] = ignore_index
        if weighted:
            options["weight"] = rng.random(num_classes) + 0.1
        yield Case(
            "cross_entropy",
            (2 * rng.standard_normal(shape), target),
            options,
            f"{name}-w{int(weighted)}-{mode}-eps{eps}-{red}",
        )
    for (name, shape), weighted, eps, red in itertools.product(
        CLASS_SHAPES.items(), (False, True), (0.0, 0.1, 1.0), REDUCTIONS
    ):
        rng = _rng("ce-prob", name, weighted, eps, red)
        class_dim = 0 if len(shape) == 1 else 1
        probs = rng.dirichlet(np.ones(shape[class_dim]), size=shape[:class_dim] + shape[class_dim + 1 :])
        options = {"reduction": red, "label_smoothing": eps}
        if weighted:
            options["weight"] = rng.random(shape[class_dim]) + 0.1
        yield Case(
            "cross_entropy",
            (2 * rng.standard_normal(shape), np.moveaxis(probs, -1, class_dim)),
            options,
            f"prob-{name}-w{int(weighted)}-eps{eps}-{red}",
        )
    for red in REDUCTIONS:  # channel-last classes
        rng = _rng("ce-last", red)
        yield Case(
            "cross_entropy",
            (rng.standard_normal((3, 4, 5)), rng.integers(0, 5, (3, 4))),
            {"dim": -1, "reduction": red, "label_smoothing": 0.2, "weight": rng.random(5)},
            f"dim-1-{red}",
        )


def nll_loss_cases() -> Iterator[Case]:
    for (name, shape), weighted, mode, red in itertools.product(
        CLASS_SHAPES.items(), (False, True), IGNORE_MODES, REDUCTIONS
    ):
        rng = _rng("nll", name, weighted, mode, red)
        target, ignore_index = _class_targets(rng, shape, mode)
        options: dict[str, Any] = {"reduction": red, "ignore_index": ignore_index}
        if weighted:
            options["weight"] = rng.random(shape[0] if len(shape) == 1 else shape[1])
        yield Case("nll_loss", (rng.standard_normal(shape), target), options, f"{name}-w{int(weighted)}-{mode}-{red}")
    rng = _rng("nll-last")
    yield Case("nll_loss", (rng.standard_normal((3, 4, 5)), rng.integers(0, 5, (3, 4))), {"dim": -1}, "dim-1")


ELEMENT_SHAPES = {"N": (7,), "NC": (4, 3), "NCHW": (2, 3, 2, 2)}


def _element_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray | None]:
    """Weights that broadcast to ``shape`` the way PyTorch's BCE weights do."""
    weights: dict[str, np.ndarray | None] = {"none": None, "full": rng.random(shape), "scalar": np.array(1.7)}
    weights["last"] = rng.random(shape[-1:])
    if len(shape) == 4:
        weights["channel"] = rng.random((shape[1], 1, 1))
    return weights


def binary_cross_entropy_cases() -> Iterator[Case]:
    for (name, shape), red in itertools.product(ELEMENT_SHAPES.items(), REDUCTIONS):
        rng = _rng("bce", name, red)
        for wname, w in _element_weights(rng, shape).items():
            p = rng.uniform(0.02, 0.98, shape)
            y = rng.random(shape).round(1)
            options: dict[str, Any] = {"reduction": red}
            if w is not None:
                options["weight"] = w
            yield Case("binary_cross_entropy", (p, y), options, f"{name}-{wname}-{red}")
        clamped = np.array([0.0, 1.0, 0.0, 1.0, 1e-60, 0.3])
        yield Case(
            "binary_cross_entropy",
            (clamped, np.array([1.0, 0.0, 0.5, 1.0, 0.0, 1.0])),
            {"reduction": red},
            f"clamp-{red}",
            smooth=False,
        )


def binary_cross_entropy_with_logits_cases() -> Iterator[Case]:
    for (name, shape), red, eps in itertools.product(ELEMENT_SHAPES.items(), REDUCTIONS, (0.0, 0.1)):
        rng = _rng("bcel", name, red, eps)
        weights = _element_weights(rng, shape)
        for (wname, w), (pname, pw) in itertools.product(
            weights.items(), [("none", None), *((k, v) for k, v in weights.items() if k != "none")]
        ):
            options: dict[str, Any] = {"reduction": red, "label_smoothing": eps}
            if w is not None:
                options["weight"] = w
            if pw is not None:
                options["pos_weight"] = np.asarray(3 * pw)
            yield Case(
                "binary_cross_entropy_with_logits",
                (3 * rng.standard_normal(shape), rng.random(shape).round(1)),
                options,
                f"{name}-w{wname}-pw{pname}-eps{eps}-{red}",
            )


def _regression_pair(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    # Errors on a 0.25 grid, so |z| hits 0 and the beta/delta boundaries exactly.
    target = rng.standard_normal(shape)
    z = rng.integers(-10, 11, shape) / 4
    return target + z, target


def regression_cases() -> Iterator[Case]:
    for (name, shape), red in itertools.product(ELEMENT_SHAPES.items(), REDUCTIONS):
        rng = _rng("reg", name, red)
        x, y = _regression_pair(rng, shape)
        w = rng.random(shape)
        for loss in ("l1_loss", "mse_loss"):
            yield Case(loss, (x, y), {"reduction": red}, f"{name}-{red}")
            yield Case(loss, (x, y), {"reduction": red, "weight": w}, f"{name}-weighted-{red}")
        for beta in (0.0, 0.5, 1.0, 2.0, np.inf):
            yield Case("smooth_l1_loss", (x, y), {"reduction": red, "beta": beta}, f"{name}-beta{beta}-{red}")
        for delta in (0.5, 1.0, 2.0, np.inf):
            yield Case("huber_loss", (x, y), {"reduction": red, "delta": delta}, f"{name}-delta{delta}-{red}")
            yield Case(
                "huber_loss", (x, y), {"reduction": red, "delta": delta, "weight": w}, f"{name}-delta{delta}-w-{red}"
            )


def kl_div_cases() -> Iterator[Case]:
    shapes = {"C": (4,), "NC": (3, 4), "NCd": (2, 3, 4)}
    for (name, shape), log_target, red in itertools.product(
        shapes.items(), (False, True), ("none", "mean", "sum", "batchmean")
    ):
        rng = _rng("kl", name, log_target, red)
        log_p = np.log(rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]))
        t = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
        if not log_target:
            t.flat[0] = 0.0  # 0 log 0 = 0
        yield Case(
            "kl_div",
            (log_p, np.log(t) if log_target else t),
            {"reduction": red, "log_target": log_target},
            f"{name}-log{int(log_target)}-{red}",
        )
    rng = _rng("kl-prior")
    yield Case(
        "kl_div",
        (np.log(rng.dirichlet(np.ones(4), size=3)), rng.dirichlet(np.ones(4))),
        {"reduction": "batchmean"},
        "broadcast-prior",
    )


def sigmoid_focal_loss_cases() -> Iterator[Case]:
    for alpha, gamma, red, soft in itertools.product(
        (0.25, -1.0, 0.0, 1.0, 0.5), (0.0, 0.5, 1.0, 2.0, 3.0), REDUCTIONS, (False, True)
    ):
        rng = _rng("sfl", alpha, gamma, red, soft)
        y = rng.random((4, 3))
        y = y.round(1) if soft else (y > 0.5).astype(np.float64)
        yield Case(
            "sigmoid_focal_loss",
            (3 * rng.standard_normal((4, 3)), y),
            {"alpha": alpha, "gamma": gamma, "reduction": red},
            f"a{alpha}-g{gamma}-{red}-soft{int(soft)}",
        )


def focal_loss_cases() -> Iterator[Case]:
    shapes = {k: CLASS_SHAPES[k] for k in ("C", "NC", "NCdd")}
    for (name, shape), gamma, alpha_kind, mode, red in itertools.product(
        shapes.items(), (0.0, 0.5, 2.0), ("none", "scalar", "vector"), ("none", "default", "class"), REDUCTIONS
    ):
        rng = _rng("fl", name, gamma, alpha_kind, mode, red)
        target, ignore_index = _class_targets(rng, shape, mode)
        num_classes = shape[0] if len(shape) == 1 else shape[1]
        options: dict[str, Any] = {"gamma": gamma, "reduction": red, "ignore_index": ignore_index}
        if alpha_kind == "scalar":
            options["alpha"] = 0.25
        elif alpha_kind == "vector":
            options["alpha"] = rng.random(num_classes) + 0.1
        yield Case(
            "focal_loss",
            (2 * rng.standard_normal(shape), target),
            options,
            f"{name}-g{gamma}-{alpha_kind}-{mode}-{red}",
        )


def softmax_family_cases() -> Iterator[Case]:
    shapes = {"C": (5,), "NC": (4, 5), "NCd": (2, 5, 3)}
    for (name, shape), red in itertools.product(shapes.items(), REDUCTIONS):
        rng = _rng("ent", name, red)
        yield Case("softmax_entropy", (3 * rng.standard_normal(shape),), {"reduction": red}, f"{name}-{red}")
    for (name, shape), fn in itertools.product(shapes.items(), ("softmax", "log_softmax", "logsumexp")):
        for dim in range(-len(shape), len(shape)):
            rng = _rng("sm", name, fn, dim)
            yield Case(fn, (3 * rng.standard_normal(shape),), {"dim": dim}, f"{name}-dim{dim}")
    rng = _rng("lse-keep")
    yield Case("logsumexp", (rng.standard_normal((3, 4)),), {"dim": 1, "keepdim": True}, "keepdim")


CASES: dict[str, list[Case]] = {}
for _case in itertools.chain(
    cross_entropy_cases(),
    nll_loss_cases(),
    binary_cross_entropy_cases(),
    binary_cross_entropy_with_logits_cases(),
    regression_cases(),
    kl_div_cases(),
    sigmoid_focal_loss_cases(),
    focal_loss_cases(),
    softmax_family_cases(),
):
    CASES.setdefault(_case.loss, []).append(_case)


def cases(*losses: str) -> list[Case]:
    """All grid cases of the named losses, as pytest parameters would like them."""
    return [c for loss in losses for c in CASES[loss]]


def sample(*losses: str, every: int) -> list[Case]:
    """Every ``every``-th case of each named loss: a spread-out subset for slow backends."""
    return [c for loss in losses for c in CASES[loss][::every]]
