"""``torch.nn`` modules of losskit: configuration holders whose ``forward`` is one call.

There is a module for every loss of the registry, built from its entry: the class name, the
options torch's module of that name takes by position, the loss's keyword options with its
defaults (array options as buffers) and, for the margin losses, the class centres it owns.
The modules of :func:`~losskit.torch.linear_cross_entropy` hold its options likewise, read
from its signature.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import torch
from torch import nn

from losskit._lib._numerics import compute_dtype
from losskit._lib._reduction import resolve_reduction
from losskit._lib._registry import LEGACY_OPTIONS, Entry, entries
from losskit._lib._validation import integer

from ._linear_cross_entropy import LinearCrossEntropyStats, linear_cross_entropy

Tensor = torch.Tensor

# The array options torch's modules register as buffers even when None.
_TORCH_BUFFERS = ("weight", "pos_weight")


class LossModule(nn.Module):
    """A losskit loss with its options: ``forward(*arrays)`` is one call of its function.

    The options are the function's keyword-only parameters, with its defaults. Array options
    (class weights, ``pos_weight``, a per-class ``alpha``) become buffers, so they follow
    ``.to()`` and travel in the ``state_dict``; the rest are plain attributes. As in torch,
    ``weight`` and ``pos_weight`` are buffers even when ``None``, so that a tensor assigned
    to them later is one too. The constructor takes by position the options torch's module
    of the same name takes so, in its order. PyTorch's legacy ``size_average`` and
    ``reduce`` are mapped to ``reduction`` once, here, with torch's ``DeprecationWarning``.

    Examples
    --------
    >>> import torch
    >>> from losskit.torch.nn import CrossEntropyLoss
    >>> criterion = CrossEntropyLoss(torch.tensor([1.0, 2.0, 1.0]), label_smoothing=0.1)
    >>> criterion(torch.randn(4, 3), torch.tensor([0, 1, 2, 1])).shape
    torch.Size([])
    """

    entry: ClassVar[Entry]

    def __init__(self, *args: Any, **options: Any) -> None:
        name = type(self).__name__
        super().__init__()
        positional = _entry(self).module.positional  # type: ignore[union-attr]
        if len(args) > len(positional):
            msg = f"{name} takes at most {len(positional)} positional options ({', '.join(positional)}), got {len(args)}"
            raise TypeError(msg)
        for option, value in zip(positional, args, strict=False):
            if option in options:
                msg = f"{name} got option {option!r} twice, by position and by keyword"
                raise TypeError(msg)
            options[option] = value
        legacy = {k: options.pop(k) for k in LEGACY_OPTIONS if k in options}
        if any(v is not None for v in legacy.values()):
            options["reduction"] = resolve_reduction(name, options.get("reduction", "mean"), **legacy)
        defaults = self.entry.options()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            msg = f"{name}: unknown option(s) {unknown}; the options are {sorted(defaults)}"
            raise TypeError(msg)
        arrays = self.entry.array_options()
        for option, default in defaults.items():
            value = options.get(option, default)
            if option in arrays and value is not None and not isinstance(value, (int, float)):
                self.register_buffer(option, torch.as_tensor(value))
            elif option in _TORCH_BUFFERS and value is None:
                # As torch's modules: a None buffer, so that a tensor assigned later is one
                # (in the state_dict, moved by .to()).
                self.register_buffer(option, None)
            else:
                setattr(self, option, value)

    def options(self) -> dict[str, Any]:
        """The keyword options this module passes to its function."""
        return {option: getattr(self, option) for option in self.entry.options()}

    def extra_repr(self) -> str:
        defaults, arrays = self.entry.options(), self.entry.array_options()
        changed = {k: v for k, v in self.options().items() if k not in arrays and v != defaults[k]}
        return ", ".join(f"{k}={v!r}" for k, v in changed.items())

    def forward(self, *arrays: Tensor) -> Tensor:
        return self.entry.function(*arrays, **self.options())


def _entry(module: LossModule) -> Entry:
    """The registry entry of a loss module; ``TypeError`` for one of the base classes."""
    found = getattr(module, "entry", None)
    if found is None:
        name = type(module).__name__
        msg = f"{name} is the base of the loss modules, not one: use one of them, e.g. CrossEntropyLoss"
        raise TypeError(msg)
    return found


def _positive_int(name: str, argument: str, value: object) -> int:
    number = integer(name, argument, value)  # Python and NumPy integers
    if number < 1:
        msg = f"{name}: {argument} must be a positive int, got {number}"
        raise ValueError(msg)
    return number


class CenterLossModule(LossModule):
    """A margin loss that owns its class centres: ``forward(embeddings, target)``.

    The centres are a ``Parameter`` of shape ``(num_classes, embedding_dim)`` (a classifier
    weight without bias), drawn from a normal distribution with standard deviation
    ``embedding_dim ** -0.5``, so that each centre has a length near one. The sizes must be
    positive ints, and the options pass the function's own checks when the module is built,
    not first at ``forward``.

    Examples
    --------
    >>> import torch
    >>> from losskit.torch.nn import ArcFaceLoss
    >>> head = ArcFaceLoss(10, 32, scale=30.0)
    >>> head(torch.randn(8, 32), torch.randint(0, 10, (8,))).backward()
    >>> head.centers.grad.shape
    torch.Size([10, 32])
    """

    def __init__(
        self, num_classes: int | None = None, embedding_dim: int | None = None, *, device: Any = None,
        dtype: Any = None, **options: Any,
    ) -> None:
        name = type(self).__name__
        if num_classes is None or embedding_dim is None:
            msg = (
                f"{name} needs num_classes and embedding_dim, the sizes of the class centres it owns, "
                f"e.g. {name}(10, 512); got num_classes={num_classes!r}, embedding_dim={embedding_dim!r}"
            )
            raise TypeError(msg)
        num_classes = _positive_int(name, "num_classes", num_classes)
        embedding_dim = _positive_int(name, "embedding_dim", embedding_dim)
        super().__init__(**options)
        shape = (num_classes, *self._per_class(), embedding_dim)
        self.centers = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        nn.init.normal_(self.centers, std=1 / math.sqrt(embedding_dim))
        try:
            self._check_options()
        except (TypeError, ValueError) as error:  # the function's message, in the module's name
            raise type(error)(str(error).replace(f"{self.entry.name}: ", f"{name}: ", 1)) from None

    def _per_class(self) -> tuple[int, ...]:
        return ()

    def _check_options(self) -> None:
        # The function's own checks of the options, now rather than at the first forward: a
        # call on no embeddings, with centres of the real number of classes (so that class
        # weights are checked against it) but of embedding size 1, costs next to nothing.
        # On the meta device (deferred initialisation) there are no values to check with.
        tensors = [self.centers, *(v for v in self.options().values() if isinstance(v, Tensor))]
        if any(t.device.type == "meta" for t in tensors):
            return
        shape = (*self.centers.shape[:-1], 1)
        weight = self.options().get("weight")
        where = weight.device if isinstance(weight, Tensor) else "cpu"
        dtype = self.centers.dtype
        with torch.no_grad():
            self.entry.function(
                torch.zeros(0, 1, dtype=dtype, device=where),
                torch.ones(shape, dtype=dtype, device=where),
                torch.zeros(0, dtype=torch.int64, device=where),
                **self.options(),
            )

    def forward(self, embeddings: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        dim = self.centers.shape[-1]
        if embeddings.ndim < 1 or embeddings.shape[-1] != dim:
            # The function would speak of centers, which the user of the module never passed.
            msg = (
                f"{type(self).__name__}: embeddings must have embedding_dim = {dim} as their last "
                f"dimension (the module's centres are {tuple(self.centers.shape)}), got shape {tuple(embeddings.shape)}"
            )
            raise ValueError(msg)
        return self.entry.function(embeddings, self.centers, target, **self.options())


class SubCenterLossModule(CenterLossModule):
    """A margin loss with ``sub_centers`` centres per class, shape ``(num_classes, sub_centers,
    embedding_dim)``; ``sub_centers`` defaults to the number the loss's registry entry gives."""

    def __init__(
        self, num_classes: int | None = None, embedding_dim: int | None = None, sub_centers: int | None = None,
        **options: Any,
    ) -> None:
        default = _entry(self).module.sub_centers  # type: ignore[union-attr]
        self.sub_centers = _positive_int(type(self).__name__, "sub_centers", default if sub_centers is None else sub_centers)
        super().__init__(num_classes, embedding_dim, **options)

    def _per_class(self) -> tuple[int, ...]:
        return (self.sub_centers,)


