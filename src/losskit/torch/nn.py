"""``torch.nn`` modules of losskit: configuration holders whose ``forward`` is one call."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._linear_cross_entropy import LinearCrossEntropyStats, linear_cross_entropy

__all__ = ["LinearCrossEntropyHead", "LinearCrossEntropyLoss"]

Tensor = torch.Tensor

_DEFAULTS: dict[str, Any] = {
    "ignore_index": -100,
    "reduction": "mean",
    "label_smoothing": 0.0,
    "z_loss": 0.0,
    "softcap": None,
    "logit_scale": 1.0,
    "shift": False,
    "chunk_size": None,
    "return_stats": False,
}


class _LinearCrossEntropyOptions(nn.Module):
    """Stores the options of :func:`linear_cross_entropy`; class weights in a buffer."""

    _class_weight = "weight"  # the buffer's name

    def _store(self, class_weight: Tensor | None, options: dict[str, Any]) -> None:
        unknown = set(options) - set(_DEFAULTS)
        if unknown:
            msg = f"{type(self).__name__}: unknown option(s) {sorted(unknown)}; known: {sorted(_DEFAULTS)}"
            raise TypeError(msg)
        self.register_buffer(self._class_weight, class_weight)
        for name, default in _DEFAULTS.items():
            setattr(self, name, options.get(name, default))

    def loss_options(self) -> dict[str, Any]:
        """The keyword options this module passes to :func:`linear_cross_entropy`."""
        options = {name: getattr(self, name) for name in _DEFAULTS}
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

    A drop-in for the ``nn.Linear(hidden, vocab)`` it replaces: same ``weight``, ``bias``,
    initialisation and ``state_dict`` keys. ``head(hidden)`` returns the logits;
    ``head(hidden, target)`` returns :func:`linear_cross_entropy` without forming them.
    Because the head itself runs, wrappers such as FSDP see its hooks fire and gather its
    weight. Loss options are keywords; per-class weights go in ``class_weight`` (a buffer).

    Examples
    --------
    >>> import torch
    >>> from losskit.torch import LinearCrossEntropyHead
    >>> head = LinearCrossEntropyHead(16, 1000, label_smoothing=0.1)
    >>> hidden, labels = torch.randn(2, 5, 16), torch.randint(0, 1000, (2, 5))
    >>> head(hidden).shape
    torch.Size([2, 5, 1000])
    >>> head(hidden, labels).backward()
    """

    _class_weight = "class_weight"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        class_weight: Tensor | None = None,
        **options: Any,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._store(class_weight, options)

    def forward(  # type: ignore[override]
        self, input: Tensor, target: Tensor | None = None
    ) -> Tensor | LinearCrossEntropyStats:
        if target is None:
            return super().forward(input)
        return linear_cross_entropy(input, self.weight, target, linear_bias=self.bias, **self.loss_options())
