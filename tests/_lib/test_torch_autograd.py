"""A loss's gradient rule as PyTorch's autodiff rule: what autograd keeps for the backward
pass, and that nothing is lost by it: double backward, repeated backward, forward mode,
option tensors that need gradients, and one graph under ``torch.compile``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _cases import CASES, Case
from _support import assert_close

import losskit as lk
from losskit._lib._registry import entry

SPREAD = [c for group in CASES.values() for c in group[:: max(1, len(group) // 6)] if c.smooth]


def _leaf_call(case: Case, ours: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if not ours:
        out, leaf = case.reference(requires_grad=True)
        return out, leaf
    leaf = torch.from_numpy(case.arrays[0].copy()).requires_grad_(True)
    rest = [torch.from_numpy(a.copy()) for a in case.arrays[1:]]
    options = {k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    return getattr(lk, case.loss)(leaf, *rest, **options), leaf


def _gradient_and_hvp(case: Case, ours: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of sum(u * loss) and its derivative along a fixed direction."""
    out, leaf = _leaf_call(case, ours)
    rng = np.random.default_rng(1)
    u = torch.from_numpy(rng.uniform(0.5, 1.5, tuple(out.shape)))
    (g,) = torch.autograd.grad((out * u).sum(), leaf, create_graph=True)
    direction = torch.from_numpy(rng.standard_normal(tuple(leaf.shape)))
    if not g.requires_grad:  # a gradient that does not depend on the input
        return g, torch.zeros_like(leaf)
    (h,) = torch.autograd.grad((g * direction).sum(), leaf, allow_unused=True)
    return g.detach(), torch.zeros_like(leaf) + (0 if h is None else h)  # h may be a ZeroTensor


@pytest.mark.parametrize("case", SPREAD, ids=lambda c: c.id)
@pytest.mark.usefixtures("torch_route")
def test_double_backward_equals_torchs(case: Case) -> None:
    g, h = _gradient_and_hvp(case, ours=True)
    g_ref, h_ref = _gradient_and_hvp(case, ours=False)
    assert_close(g, g_ref, rtol=1e-9, atol=1e-12)
    assert_close(h, h_ref, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_a_second_backward_of_a_retained_graph_gives_the_same_gradient(reduction: str) -> None:
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    out = lk.cross_entropy(x, y, reduction=reduction, label_smoothing=0.1)
    u = torch.rand(out.shape, dtype=torch.float64)
    (first,) = torch.autograd.grad(out, x, u, retain_graph=True)
    (second,) = torch.autograd.grad(out, x, u)
    (expected,) = torch.autograd.grad(F.cross_entropy(x, y, reduction=reduction, label_smoothing=0.1), x, u)
    assert_close(first, expected, rtol=1e-12, atol=1e-15)
    assert_close(second, expected, rtol=1e-12, atol=1e-15)


def test_the_upstream_gradient_is_left_as_it_was() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.tensor(3.0)
    lk.mse_loss(x, torch.zeros(4, 3)).backward(upstream)
    assert upstream.item() == 3.0
    assert_close(x.grad, 3.0 * 2 * x.detach() / 12, rtol=1e-6)


def test_cross_entropy_keeps_only_its_inputs_for_backward() -> None:
    # torch keeps the log-softmax, an N x C tensor beside the input; losskit's rule keeps the
    # input and target (the gradient, computed in the forward pass, is its one N x C buffer).
    def saved_bytes(fn: object) -> int:
        n = entry("cross_entropy").kernel.up_to // 1024 + 1  # type: ignore[union-attr]  # torch's kernel serves fewer
        x = torch.randn(n, 1024, requires_grad=True)
        y = torch.randint(0, 1024, (n,))
        sizes = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            sizes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(x, y).backward()  # type: ignore[operator]
        return sum(sizes), x.numel() * x.element_size() + y.numel() * y.element_size()

    ours, inputs = saved_bytes(lk.cross_entropy)
    theirs, _ = saved_bytes(F.cross_entropy)
    assert ours <= inputs < theirs


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func's own
def test_forward_mode_goes_through_the_operations() -> None:
    x = torch.randn(5, 4, dtype=torch.float64)
    y = torch.randint(0, 4, (5,))
    hessian = torch.func.hessian(lambda a: lk.cross_entropy(a, y, label_smoothing=0.2))(x)
    expected = torch.func.hessian(lambda a: F.cross_entropy(a, y, label_smoothing=0.2))(x)
    assert_close(hessian, expected, rtol=1e-10, atol=1e-13)
    t = torch.rand(5, 4, dtype=torch.float64)
    _, tangent = torch.func.jvp(lambda a: lk.binary_cross_entropy_with_logits(a, t, reduction="none"), (x,), (t,))
    _, expected_tangent = torch.func.jvp(lambda a: F.binary_cross_entropy_with_logits(a, t, reduction="none"), (x,), (t,))
    assert_close(tangent, expected_tangent, rtol=1e-12, atol=1e-15)


def test_an_option_tensor_that_needs_a_gradient_gets_it() -> None:
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (6,))
    w = torch.rand(4, dtype=torch.float64, requires_grad=True)
    ours = torch.autograd.grad(lk.cross_entropy(x, y, weight=w), (x, w))
    # torch's own cross_entropy refuses a weight that needs a gradient: its weighted mean
    theirs = torch.autograd.grad((w[y] * F.cross_entropy(x, y, reduction="none")).sum() / w[y].sum(), (x, w))
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b, rtol=1e-12, atol=1e-15)