def _docstring(entry: Entry) -> str:
    module = entry.module
    if module.centers:  # type: ignore[union-attr]
        sizes = "num_classes, embedding_dim" + (f", sub_centers={module.sub_centers}" if module.sub_centers else "")
        first = f":func:`losskit.{entry.name}` with its class centres: ``{module.name}({sizes}, **options)``."
    elif module.drop_in:
        first = f"Module form of :func:`losskit.{entry.name}`, a drop-in for ``torch.nn.{module.name}``."
    else:
        first = f"Module form of :func:`losskit.{entry.name}`."
    return f"{first} {module.note}" if module.note else first


def _module_class(entry: Entry) -> type[LossModule]:
    """The module class of a registry entry."""
    module = entry.module
    base = (SubCenterLossModule if module.sub_centers else CenterLossModule) if module.centers else LossModule  # type: ignore[union-attr]
    namespace = {"__doc__": _docstring(entry), "__module__": __name__, "__qualname__": module.name, "entry": entry}  # type: ignore[union-attr]
    return type(module.name, (base,), namespace)  # type: ignore[union-attr]


_LOSS_MODULES = {e.module.name: _module_class(e) for e in entries() if e.module is not None}
globals().update(_LOSS_MODULES)

__all__ = sorted(
    ["CenterLossModule", "LinearCrossEntropyHead", "LinearCrossEntropyLoss", "LossModule", "SubCenterLossModule", *_LOSS_MODULES]
)


