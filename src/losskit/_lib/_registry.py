"""The loss registry: one entry per public loss, holding every fact about it once.

A family module declares each loss with :func:`loss` (and each differentiable function that
is not a loss, such as ``softmax`` or a margin transform, with :func:`transform`). The
decorator turns the implementation, which takes the public arguments plus a keyword ``vjp``
and returns a :class:`~._vjp.Result`, into the public function (whose signature and
annotations lack ``vjp``, and whose return is annotated ``Array``), and records an
:class:`Entry`: the name and family, the implementation as the gradient rule, the positional
arrays and which of them it differentiates, and what the rest of losskit needs to know.
Everything that concerns every loss reads the entries rather than a table of its own:
``value_and_grad`` (the rule), ``losskit.diagnose`` (the misuse checks that apply),
``losskit.torch.nn`` (the module of each loss), the ``losskit`` command (arrays, options,
explainer, curves), the documentation site (page, peer equivalents) and the types that type
checkers see (``losskit/__init__.pyi``: each public signature, a text option as a
``Literal`` of its documented values; ``python tests/test_typing.py`` writes it, and that
test checks it is up to date).

The registry also holds the one switch of the runtime misuse checks (``losskit.set_checks``):
a hook that every public call runs first when it is set.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._compat import Array, is_torch
from ._numerics import quiet_floating_point
from ._reduction import legacy_reduction
from ._vjp import Result

__all__ = [
    "LEGACY_OPTIONS",
    "CallHook",
    "Curve",
    "Entry",
    "Equivalents",
    "Kernel",
    "Module",
    "entries",
    "entry",
    "entry_of",
    "loss",
    "run_call_hook",
    "set_call_hook",
    "transform",
]

LEGACY_OPTIONS = ("size_average", "reduce")
"""PyTorch's deprecated spellings of ``reduction``: accepted, never offered as options."""


@dataclass(frozen=True)
class Equivalents:
    """What a user of each peer library calls instead, as Markdown for the documentation."""

    pytorch: str
    optax: str
    keras: str


@dataclass(frozen=True)
class Module:
    """The ``losskit.torch.nn`` module of a loss.

    Its options are the loss's keyword options with the loss's defaults; those annotated as
    arrays become buffers. ``positional`` lists the options the constructor takes by
    position, in the order of torch's module of the same ``name`` (a ``drop_in``). A module
    with ``centers`` owns the class centres of a margin loss as a parameter, built from
    ``(num_classes, embedding_dim)``, with ``sub_centers`` centres per class (a constructor
    argument with that default) when it is set.
    """

    name: str
    positional: tuple[str, ...] = ()
    drop_in: bool = False
    note: str = ""
    centers: bool = False
    sub_centers: int | None = None


@dataclass(frozen=True)
class Curve:
    """What ``losskit plot`` draws for a loss: the ``kind`` of curve (which says what the x
    axis is and what the loss is given along it) and the plot settings it varies or takes
    (``("gamma",)``: one curve per focal gamma)."""

    kind: str
    vary: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kernel:
    """A PyTorch loss that computes each position's loss as losskit's formula does, on CPU
    tensors: a call it can serve goes to it (with torch's own autograd).

    ``function`` names a ``torch.nn.functional`` loss, or a formula of losskit's written in
    torch's fused operations (:mod:`._torch_kernels`). With ``exact`` its values are
    losskit's to the bit. Without, they differ in the last bits, as two orders of the same
    operations do, and are as accurate: the tests bound both against float64 alike. Such a
    kernel serves calls of at most ``up_to`` elements, where losskit's rule, one Python
    function for the value and the gradient, costs several times torch's kernel.

    It serves an input of float32 or float64 on the CPU with a target of one of two kinds:

    * a floating tensor of the input's shape and dtype (``class_index=False``); torch's
      ``mean`` and ``sum`` are then losskit's too;
    * int64 class indices of an ``(N, C)`` input, each in ``0..C-1`` or ``ignore_index``
      (``class_index=True``, with the options ``ignore_index`` and ``dim`` 1); the kernel
      sums the terms in its own order (a cascade), so a reduced value may differ from
      losskit's sum in the last bits, as two orders of one sum do.

    The options it takes are ``reduction`` (one of ``reductions``), those named in
    ``positive`` (finite numbers > 0), ``non_negative`` (finite numbers >= 0), ``unit``
    (numbers in [0, 1]) and ``flags`` (bools); any other call, the ones losskit has to refuse
    included, runs losskit's own rule. A kernel of ``probabilities`` serves a target in
    [0, 1] only, and checks its input's range itself; so does a class-index kernel its
    indices: where torch refuses a value, losskit's rule runs and names it in its own error.
    Calls under ``torch.func`` transforms run the rule when torch has no vmap rule for the
    kernel (``batched=False``): it would run it one sample at a time, with a warning; and
    so do calls of more than ``up_to`` elements, where losskit's rule, computed block by
    block, is measured faster and leaner than the kernel.
    """

    function: str
    positive: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    unit: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    reductions: tuple[str, ...] = ("none", "mean", "sum")
    class_index: bool = False
    probabilities: bool = False
    batched: bool = True
    exact: bool = True
    up_to: int | None = None


