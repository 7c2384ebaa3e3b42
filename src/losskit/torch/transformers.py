"""Hugging Face ``transformers``: causal language models that train without their logits.

A ``*ForCausalLM.forward`` computes ``logits = lm_head(hidden_states)`` (then a soft-cap or
a scale, then a float32 copy) before it calls ``self.loss_function`` with them: at a
vocabulary of 128k those logits are the largest tensors of a training step. :func:`patch`
makes a model's forward, when it is given ``labels`` in training mode, compute its loss with
:func:`losskit.torch.linear_cross_entropy` from the hidden states and the head's weight
instead, and return ``logits=None``; otherwise the model runs exactly as before.

It copies no model's forward. While a patched forward trains with labels, the model's own
forward runs, with two stand-ins: the head, which keeps its input (the last hidden states,
already cut by ``logits_to_keep``) and returns a few fixed numbers in place of the logits,
and the model's ``loss_function``, which receives those numbers after whatever the model did
to its logits. They must come out as the soft-cap and scale that the model's configuration
announces (``final_logit_softcapping``, ``logit_scale``, ``logits_scaling``), which losskit
then applies inside the chunked loss; a model that does anything else to its logits, or that
computes its loss without ``self.loss_function``, is refused at its first training step,
with what was found.

Works with ``transformers`` 5.24 (``pip install "losskit[transformers]"``), which this module
is tested on; it imports ``transformers`` only to build its results.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import cross_entropy, logsumexp
from .._lib._head import head_options
from ._dtensor import full, own_fsdp_unit, replicated_like
from ._linear_cross_entropy import linear_cross_entropy

__all__ = ["compute_loss_func", "patch", "unpatch"]

Tensor = torch.Tensor

# Loss options a user may choose; the rest follow the model (its soft-cap and scale), the
# labels (shift, ignore_index) and the Trainer (the reduction, from num_items_in_batch).
_OPTIONS = ("label_smoothing", "z_loss", "chunk_size")
# Stand-in logits: values across the range where soft-caps and scales tell themselves apart.
_PROBE = (-80.0, -25.0, -3.0, -0.5, 0.0, 0.75, 4.0, 30.0, 90.0)
_ATTRIBUTE = "_losskit_patch"
_MISSING = object()


def patch(model: nn.Module, **loss_options: Any) -> nn.Module:
    r"""Make a causal LM's training forward compute its loss without forming the logits.

    .. math::

        \ell = \frac{1}{|\{t : y_{t+1} \ne -100\}|}
        \sum_{t : y_{t+1} \ne -100} \operatorname{CE}\big(c \tanh(s\, h_t W^\top / c),\ y_{t+1}\big)

    is the model's own loss (:math:`h_t` the last hidden states, :math:`W` the head, :math:`c`
    and :math:`s` its soft-cap and logit scale when its configuration has them), computed by
    :func:`losskit.torch.linear_cross_entropy` a chunk of tokens at a time.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal LM built the transformers way: an output layer from
        ``get_output_embeddings()`` (an ``nn.Linear``, possibly tied to the input embeddings,
        with or without bias, or wrapped by PEFT: LoRA or ``modules_to_save``) and the default
        causal-LM ``loss_function``. A PEFT model is patched through its base model. The
        patch is on this instance only; its class and other instances are untouched.
    **loss_options
        ``label_smoothing``, ``z_loss`` and ``chunk_size``, as in
        :func:`losskit.torch.linear_cross_entropy`.

    Returns
    -------
    transformers.PreTrainedModel
        ``model`` itself. In training mode and with ``labels`` its forward returns the
        model's output with the loss and ``logits=None``. It follows the model's loss
        keywords: ``shift_labels`` (labels already shifted), ``ignore_index`` and
        ``num_items_in_batch`` (the loss is then a sum divided by it, as gradient
        accumulation needs). Without ``labels``, or in evaluation mode (``model.eval()``,
        where the Trainer's metrics want the logits), the forward is the model's own.

    Raises
    ------
    TypeError
        ``model`` has no ``get_output_embeddings()`` head or no ``loss_function``, or its head
        is a module losskit cannot read a weight from.
    ValueError
        An unknown or invalid loss option, a custom ``loss_function``; at the first training
        step, a model that changes its logits other than as its configuration says, or that
        computes its loss without ``loss_function``.

    Notes
    -----
    The loss is the same as the model's up to float rounding, with one difference: a
    ``"mean"`` over a batch whose labels are all ignored is 0 (with zero gradients) where the
    model's is NaN. Call :func:`unpatch` to undo. With a head shared across a tensor-parallel
    mesh (a ``DTensor``), the loss runs where :func:`losskit.torch.linear_cross_entropy`
    sends it; under FSDP2 ``fully_shard`` the head is read inside the forward, where FSDP has
    gathered it (a head sharded by a ``fully_shard`` of its own is refused: FSDP gathers it
    only inside the head's forward).

    References
    ----------
    E. Wijmans et al., "Cut your losses in large-vocabulary language models", ICLR 2025.

    Examples
    --------
    >>> import torch, transformers
    >>> from losskit.torch.transformers import patch, unpatch
    >>> config = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    >>> model = transformers.LlamaForCausalLM(config)
    >>> ids = torch.randint(0, 64, (2, 5))
    >>> expected = model(input_ids=ids, labels=ids).loss
    >>> out = patch(model)(input_ids=ids, labels=ids)
    >>> bool(torch.allclose(out.loss, expected)), out.logits is None
    (True, True)
    >>> unpatch(model)(input_ids=ids).logits.shape
    torch.Size([2, 5, 64])
    """
    target = _transformers_model(model)
    _check_options("patch", loss_options, _OPTIONS)
    _head_weights(target.get_output_embeddings())  # a head it can read, or the error now
    if getattr(target, _ATTRIBUTE, None) is not None:
        unpatch(target)
    own = target.__dict__.get("forward")  # an instance-level forward someone else installed
    original = target.forward

    # The class's signature tells where labels are, whatever wraps the forward; read once.
    signature = inspect.signature(type(target).forward)

    @functools.wraps(original)
    def forward(*args: Any, **kwargs: Any) -> Any:
        return _training_forward(target, original, signature, loss_options, args, kwargs)

    target.forward = forward
    setattr(target, _ATTRIBUTE, (own, original))
    return model


def unpatch(model: nn.Module) -> nn.Module:
    """Undo :func:`patch`: the model's forward is again the one it had; returns ``model``.

    A model that is not patched is returned unchanged.

    Examples
    --------
    >>> import transformers
    >>> from losskit.torch.transformers import patch, unpatch
    >>> config = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    >>> model = transformers.LlamaForCausalLM(config)
    >>> "forward" in vars(unpatch(patch(model)))
    False
    """
    target = _transformers_model(model)
    state = target.__dict__.pop(_ATTRIBUTE, None)
    if state is not None:
        own, _ = state
        if own is None:
            del target.forward
        else:
            target.forward = own
    return model


def compute_loss_func(**loss_options: Any) -> Callable[..., Tensor]:
    r"""A ``compute_loss_func`` for ``transformers.Trainer``: the causal-LM loss with losskit's
    options and the gradient-accumulation normalisation.

    .. math::

        \ell = \frac{1}{n} \sum_{t : y_{t+1} \ne -100} \operatorname{CE}(z_t, y_{t+1})

    with :math:`n` the Trainer's ``num_items_in_batch`` (the non-ignored targets of all the
    accumulated micro-batches) when it passes one, else this batch's count.

    Parameters
    ----------
    **loss_options
        ``label_smoothing`` and ``z_loss``, as in :func:`losskit.torch.linear_cross_entropy`.

    Returns
    -------
    callable
        ``loss(outputs, labels, num_items_in_batch=None) -> Tensor`` (0-d), from the model's
        ``outputs.logits`` of shape ``(B, T, V)`` and ``labels`` of shape ``(B, T)``.

    Notes
    -----
    The Trainer calls the model without labels when it has a ``compute_loss_func``, so the
    model forms its logits: this is for a Trainer that needs one. To train without the
    logits, :func:`patch` the model and give the Trainer no ``compute_loss_func``: the patched
    model computes the loss, with ``num_items_in_batch``, itself. The logits are taken as
    they are: the model has already applied its soft-cap and scale.

    Examples
    --------
    >>> import torch
    >>> from losskit.torch.transformers import compute_loss_func
    >>> from types import SimpleNamespace
    >>> logits, labels = torch.randn(2, 4, 10), torch.randint(0, 10, (2, 4))
    >>> loss = compute_loss_func()(SimpleNamespace(logits=logits), labels)
    >>> expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 10), labels[:, 1:].reshape(-1))
    >>> bool(torch.allclose(loss, expected))
    True
    """
    _check_options("compute_loss_func", loss_options, _OPTIONS[:2])

    smoothing, zeta = loss_options.get("label_smoothing", 0.0), loss_options.get("z_loss", 0.0)

    def loss(outputs: Any, labels: Tensor, num_items_in_batch: Any = None) -> Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
        z = logits[..., :-1, :].float().reshape(-1, logits.shape[-1])  # position t predicts label t + 1
        y = labels[..., 1:].to(z.device).reshape(-1)
        kept = y != -100
        total = cross_entropy(z, y, label_smoothing=smoothing, reduction="sum")
        if zeta:
            total = total + zeta * (logsumexp(z, dim=-1)[kept] ** 2).sum()
        return _per_item(total, kept.sum().clamp_min(1) if num_items_in_batch is None else num_items_in_batch)

    return loss


def _check_options(fn: str, options: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        msg = f"{fn}: loss options are {', '.join(allowed)}; got {', '.join(unknown)}"
        raise ValueError(msg)
    defaults = {"label_smoothing": 0.0, "z_loss": 0.0, "chunk_size": None}
    head_options(fn, reduction="mean", softcap=None, logit_scale=1.0, shift=True, input_ndim=2, **{**defaults, **options})


def _transformers_model(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper, checked to have what the patch uses."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = type(base).__name__
    if not callable(getattr(base, "get_output_embeddings", None)) or not isinstance(
        base.get_output_embeddings(), nn.Module
    ):
        msg = f"patch: model must be a transformers causal LM with an output layer (get_output_embeddings()), got {name}"
        raise TypeError(msg)
    try:
        loss_function = base.loss_function
    except AttributeError:
        loss_function = None
    if not callable(loss_function):
        msg = f"patch: model must have a transformers loss_function, got {name} without one"
        raise TypeError(msg)
    if getattr(loss_function, "__name__", None) != "ForCausalLMLoss":
        msg = (
            f"patch: {name} has a custom loss_function ({getattr(loss_function, '__qualname__', loss_function)!r}); "
            "losskit computes the default causal-LM loss (ForCausalLMLoss) and would replace it"
        )
        raise ValueError(msg)
    if "labels" not in inspect.signature(type(base).forward).parameters:
        msg = f"patch: {name}.forward takes no labels, so it computes no loss to replace"
        raise TypeError(msg)
    return base


def _training_forward(
    model: nn.Module, original: Callable[..., Any], signature: inspect.Signature, options: dict, args: tuple,
    kwargs: dict,
) -> Any:
    bound = signature.bind_partial(model, *args, **kwargs)
    if bound.arguments.get("labels") is None or not model.training:
        return original(*args, **kwargs)  # evaluation wants its logits (metrics, predictions)
    head = model.get_output_embeddings()
    seen: dict[str, Any] = {}

    def capture(hidden: Tensor) -> Tensor:
        seen["hidden"] = hidden
        probe = torch.tensor(_PROBE, dtype=hidden.dtype, device=hidden.device)
        # A DTensor for a head under torch's tensor parallelism, whose output hooks expect one.
        return replicated_like(hidden, probe.expand(*hidden.shape[:-1], len(_PROBE)).contiguous())

    def loss_function(
        logits: Tensor, labels: Tensor, vocab_size: int, num_items_in_batch: Any = None,
        ignore_index: int = -100, shift_labels: Tensor | None = None, **_: Any,
    ) -> Tensor:
        if "hidden" not in seen:
            msg = f"patch: {type(model).__name__}.forward called its loss_function without calling its output layer"
            raise ValueError(msg)
        softcap, scale = _logit_transform(model, logits)
        weight, bias = _head_weights(head)
        seen["loss"] = _causal_loss(
            seen.pop("hidden"), weight, bias, labels, shift_labels, num_items_in_batch, ignore_index,
            {"softcap": softcap, "logit_scale": scale, **options},
        )
        return seen["loss"]

    # Stand-ins on the instances, put back as they were (an instance may already have its own).
    stand_ins = [(model.__dict__, "_loss_function", loss_function), (head.__dict__, "forward", capture)]
    saved = [(where, name, where.get(name, _MISSING)) for where, name, _ in stand_ins]
    for where, name, stand_in in stand_ins:
        where[name] = stand_in
    try:
        outputs = original(*args, **kwargs)
    finally:
        for where, name, value in saved:
            if value is _MISSING:
                del where[name]
            else:
                where[name] = value
    if "loss" not in seen:
        msg = (
            f"patch: {type(model).__name__}.forward computed its loss without self.loss_function, "
            "so losskit cannot replace it; call unpatch(model)"
        )
        raise ValueError(msg)
    return _without_logits(outputs)


def _causal_loss(
    hidden: Tensor, weight: Tensor, bias: Tensor | None, labels: Tensor, shift_labels: Tensor | None,
    num_items_in_batch: Any, ignore_index: int, options: dict,
) -> Tensor:
    # transformers' ForCausalLMLoss: labels shifted by one unless already shifted, then a
    # mean over the non-ignored tokens, or a sum divided by the Trainer's global count.
    target, shift = (labels, True) if shift_labels is None else (shift_labels, False)
    reduction = "mean" if num_items_in_batch is None else "sum"
    loss = linear_cross_entropy(
        hidden, weight, target.to(hidden.device), linear_bias=bias, ignore_index=ignore_index,
        reduction=reduction, shift=shift, **options,
    )
    return loss if num_items_in_batch is None else _per_item(loss, num_items_in_batch)


def _per_item(total: Tensor, count: Any) -> Tensor:
    """``total / count``, with a count the Trainer may pass as an int or a tensor elsewhere."""
    return total / (count.to(total.device) if isinstance(count, Tensor) else count)


def _logit_transform(model: nn.Module, probe: Tensor) -> tuple[float | None, float]:
    """The soft-cap and scale the model's configuration announces, checked against what the
    model's forward did to the stand-in logits."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    softcap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None) or 1.0  # Cohere multiplies
    scaling = getattr(config, "logits_scaling", None)  # Granite divides
    if scaling:
        scale = scale / scaling
    expected = torch.tensor(_PROBE, dtype=torch.float64) * scale
    if softcap:
        expected = softcap * torch.tanh(expected / softcap)
    probe = full(probe.detach())
    got = probe.reshape(-1, probe.shape[-1])[:1].double().cpu() if probe.shape[-1] == len(_PROBE) else None
    tolerance = 1e-5 if probe.dtype in (torch.float32, torch.float64) else 1e-2
    if got is not None and got.numel() and not torch.allclose(got[0], expected, rtol=tolerance, atol=tolerance):
        msg = (
            f"patch: {type(model).__name__} changes its logits after the output layer in a way losskit does "
            f"not know: logits {list(_PROBE)} became {[round(v, 4) for v in got[0].tolist()]}, where its "
            f"configuration (final_logit_softcapping={softcap}, logit_scale={getattr(config, 'logit_scale', None)}, "
            f"logits_scaling={scaling}) gives {[round(v, 4) for v in expected.tolist()]}; call unpatch(model)"
        )
        raise ValueError(msg)
    if got is None:
        msg = (
            f"patch: {type(model).__name__} reshapes its logits before its loss_function "
            f"(got shape {tuple(probe.shape)}); losskit cannot follow it, call unpatch(model)"
        )
        raise ValueError(msg)
    return softcap or None, scale