def __getattr__(name: str) -> type[LossModule]:
    """The module of a loss registered after this module was imported (built then, once)."""
    found = next((e for e in entries() if e.module is not None and e.module.name == name), None)
    if found is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    globals()[name] = _module_class(found)
    return globals()[name]


_LINEAR_DEFAULTS: dict[str, Any] = {
    name: p.default
    for name, p in inspect.signature(linear_cross_entropy).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name not in ("linear_bias", "weight")
}
"""The options of :func:`linear_cross_entropy` its modules hold (the class weights apart)."""


class _LinearCrossEntropyOptions(nn.Module):
    """Stores the options of :func:`linear_cross_entropy`; class weights in a buffer."""

    _class_weight = "weight"  # the buffer's name
    _class_weight_persistent = True  # in the state_dict

    def _store(self, class_weight: Tensor | None, options: dict[str, Any]) -> None:
        unknown = set(options) - set(_LINEAR_DEFAULTS)
        if unknown:
            msg = f"{type(self).__name__}: unknown option(s) {sorted(unknown)}; known: {sorted(_LINEAR_DEFAULTS)}"
            raise TypeError(msg)
        self.register_buffer(self._class_weight, class_weight, persistent=self._class_weight_persistent)
        for name, default in _LINEAR_DEFAULTS.items():
            setattr(self, name, options.get(name, default))

    def extra_repr(self) -> str:
        # The options that differ from the function's defaults.
        return ", ".join(f"{k}={getattr(self, k)!r}" for k, v in _LINEAR_DEFAULTS.items() if getattr(self, k) != v)

    def loss_options(self) -> dict[str, Any]:
        """The keyword options this module passes to :func:`linear_cross_entropy`."""
        options = {name: getattr(self, name) for name in _LINEAR_DEFAULTS}
        return {"weight": getattr(self, self._class_weight), **options}