@dataclass(frozen=True)
class Entry:
    """Every fact about one public loss (or differentiable function)."""

    name: str
    family: str  # the kind of loss, e.g. "classification"; one family module holds it
    function: Callable[..., Array]  # the public function
    rule: Callable[..., Result]  # the implementation: value and vector-Jacobian products
    argnums: tuple[int, ...]  # the positional arrays the rule differentiates
    arrays: tuple[str, ...]  # the positional parameters that are arrays
    is_loss: bool
    equivalents: Equivalents | None = None
    module: Module | None = None
    diagnostics: tuple[str, ...] = ()  # names of the misuse rules of losskit.diagnose
    explainer: str | None = None  # the step-by-step explainer of ``losskit explain``
    curve: Curve | None = None
    docs: str | None = None  # its page, relative to docs/
    pointwise: bool = False  # see loss()
    kernel: Kernel | None = None  # see loss()
    jax_rule: bool = True  # see loss()
    compiled_recompute: bool = False  # see loss()

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        """The public signature (without ``vjp``)."""
        return inspect.signature(self.function)

    @functools.cached_property
    def _defaults(self) -> dict[str, Any]:
        return {
            name: p.default
            for name, p in self.signature.parameters.items()
            if p.kind is p.KEYWORD_ONLY and name not in LEGACY_OPTIONS
        }

    def options(self) -> dict[str, Any]:
        """The keyword options and their defaults, in signature order (the deprecated
        ``size_average`` and ``reduce`` left out)."""
        return dict(self._defaults)

    @functools.cached_property
    def _array_options(self) -> tuple[str, ...]:
        parameters = self.signature.parameters
        return tuple(name for name in self._defaults if "Array" in parameters[name].annotation)

    def array_options(self) -> tuple[str, ...]:
        """The keyword options that take arrays (class weights, ``pos_weight``, ...): those
        annotated with ``Array``."""
        return self._array_options


CallHook = Callable[[str, inspect.BoundArguments], None]
"""``hook(loss_name, bound_arguments)``, run before a public call (``losskit.set_checks``)."""

_ENTRIES: dict[str, Entry] = {}
_BY_FUNCTION: dict[Callable[..., Any], Entry] = {}
_CALL_HOOK: list[CallHook | None] = [None]


def set_call_hook(hook: CallHook | None) -> CallHook | None:
    """Run ``hook(loss_name, bound_arguments)`` before every public call from now on (``None``:
    nothing), from the loss itself and from ``value_and_grad``; returns the previous hook.

    The hook sees the arguments exactly as the caller passed them, bound to the loss's
    signature, before the loss runs. This is the one switch behind ``losskit.set_checks``.
    """
    previous = _CALL_HOOK[0]
    _CALL_HOOK[0] = hook
    return previous


