"""A reduced loss's gradient rule as JAX's differentiation rule.

JAX differentiates a loss through its operations unless told otherwise. A reduced loss
(``"mean"``, ``"sum"``) is given a ``jax.custom_jvp`` instead: its tangent is
``sum_k <g_k, t_k>``, with ``g_k`` the rule's gradient with respect to the argument ``k``
(computed in the same pass as the value) and ``t_k`` that argument's tangent. The tangent is
linear in the tangents, so JAX transposes it for reverse mode (``jax.grad``), and ``g_k`` is
made of ordinary operations, so forward-over-reverse (``jax.hessian``) differentiates the rule
itself. Arguments with symbolic zero tangents (not differentiated) cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ._vjp import VJP, Result

__all__ = ["apply"]


def apply(
    rule: Callable[..., Result],
    arrays: tuple[Any, ...],
    kwargs: dict[str, Any],
    argnums: tuple[int, ...],
    fn: str,
    names: tuple[str, ...],
) -> Any:
    """The loss's value, differentiated by JAX through its rule."""

    @jax.custom_jvp
    def value(*xs: Any) -> Any:
        return rule(*xs, **kwargs).value

    def tangent(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
        wrt = tuple(k for k in argnums if k < len(primals) and not isinstance(tangents[k], jax.custom_derivatives.SymbolicZero))
        if not wrt:
            out = rule(*primals, **kwargs).value
            return out, jnp.zeros_like(out)
        out, grads = rule(*primals, vjp=VJP(None, wrt, fn, names), **kwargs)
        dot = sum(jnp.vdot(g, tangents[k]) for k, g in zip(wrt, grads, strict=True))
        return out, jnp.asarray(dot, dtype=out.dtype)

    value.defjvp(tangent, symbolic_zeros=True)
    return value(*arrays)