def _head_weights(head: nn.Module) -> tuple[Tensor, Tensor | None]:
    """The weight and bias of the output layer, through PEFT's wrappers."""
    if own_fsdp_unit(head):
        msg = (
            "patch: the output layer is sharded by its own fully_shard, so FSDP gathers its weight only "
            "inside its forward, which the patch replaces; shard it with the module that holds it "
            "(fully_shard(model) after the decoder layers), as transformers' FSDP plan keeps lm_head"
        )
        raise ValueError(msg)
    if hasattr(head, "modules_to_save") and hasattr(head, "original_module"):  # PEFT modules_to_save
        active = [a for a in head.active_adapters if a in head.modules_to_save]
        module = head.original_module if head.disable_adapters or not active else head.modules_to_save[active[0]]
        return _head_weights(module)
    if hasattr(head, "lora_A") and hasattr(head, "get_base_layer"):  # a PEFT LoRA layer
        weight, bias = _head_weights(head.get_base_layer())
        if head.disable_adapters or head.merged:
            return weight, bias
        for name in head.active_adapters:
            if name not in head.lora_A:
                continue
            dropout = head.lora_dropout[name]
            if head.training and isinstance(dropout, nn.Dropout) and dropout.p > 0:
                msg = f"patch: the LoRA adapter {name!r} of the output layer has dropout {dropout.p}, which no single weight can express"
                raise ValueError(msg)
            if head.use_dora.get(name):
                msg = f"patch: the adapter {name!r} of the output layer is DoRA, which losskit cannot read as one weight"
                raise ValueError(msg)
            a, b, scaling = head.lora_A[name], head.lora_B[name], head.scaling[name]
            weight = weight + scaling * (b.weight @ a.weight).to(weight.dtype)
            if b.bias is not None:
                bias = scaling * b.bias if bias is None else bias + scaling * b.bias
        return weight, bias
    if isinstance(head, nn.Linear):
        return head.weight, head.bias
    msg = (
        f"patch: the output layer must be an nn.Linear or a PEFT LoRA / modules_to_save wrapper of one, "
        f"got {type(head).__name__}"
    )
    raise TypeError(msg)


def _without_logits(outputs: Any) -> Any:
    if isinstance(outputs, tuple):  # return_dict=False: (loss, logits, ...)
        return outputs[:1] + outputs[2:]
    fields = {k: v for k, v in outputs.items() if k != "logits"}
    return type(outputs)(**fields)

