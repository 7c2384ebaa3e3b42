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

    # A drop-in for nn.Linear with its defaults: the same state_dict keys either way (the
    # class weights stay out of it).
    head = LinearCrossEntropyHead(8, 23, dtype=torch.float64, label_smoothing=0.1, class_weight=class_weight)
    linear = torch.nn.Linear(8, 23, dtype=torch.float64)
    head.load_state_dict(linear.state_dict())
    linear.load_state_dict(head.state_dict())
    assert torch.equal(head(x), linear(x))
    expected = linear_cross_entropy(
        x, linear.weight, y, linear_bias=linear.bias, weight=class_weight, label_smoothing=0.1
    )
    assert torch.allclose(head(x, y), expected, rtol=1e-12)


def test_modules_show_the_options_that_differ_from_the_defaults() -> None:
    assert repr(LinearCrossEntropyLoss(z_loss=1e-4, reduction="sum")) == "LinearCrossEntropyLoss(reduction='sum', z_loss=0.0001)"
    head = LinearCrossEntropyHead(4, 9, bias=False, softcap=30.0)
    assert repr(head) == "LinearCrossEntropyHead(in_features=4, out_features=9, bias=False, softcap=30.0)"


def test_the_head_takes_lower_precision_hidden_states_under_autocast() -> None:
    gen = torch.Generator().manual_seed(3)
    head = LinearCrossEntropyHead(8, 13)
    hidden, y = torch.randn(2, 5, 8, generator=gen), torch.randint(0, 13, (2, 5), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = torch.nn.Linear(8, 8)(hidden)
        assert low.dtype == torch.bfloat16
        loss = head(low, y)
    loss.backward()
    assert head.weight.grad is not None and head.weight.grad.dtype == torch.float32
    expected = linear_cross_entropy(low.detach().float(), head.weight, y, linear_bias=head.bias)
    assert torch.allclose(loss, expected, rtol=1e-6)


# ------------------------------------------------------- a module for every losskit loss

from typing import Any  # noqa: E402

import pytest  # noqa: E402

import losskit as lk  # noqa: E402
from losskit._lib._registry import entries  # noqa: E402
from losskit.torch import nn as lknn  # noqa: E402


def _data(n: int = 6, c: int = 4, d: int = 5, dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(n, c, dtype=dtype, generator=gen)
    return {
        "logits": logits,
        "classes": torch.randint(0, c, (n,), generator=gen),
        "probs": torch.rand(n, c, dtype=dtype, generator=gen),
        "bits": torch.randint(0, 2, (n, c), generator=gen).to(dtype),
        "log_probs": torch.log_softmax(logits, 1),
        "embeddings": torch.randn(n, d, dtype=dtype, generator=gen),
        "weight": torch.rand(c, dtype=dtype, generator=gen) + 0.5,
    }


# module -> (constructor arguments, the arrays its forward takes, options to pass)
MODULES: dict[str, tuple[type, tuple, tuple[str, ...], dict]] = {
    "cross_entropy": (lknn.CrossEntropyLoss, (), ("logits", "classes"), {"weight": "weight", "label_smoothing": 0.1}),
    "nll_loss": (lknn.NLLLoss, (), ("log_probs", "classes"), {"weight": "weight", "ignore_index": 1}),
    "binary_cross_entropy": (lknn.BCELoss, (), ("probs", "bits"), {"reduction": "sum"}),
    "binary_cross_entropy_with_logits": (lknn.BCEWithLogitsLoss, (), ("logits", "bits"), {"pos_weight": "weight"}),
    "l1_loss": (lknn.L1Loss, (), ("logits", "probs"), {}),
    "mse_loss": (lknn.MSELoss, (), ("logits", "probs"), {"reduction": "none"}),
    "smooth_l1_loss": (lknn.SmoothL1Loss, (), ("logits", "probs"), {"beta": 0.5}),
    "huber_loss": (lknn.HuberLoss, (), ("logits", "probs"), {"delta": 0.5}),
    "kl_div": (lknn.KLDivLoss, (), ("log_probs", "probs"), {"reduction": "batchmean"}),
    "focal_loss": (lknn.FocalLoss, (), ("logits", "classes"), {"alpha": "weight", "gamma": 1.5}),
    "sigmoid_focal_loss": (lknn.SigmoidFocalLoss, (), ("logits", "bits"), {"reduction": "mean"}),
    "softmax_entropy": (lknn.SoftmaxEntropyLoss, (), ("logits",), {}),
    "arcface_loss": (lknn.ArcFaceLoss, (4, 5), ("embeddings", "classes"), {"scale": 16.0, "weight": "weight"}),
    "cosface_loss": (lknn.CosFaceLoss, (4, 5), ("embeddings", "classes"), {"margin": 0.2}),
    "sphereface_loss": (lknn.SphereFaceLoss, (4, 5), ("embeddings", "classes"), {"margin": 2, "lambda_": 5.0}),
    "large_margin_softmax_loss": (lknn.LargeMarginSoftmaxLoss, (4, 5), ("embeddings", "classes"), {"margin": 3}),
    "subcenter_arcface_loss": (lknn.SubCenterArcFaceLoss, (4, 5), ("embeddings", "classes"), {"label_smoothing": 0.1}),
}


def _build(name: str, dtype: torch.dtype = torch.float64) -> tuple[torch.nn.Module, tuple, dict]:
    cls, args, arrays, options = MODULES[name]
    data = _data(dtype=dtype)
    options = {k: (data[v] if isinstance(v, str) and v in data else v) for k, v in options.items()}
    extra = {"dtype": dtype} if args else {}
    return cls(*args, **options, **extra), tuple(data[a] for a in arrays), options


def test_every_loss_has_a_module() -> None:
    assert {e.name for e in entries() if e.is_loss} == set(MODULES)
    assert {cls.__name__ for cls, *_ in MODULES.values()} <= set(lknn.__all__)
    for name, (cls, *_) in MODULES.items():
        assert cls.entry.function is getattr(lk, name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_forward_is_the_function(name: str) -> None:
    module, arrays, options = _build(name)
    fn = getattr(lk, name)
    if hasattr(module, "centers"):
        expected = fn(arrays[0], module.centers, arrays[1], **options)
    else:
        expected = fn(*arrays, **options)
    got = module(*arrays)
    assert torch.equal(got, expected)
    if hasattr(module, "centers"):  # autograd reaches the class centres
        got.backward()
        assert module.centers.grad is not None and torch.isfinite(module.centers.grad).all()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_state_dict_round_trips(name: str) -> None:
    module, arrays, _ = _build(name)
    fresh, _, _ = _build(name)
    for key in module.state_dict():  # a different starting point, then the saved state
        getattr(fresh, key).data.mul_(0.5)
    fresh.load_state_dict(module.state_dict())
    assert torch.equal(fresh(*arrays), module(*arrays))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_dtype_moves_carry_buffers_and_centres(name: str) -> None:
    module, arrays, _ = _build(name, dtype=torch.float32)
    module.to(torch.float64)
    for tensor in [*module.parameters(), *module.buffers()]:
        assert tensor.dtype == torch.float64
    arrays64 = tuple(a.double() if a.is_floating_point() else a for a in arrays)
    assert module(*arrays64).dtype == torch.float64
    module.to("meta")  # a device move: shapes only, no data checks
    assert all(t.device.type == "meta" for t in [*module.parameters(), *module.buffers()])


@pytest.mark.parametrize(
    ("ours", "theirs", "args", "kwargs", "arrays"),
    [
        (lknn.CrossEntropyLoss, torch.nn.CrossEntropyLoss, ("weight",), {"ignore_index": 2, "label_smoothing": 0.2}, ("logits", "classes")),
        (lknn.NLLLoss, torch.nn.NLLLoss, ("weight",), {"reduction": "sum"}, ("log_probs", "classes")),
        (lknn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, (None, None, None, "mean", "weight"), {}, ("logits", "bits")),
        (lknn.SmoothL1Loss, torch.nn.SmoothL1Loss, (None, None, "sum", 0.3), {}, ("logits", "probs")),
        (lknn.HuberLoss, torch.nn.HuberLoss, ("none", 0.7), {}, ("logits", "probs")),
        (lknn.KLDivLoss, torch.nn.KLDivLoss, (None, None, "batchmean", False), {}, ("log_probs", "probs")),
    ],
)
def test_torch_named_modules_are_drop_ins(ours: type, theirs: type, args: tuple, kwargs: dict, arrays: tuple) -> None:
    data = _data()
    positional = tuple(data[a] if isinstance(a, str) and a in data else a for a in args)
    x = tuple(data[a] for a in arrays)
    torch.testing.assert_close(ours(*positional, **kwargs)(*x), theirs(*positional, **kwargs)(*x), rtol=1e-12, atol=0)


def test_legacy_options_map_to_reduction_once() -> None:
    with pytest.warns(DeprecationWarning, match="size_average"):
        module = lknn.MSELoss(size_average=False)
    assert module.reduction == "sum"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: lknn.CrossEntropyLoss(gamma=2.0), "CrossEntropyLoss: unknown option(s) ['gamma']"),
        (lambda: lknn.HuberLoss("mean", 1.0, 2.0), "HuberLoss takes at most 2 positional options (reduction, delta), got 3"),
        (lambda: lknn.CrossEntropyLoss(None, weight=None), "got option 'weight' twice"),
    ],
)
def test_bad_options_get_a_clear_error(make: Any, words: str) -> None:
    with pytest.raises(TypeError) as info:
        make()
    assert words in str(info.value)