def run_call_hook(name: str, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Run the hook, if one is set, on a call of ``name`` with its public ``signature``."""
    hook = _CALL_HOOK[0]
    if hook is not None:
        hook(name, signature.bind(*args, **kwargs))


def _torch_wrt(args: tuple[Any, ...], kwargs: dict[str, Any], argnums: tuple[int, ...]) -> tuple[int, ...]:
    # The positional arguments autograd wants gradients of, when the rule can give them all:
    # eager PyTorch with grad mode on, no option tensor that needs a gradient of its own.
    torch = sys.modules.get("torch")
    if torch is None or not torch.is_grad_enabled():
        return ()
    if not torch.compiler.is_compiling() and _forward_mode(torch):
        return ()
    wrt = tuple(k for k in argnums if k < len(args) and isinstance(args[k], torch.Tensor) and args[k].requires_grad)
    if not wrt:
        return ()
    others = [a for k, a in enumerate(args) if k not in argnums]
    if any(isinstance(a, torch.Tensor) and a.requires_grad for a in others) or any(isinstance(v, torch.Tensor) and v.requires_grad for v in kwargs.values()):
        return ()
    return wrt


def _jax_rule_applies(args: tuple[Any, ...], kwargs: dict[str, Any], default: str) -> bool:
    # A reduced loss of JAX arrays whose options hold no JAX array (which a custom rule would
    # have to differentiate as well) is differentiated by its rule.
    jax = sys.modules.get("jax")
    if jax is None or not any(isinstance(a, jax.Array) for a in args):
        return False
    if any(isinstance(v, jax.Array) for v in kwargs.values()):
        return False
    return _reduction(kwargs, default) != "none"


def _forward_mode(torch: Any) -> bool:
    # Forward-mode differentiation (torch.func.jvp, jacfwd, hessian; forward_ad) goes through
    # the plain operations: the rule gives vector-Jacobian products only.
    if torch.autograd.forward_ad._current_level >= 0:
        return True
    if torch._C._functorch.peek_interpreter_stack() is None:
        return False
    from torch._functorch.pyfunctorch import TransformType, retrieve_all_functorch_interpreters

    return any(level.key() == TransformType.Jvp for level in retrieve_all_functorch_interpreters())


def _reduction(kwargs: dict[str, Any], default: str) -> str:
    # The reduction a call asks for, torch's legacy size_average / reduce folded in
    # ("none" for a transform, which has no reduction); the loss itself validates it.
    size_average, reduce = kwargs.get("size_average"), kwargs.get("reduce")
    if size_average is None and reduce is None:
        return kwargs.get("reduction", default)
    return legacy_reduction(size_average, reduce)


def entries() -> tuple[Entry, ...]:
    """Every entry, in alphabetical order of the names."""
    return tuple(_ENTRIES[name] for name in sorted(_ENTRIES))


def entry(name: str) -> Entry | None:
    """The entry of the loss called ``name``; ``None`` if there is none."""
    return _ENTRIES.get(name)


def entry_of(fn: object) -> Entry | None:
    """The entry whose public function is ``fn``; ``None`` if there is none."""
    try:
        return _BY_FUNCTION.get(fn)  # type: ignore[call-overload]
    except TypeError:  # unhashable
        return None


def _register(facts: dict[str, Any], argnums: tuple[int, ...], arrays: tuple[str, ...] | None) -> Callable[[Callable[..., Result]], Callable[..., Array]]:
    def decorate(impl: Callable[..., Result]) -> Callable[..., Array]:
        signature = inspect.signature(impl)
        name = impl.__name__
        if name in _ENTRIES:
            msg = f"{name}: a loss of this name is registered already, by {_ENTRIES[name].rule.__module__}"
            raise ValueError(msg)
        module = facts.get("module")
        taken = [e.name for e in _ENTRIES.values() if module is not None and e.module is not None and e.module.name == module.name]
        if taken:
            msg = f"{name}: the torch.nn module name {module.name!r} is {taken[0]}'s already"
            raise ValueError(msg)
        options = [p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY and p.name != "vjp"]
        if not all(isinstance(p.annotation, str) for p in options):
            # The command line and the torch.nn modules read each option's kind from its
            # annotation's text ("Array | None", "float", ...).
            msg = (
                f"{name}: every option needs an annotation, read as text: annotate them all and "
                "write the module with `from __future__ import annotations`"
            )
            raise TypeError(msg)
        run = quiet_floating_point(impl)
        positional = tuple(n for n, p in signature.parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD)
        default_reduction = signature.parameters["reduction"].default if "reduction" in signature.parameters else "none"
        pointwise = facts.get("pointwise", False)
        kernel = facts.get("kernel")
        jax_rule = facts.get("jax_rule", True)
        compiled_recompute = facts.get("compiled_recompute", False)

        @functools.wraps(impl)
        def public(*args: Any, **kwargs: Any) -> Array:
            if "vjp" in kwargs:
                msg = f"{name}() got an unexpected keyword argument 'vjp'"
                raise TypeError(msg)
            run_call_hook(name, public.__signature__, args, kwargs)  # type: ignore[attr-defined]
            if kernel is not None and args and is_torch(args[0]):
                from . import _torch_kernels

                served = _torch_kernels.call(kernel, args, kwargs, default_reduction)
                if served is not None:
                    return served
            wrt = _torch_wrt(args, kwargs, argnums)
            if wrt:
                from . import _torch_autograd

                return _torch_autograd.apply(
                    _torch_autograd.Call(
                        run, kwargs, wrt, _reduction(kwargs, default_reduction), pointwise,
                        name, positional, compiled_recompute,
                    ),
                    args,
                )
            if jax_rule and _jax_rule_applies(args, kwargs, default_reduction):
                from . import _jax_autodiff

                return _jax_autodiff.apply(run, args, kwargs, argnums, name, positional)
            return run(*args, **kwargs).value

        public.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p for p in signature.parameters.values() if p.name != "vjp"],
            return_annotation="Array",
        )
        # functools.wraps shared the implementation's annotations; the public function has
        # those of its signature (which typing.get_type_hints resolves in this module).
        public.__annotations__ = {n: a for n, a in impl.__annotations__.items() if n != "vjp"} | {"return": "Array"}
        del public.__wrapped__  # type: ignore[attr-defined]
        found = Entry(
            name=name,
            function=public,
            rule=impl,
            argnums=argnums,
            arrays=positional if arrays is None else arrays,
            **facts,
        )
        _ENTRIES[name] = found
        _BY_FUNCTION[public] = found
        return public

    return decorate


def loss(
    *,
    family: str,
    equivalents: Equivalents,
    module: Module,
    curve: Curve,
    docs: str,
    argnums: tuple[int, ...] = (0,),
    arrays: tuple[str, ...] | None = None,
    diagnostics: tuple[str, ...] = (),
    explainer: str | None = None,
    pointwise: bool = False,
    kernel: Kernel | None = None,
    jax_rule: bool = True,
    compiled_recompute: bool = False,
) -> Callable[[Callable[..., Result]], Callable[..., Array]]:
    """Make the public function of a loss's implementation and record its :class:`Entry`.

    ``argnums`` lists the positional arguments the implementation can differentiate;
    ``arrays`` the positional parameters that are arrays (by default all of them). A
    ``pointwise`` loss of arrays of one shape has the loss of each element read that element
    of each array only, and its ``"mean"`` divides the sum by the number of elements (when no
    option is an array): it may then be computed block by block. A loss with a ``kernel``
    hands the calls that kernel computes as losskit does (see :class:`Kernel`) to PyTorch's
    own. On JAX a reduced loss is differentiated by its rule (a ``custom_jvp``) unless
    ``jax_rule`` is False: where XLA's own differentiation of the formula is measured faster
    (``benchmarks/bench_backends.py``). Under ``torch.compile`` a reduced loss computes its
    gradients beside its value, unless ``compiled_recompute``: then the backward pass runs
    the rule again with the upstream gradient, one fused pass over the inputs as in torch's
    own compiled loss, where value and gradient share no work (measured there too). The public
    function runs with NumPy's floating-point warnings off: losses produce ``inf`` and NaN
    exactly where PyTorch does, and those are results, not accidents.
    """
    facts = {
        "family": family,
        "is_loss": True,
        "equivalents": equivalents,
        "module": module,
        "diagnostics": diagnostics,
        "explainer": explainer,
        "curve": curve,
        "docs": docs,
        "pointwise": pointwise,
        "kernel": kernel,
        "jax_rule": jax_rule,
        "compiled_recompute": compiled_recompute,
    }
    return _register(facts, argnums, arrays)


def transform(
    *,
    family: str,
    docs: str,
    argnums: tuple[int, ...] = (0,),
    arrays: tuple[str, ...] | None = None,
    diagnostics: tuple[str, ...] = (),
) -> Callable[[Callable[..., Result]], Callable[..., Array]]:
    """:func:`loss` for a differentiable function that is not a loss (``softmax``, a margin
    transform): it has a gradient rule, a page and misuse checks, but no module or curve."""
    facts = {"family": family, "is_loss": False, "diagnostics": diagnostics, "docs": docs}
    return _register(facts, argnums, arrays)
