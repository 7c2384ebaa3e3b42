"""``value_and_grad``: exact analytic gradients of losskit's losses, on any backend."""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Callable
from typing import Any

from ._lib._registry import entry_of, run_call_hook
from ._lib._vjp import VJP
from ._lib._compat import Array
from ._lib._numerics import quiet_floating_point

__all__ = ["value_and_grad"]


def value_and_grad(
    loss_fn: Callable[..., Array], *, argnums: int | tuple[int, ...] = 0
) -> Callable[..., tuple[Array, Any]]:
    r"""Turn a losskit loss into a function returning its value and its gradient.

    .. math::

        (\ell(x, \ldots),\; g^\top \partial \ell / \partial x)

    where :math:`g` is ``grad_output``, the gradient flowing in from above (1 for a scalar
    loss), so that with ``reduction="none"`` the result is the vector-Jacobian product.

    Parameters
    ----------
    loss_fn : callable
        A loss of losskit (``lk.cross_entropy``, ``lk.mse_loss``, ...).
    argnums : int or tuple of int, default 0
        Which positional arguments to differentiate: 0 for the input, ``(0, 1)`` for input and
        target where the target can carry a gradient (probability targets of
        ``cross_entropy``, regression targets, ``kl_div`` and binary cross-entropy targets).
        A single argnum may be any integer (anything with ``__index__``). Only floating-point
        arguments can be differentiated: an integer or boolean one raises ``TypeError``.

    Returns
    -------
    callable
        A function with ``loss_fn``'s own signature plus a keyword ``grad_output`` (the
        upstream gradient, shaped like the loss; default 1 for a scalar loss). It returns
        ``(value, gradient)``, the gradient shaped like the argument, or a tuple of gradients
        when ``argnums`` is a tuple.

    Notes
    -----
    The gradients come from closed-form rules evaluated in the same pass as the value, with
    the same intermediates: no finite differences and no autograd, so plain NumPy can train.
    For NumPy cross-entropy that pass is the blocked kernel of the forward, writing
    :math:`\mathrm{softmax} - \mathrm{onehot}` straight into the gradient. Each rule equals
    PyTorch's autograd, including its conventions where the derivative is not unique
    (``sign(0) = 0`` for L1, the epsilon of ``binary_cross_entropy``). A function that is not
    a losskit loss raises ``TypeError``.

    References
    ----------
    A. Griewank and A. Walther, *Evaluating Derivatives*, SIAM, 2008 (reverse mode and
    vector-Jacobian products).

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> loss, dlogits = lk.value_and_grad(lk.cross_entropy)(np.array([[2.0, 0.0]]), np.array([0]))
    >>> dlogits.round(6)  # softmax minus one-hot
    array([[-0.119203,  0.119203]])
    """
    found = entry_of(loss_fn)
    if found is None:
        name = getattr(loss_fn, "__qualname__", repr(loss_fn))
        msg = f"value_and_grad: {name} is not a losskit loss with a gradient rule"
        raise TypeError(msg)
    try:  # one argnum: an int, or anything with __index__ (a NumPy integer, say)
        wrt: tuple[int, ...] = (operator.index(argnums),)  # type: ignore[arg-type]
        single = True
    except TypeError:
        single = False
        try:
            wrt = tuple(operator.index(k) for k in argnums)  # type: ignore[union-attr]
        except TypeError:
            msg = f"value_and_grad: argnums must be an int or a tuple of ints, got {argnums!r}"
            raise TypeError(msg) from None
    unsupported = [k for k in wrt if k not in found.argnums]
    if not wrt or unsupported:
        msg = (
            f"value_and_grad: {loss_fn.__name__} can be differentiated with respect to "
            f"argnums {found.argnums}, got {argnums!r}"
        )
        raise ValueError(msg)

    impl = quiet_floating_point(found.rule)
    signature = inspect.signature(loss_fn)
    names = tuple(signature.parameters)

    @functools.wraps(loss_fn)
    def value_and_gradient(*args: Any, grad_output: Any = None, **kwargs: Any) -> tuple[Array, Any]:
        run_call_hook(found.name, signature, args, kwargs)  # losskit.set_checks
        value, grads = impl(*args, vjp=VJP(grad_output, wrt, loss_fn.__name__, names), **kwargs)
        return value, (grads[0] if single else grads)

    grad_output = inspect.Parameter("grad_output", inspect.Parameter.KEYWORD_ONLY, default=None)
    value_and_gradient.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), grad_output], return_annotation="tuple"
    )
    return value_and_gradient