# torch's own inductor imports a module that warns about torch.jit.script_method
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", ["cross_entropy", "binary_cross_entropy_with_logits", "focal_loss", "arcface_loss", "sphereface_loss"])
def test_modules_work_under_torch_compile(name: str) -> None:
    module, arrays, _ = _build(name)
    compiled = torch.compile(module)
    torch.testing.assert_close(compiled(*arrays), module(*arrays), rtol=1e-12, atol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_a_changed_option_recompiles_into_one_graph() -> None:
    # SphereFace anneals lambda_ every step: dynamo then traces it as a symbolic float
    torch.manual_seed(0)
    module = lknn.SphereFaceLoss(5, 6).double()
    compiled = torch.compile(module, fullgraph=True)
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 5, (8,))
    for step in (0, 100, 1000):
        module.lambda_ = lk.sphereface_lambda(step)
        torch.testing.assert_close(compiled(x, y), module(x, y), rtol=1e-12, atol=0)


# ------------------------------------------------- the head's logits are the loss's logits


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("softcap", "logit_scale"), [(2.0, 0.5), (None, 1.7), (3.0, 1.0)])
def test_the_heads_logits_are_the_ones_its_loss_uses(softcap: float | None, logit_scale: float, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(11)
    head = LinearCrossEntropyHead(8, 17, dtype=dtype, softcap=softcap, logit_scale=logit_scale)
    hidden, y = torch.randn(3, 4, 8, dtype=dtype, generator=gen), torch.randint(0, 17, (3, 4), generator=gen)
    z = (hidden.double() @ head.weight.double().T + head.bias.double()) * logit_scale
    expected = z if softcap is None else softcap * torch.tanh(z / softcap)
    logits = head(hidden)
    assert logits.dtype == dtype
    tolerance = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(logits.double(), expected, **tolerance)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 17), y.reshape(-1))
    torch.testing.assert_close(head(hidden, y), loss, **tolerance)


