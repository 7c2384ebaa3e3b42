"""The modules of losskit.torch.nn: thin holders of options whose forward is one call."""

from __future__ import annotations

import torch

from losskit.torch import LinearCrossEntropyHead, LinearCrossEntropyLoss, linear_cross_entropy


def test_modules_are_thin_holders() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 7, 8, dtype=torch.float64, generator=gen)
    w = torch.randn(23, 8, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 23, (5, 7), generator=gen)
    class_weight = torch.rand(23, dtype=torch.float64, generator=gen)
    criterion = LinearCrossEntropyLoss(weight=class_weight, label_smoothing=0.1, z_loss=1e-3)
    expected = linear_cross_entropy(x, w, y, weight=class_weight, label_smoothing=0.1, z_loss=1e-3)
    assert torch.equal(criterion(x, w, y), expected)
    restored = LinearCrossEntropyLoss(weight=torch.zeros(23, dtype=torch.float64))
    restored.load_state_dict(criterion.state_dict())
    assert torch.equal(restored.weight, class_weight)

    head = LinearCrossEntropyHead(8, 23, bias=True, dtype=torch.float64, label_smoothing=0.1)
    linear = torch.nn.Linear(8, 23, bias=True, dtype=torch.float64)
    head.load_state_dict(linear.state_dict())  # a drop-in: the same parameter names
    assert torch.equal(head(x), linear(x))
    expected = linear_cross_entropy(x, linear.weight, y, linear_bias=linear.bias, label_smoothing=0.1)
    assert torch.allclose(head(x, y), expected, rtol=1e-12)