FIRST_OF_EACH = [group[0] for group in CASES.values()]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("case", FIRST_OF_EACH, ids=lambda c: c.id)
def test_every_loss_compiles_forward_and_backward_into_one_graph(case: Case) -> None:
    torch._dynamo.reset()
    rest = [torch.from_numpy(a.copy()) for a in case.arrays[1:]]
    options = {k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    fn = getattr(lk, case.loss)

    def objective(x: torch.Tensor) -> torch.Tensor:
        return fn(x, *rest, **options).sum()

    compiled = torch.compile(objective, backend="aot_eager", fullgraph=True)
    x = torch.from_numpy(case.arrays[0].copy()).requires_grad_(True)
    (g,) = torch.autograd.grad(compiled(x), x)
    (expected,) = torch.autograd.grad(objective(x), x)
    assert_close(g, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    ("loss", "options"),
    [
        ("binary_cross_entropy_with_logits", {}),
        ("binary_cross_entropy_with_logits", {"reduction": "sum", "label_smoothing": 0.1}),
        ("binary_cross_entropy", {}),
        ("sigmoid_focal_loss", {"reduction": "mean"}),
        ("kl_div", {"reduction": "mean"}),
    ],
)
def test_a_large_pointwise_loss_in_blocks_equals_it_in_one_piece(
    monkeypatch: pytest.MonkeyPatch, threads: int, loss: str, options: dict[str, object]
) -> None:
    from losskit._lib import _torch_autograd, _torch_kernels

    monkeypatch.setattr(_torch_kernels, "call", lambda *args: None)  # a call as large as the blocks' own
    monkeypatch.setattr(_torch_autograd, "_BLOCK", 1000)  # 4 blocks and a part of one
    monkeypatch.setattr(_torch_autograd, "_PARALLEL_BLOCK", 1500)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(67, 101, dtype=torch.float64, generator=gen)
    t = torch.rand(67, 101, dtype=torch.float64, generator=gen)
    if loss == "binary_cross_entropy":
        x = torch.sigmoid(x)
    elif loss == "kl_div":
        x = x.log_softmax(1)
    calls: list[int] = []
    run = _torch_autograd.Call.run
    monkeypatch.setattr(_torch_autograd.Call, "run", lambda self, *a, **k: calls.append(1) or run(self, *a, **k))
    leaf = x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's "mean" warning, which its own tests check
        value = getattr(lk, loss)(leaf, t, **options)
        value.backward()
        whole = lk.value_and_grad(getattr(lk, loss))(x, t, **options)
    assert len(calls) == (7 if threads == 1 else 5)
    torch.testing.assert_close(value.detach(), whole[0], rtol=1e-13, atol=0)
    torch.testing.assert_close(leaf.grad, whole[1], rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    ("loss", "options", "wrt"),
    [
        ("sigmoid_focal_loss", {"reduction": "mean"}, (0,)),
        ("binary_cross_entropy_with_logits", {"reduction": "sum", "label_smoothing": 0.1}, (0, 1)),
        ("cross_entropy", {"label_smoothing": 0.2}, (0,)),
        ("binary_cross_entropy", {}, (0, 1)),  # compiled_recompute: the backward runs the rule again
    ],
)
def test_torch_compile_traces_a_reduced_loss_through_its_rule(
    loss: str, options: dict[str, object], wrt: tuple[int, ...], torch_route: str
) -> None:
    traced: list[str] = []

    def backend(gm: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> object:
        traced.extend(str(node.target) for node in gm.graph.nodes)
        return torch._dynamo.lookup_backend("aot_eager")(gm, inputs)

    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 5, dtype=torch.float64, generator=gen)
    if loss == "binary_cross_entropy":
        x = torch.sigmoid(x)
    t = torch.randint(0, 5, (6,), generator=gen) if loss == "cross_entropy" else torch.rand(6, 5, dtype=torch.float64, generator=gen)
    leaves = [a.clone().requires_grad_(k in wrt) for k, a in enumerate((x, t))]
    compiled = torch.compile(lambda a, b: getattr(lk, loss)(a, b, **options) * 3, backend=backend, fullgraph=True)
    value = compiled(*leaves)
    grads = torch.autograd.grad(value, [leaves[k] for k in wrt])
    # the rule, not the formula's operations (a call a kernel serves is the kernel's)
    assert ("autograd_function_apply" in traced) == (torch_route == "rules" or entry(loss).kernel is None)  # type: ignore[union-attr]
    own, expected = lk.value_and_grad(getattr(lk, loss), argnums=wrt)(x, t, **options)
    torch.testing.assert_close(value.detach(), 3 * own, rtol=1e-12, atol=0)
    for got, want in zip(grads, expected if isinstance(expected, tuple) else (expected,), strict=True):
        torch.testing.assert_close(got, 3 * want, rtol=1e-12, atol=1e-15)