class LinearCrossEntropyLoss(_LinearCrossEntropyOptions):
    """Module form of :func:`losskit.torch.linear_cross_entropy`.

    ``LinearCrossEntropyLoss(weight=None, **options)`` holds the keyword options of the
    function (class weights as the buffer ``weight``); ``forward(input, linear_weight,
    target, linear_bias=None)`` returns the loss.

    Examples
    --------
    >>> import torch
    >>> from losskit.torch import LinearCrossEntropyLoss
    >>> criterion = LinearCrossEntropyLoss(z_loss=1e-4)
    >>> loss = criterion(torch.randn(4, 8), torch.randn(50, 8), torch.randint(0, 50, (4,)))
    >>> loss.shape
    torch.Size([])
    """

    def __init__(self, *, weight: Tensor | None = None, **options: Any) -> None:
        super().__init__()
        self._store(weight, options)

    def forward(
        self, input: Tensor, linear_weight: Tensor, target: Tensor, linear_bias: Tensor | None = None
    ) -> Tensor | LinearCrossEntropyStats:
        return linear_cross_entropy(input, linear_weight, target, linear_bias=linear_bias, **self.loss_options())


class LinearCrossEntropyHead(nn.Linear, _LinearCrossEntropyOptions):
    """An ``nn.Linear`` language-model head that returns the loss when given targets.

    A drop-in for the ``nn.Linear(hidden, vocab, bias=...)`` it replaces: the same
    arguments and defaults (language-model heads usually pass ``bias=False``), ``weight``,
    ``bias``, initialisation and ``state_dict`` keys, so either loads the other's
    checkpoints. ``head(hidden)`` returns the logits the loss uses (with ``softcap`` or
    ``logit_scale`` transformed, in float32, and so no longer ``nn.Linear``'s; see
    :meth:`forward`); ``head(hidden, target)`` returns :func:`linear_cross_entropy` without
    forming them. Because the head itself runs,
    wrappers such as FSDP see its hooks fire and gather its weight. Loss options are
    keywords; per-class weights go in ``class_weight``, a buffer kept out of the
    ``state_dict``. Under ``torch.autocast`` the hidden states may come in a lower precision
    than the weight.

    Examples
    --------
    >>> import torch
    >>> from losskit.torch import LinearCrossEntropyHead
    >>> head = LinearCrossEntropyHead(16, 1000, bias=False, label_smoothing=0.1)
    >>> head
    LinearCrossEntropyHead(in_features=16, out_features=1000, bias=False, label_smoothing=0.1)
    >>> hidden, labels = torch.randn(2, 5, 16), torch.randint(0, 1000, (2, 5))
    >>> head(hidden).shape
    torch.Size([2, 5, 1000])
    >>> head(hidden, labels).backward()
    """

    _class_weight = "class_weight"
    _class_weight_persistent = False  # nn.Linear's state_dict keys

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        class_weight: Tensor | None = None,
        **options: Any,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._store(class_weight, options)

    def extra_repr(self) -> str:
        return ", ".join(filter(None, (nn.Linear.extra_repr(self), _LinearCrossEntropyOptions.extra_repr(self))))

    def forward(  # type: ignore[override]
        self, input: Tensor, target: Tensor | None = None
    ) -> Tensor | LinearCrossEntropyStats:
        r"""The logits, or the loss when given targets.

        Parameters
        ----------
        input : Tensor, shape ``(..., in_features)``
            Hidden states.
        target : Tensor of int, shape ``(...)``, optional
            Class indices.

        Returns
        -------
        Tensor or LinearCrossEntropyStats
            With ``target``, :func:`linear_cross_entropy` with the module's options. Without,
            the logits that loss is computed from: ``nn.Linear``'s :math:`x W^\top + b` (in
            its dtype, autocast included) when ``softcap`` is None and ``logit_scale`` is 1;
            otherwise :math:`c \tanh(s\,(x W^\top + b) / c)` for softcap :math:`c` and logit
            scale :math:`s` (:math:`s\,(x W^\top + b)` without softcap), computed from it in
            float32 (float64 for float64 input) as the loss computes them, so that
            ``F.cross_entropy(head(h), y)`` is ``head(h, y)`` (for float16 or bfloat16 heads
            up to the rounding of ``x W^T + b`` to that dtype, which the loss skips).
        """
        if target is not None:
            return linear_cross_entropy(input, self.weight, target, linear_bias=self.bias, **self.loss_options())
        z = super().forward(input)
        if self.softcap is None and self.logit_scale == 1:
            return z
        z = z.to(compute_dtype(torch, z.dtype))
        if self.logit_scale != 1:
            z = z * self.logit_scale
        return z if self.softcap is None else self.softcap * torch.tanh(z / self.softcap)