# ------------------------------------------- weight and pos_weight are buffers, as in torch


@pytest.mark.parametrize(
    ("ours", "theirs", "option"),
    [
        (lknn.CrossEntropyLoss, torch.nn.CrossEntropyLoss, "weight"),
        (lknn.NLLLoss, torch.nn.NLLLoss, "weight"),
        (lknn.BCELoss, torch.nn.BCELoss, "weight"),
        (lknn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, "weight"),
        (lknn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, "pos_weight"),
    ],
)
def test_an_array_option_assigned_later_is_a_buffer_as_in_torch(ours: type, theirs: type, option: str) -> None:
    assert set(ours()._buffers) == set(theirs()._buffers)
    module, reference = ours(), theirs()
    w = torch.rand(4) + 0.5
    setattr(module, option, w)
    setattr(reference, option, w)
    assert list(module.state_dict()) == list(reference.state_dict()) == [option]
    module.to(torch.float64)
    assert getattr(module, option).dtype == torch.float64


# ------------------------------------- margin modules check their arguments when built


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: lknn.ArcFaceLoss(5, 0), ValueError, "ArcFaceLoss: embedding_dim must be a positive int, got 0"),
        (lambda: lknn.CosFaceLoss(0, 4), ValueError, "CosFaceLoss: num_classes must be a positive int, got 0"),
        (lambda: lknn.ArcFaceLoss(5.0, 4), TypeError, "ArcFaceLoss: num_classes must be an int, got float"),
        (lambda: lknn.SubCenterArcFaceLoss(5, 4, sub_centers=0), ValueError, "sub_centers must be a positive int, got 0"),
        (lambda: lknn.ArcFaceLoss(5, 4, margin="x"), TypeError, "ArcFaceLoss: margin must be a real number, got str"),
        (lambda: lknn.ArcFaceLoss(5, 4, fallback="x"), ValueError, "ArcFaceLoss: fallback must be one of"),
        (lambda: lknn.SphereFaceLoss(5, 4, margin=1.5), ValueError, "SphereFaceLoss: margin must be an integer >= 1"),
        (lambda: lknn.CosFaceLoss(5, 4, reduction="avg"), ValueError, "CosFaceLoss: reduction must be one of"),
        (lambda: lknn.ArcFaceLoss(5, 4, weight=torch.ones(4)), ValueError, "ArcFaceLoss: weight must have one value per class, shape (5,)"),
        (lambda: lknn.ArcFaceLoss(), TypeError, "ArcFaceLoss needs num_classes and embedding_dim, the sizes of the class centres"),
        (lambda: lknn.SubCenterArcFaceLoss(5), TypeError, "SubCenterArcFaceLoss needs num_classes and embedding_dim"),
    ],
)
def test_margin_modules_check_their_arguments_when_built(make: Any, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_margin_modules_speak_of_embeddings_of_the_wrong_size_not_of_centres() -> None:
    with pytest.raises(ValueError) as info:
        lknn.ArcFaceLoss(10, 8)(torch.randn(4, 16), torch.randint(0, 10, (4,)))
    message = str(info.value)
    assert message.startswith("ArcFaceLoss: embeddings must have embedding_dim = 8 as their last dimension")
    assert "got shape (4, 16)" in message and "centers must" not in message


def test_margin_modules_build_on_the_meta_device() -> None:
    # deferred initialisation (FSDP): no values to check the options with, and none needed
    with torch.device("meta"):
        module = lknn.ArcFaceLoss(10, 8, weight=torch.ones(10))
    assert module.centers.is_meta and module.weight.is_meta
