"""losskit.torch.transformers on small random Hugging Face models: the patched training
forward gives the unpatched model's loss and gradients without its logits; sharded heads
(a DTensor head, torch's tensor parallelism, FSDP2) on two gloo processes."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from _distributed import run_ranks
from _sharded_heads import (
    VOCAB,
    fsdp_worker,
    own_fsdp_head_worker,
    sharded_weight_worker,
    tensor_parallel_worker,
    tiny_llama,
)
from _support import assert_close

from losskit.torch.transformers import compute_loss_func, patch, unpatch

SIZES = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
)  # fmt: skip
FAMILIES = {
    "llama": lambda: transformers.LlamaConfig(**SIZES),
    "qwen2": lambda: transformers.Qwen2Config(**SIZES),
    "mistral": lambda: transformers.MistralConfig(**SIZES),
    "gemma2-softcap": lambda: transformers.Gemma2Config(**SIZES, head_dim=8, final_logit_softcapping=3.0),
    "cohere-logit-scale": lambda: transformers.CohereConfig(**SIZES, logit_scale=0.25),
    "qwen2-tied": lambda: transformers.Qwen2Config(**SIZES, tie_word_embeddings=True),
}
RTOL, ATOL = 1e-5, 1e-7


def build(family: str, seed: int = 0) -> transformers.PreTrainedModel:
    torch.manual_seed(seed)
    config = FAMILIES[family]()
    config._attn_implementation = "eager"
    return transformers.AutoModelForCausalLM.from_config(config).train()


def batch(seed: int = 1, rows: int = 4, length: int = 9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, an attention mask with right padding, and labels ignored on the padding and a
    prompt: a different count of targets per row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    labels = ids.clone()
    for r in range(rows):
        pad = r % 3
        if pad:
            ids[r, -pad:], mask[r, -pad:], labels[r, -pad:] = 0, 0, -100
        labels[r, : r % 2 + 1] = -100
    return ids, mask, labels


def loss_and_grads(model: torch.nn.Module, **inputs: Any) -> tuple[Any, torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    out = model(**inputs)
    loss = out.loss if hasattr(out, "loss") else out[0]
    loss.backward()
    return out, loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert ours.keys() == theirs.keys()
    for name, grad in theirs.items():
        assert_close(ours[name], grad, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_patched_loss_and_every_gradient_are_the_models_own(family: str) -> None:
    model = build(family)
    ids, mask, labels = batch()
    inputs = dict(input_ids=ids, attention_mask=mask, labels=labels)
    expected, expected_loss, expected_grads = loss_and_grads(model, **inputs)
    assert patch(model) is model
    out, loss, grads = loss_and_grads(model, **inputs)
    assert out.logits is None and "logits" not in out
    assert type(out) is type(expected)
    assert_close(loss, expected_loss, rtol=RTOL)
    assert_same_grads(grads, expected_grads)
    if family == "qwen2-tied":
        assert model.lm_head.weight is model.model.embed_tokens.weight


@pytest.mark.parametrize("family", ["llama", "gemma2-softcap"])
def test_without_labels_the_patched_model_is_the_unpatched_one(family: str) -> None:
    model = build(family).eval()
    ids, mask, _ = batch()
    expected = model(input_ids=ids, attention_mask=mask).logits
    generated = model.generate(ids[:1, :5], max_new_tokens=4, do_sample=False)
    patch(model)
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, expected)
    assert torch.equal(model.generate(ids[:1, :5], max_new_tokens=4, do_sample=False), generated)
    keep = model(input_ids=ids, logits_to_keep=1).logits
    assert keep.shape == (4, 1, VOCAB)


def test_in_evaluation_mode_labels_give_the_loss_and_the_logits() -> None:
    model = build("llama").eval()  # the Trainer's evaluation loop: metrics want the logits
    ids, mask, labels = batch()
    expected = model(input_ids=ids, attention_mask=mask, labels=labels)
    out = patch(model)(input_ids=ids, attention_mask=mask, labels=labels)
    assert torch.equal(out.logits, expected.logits) and torch.equal(out.loss, expected.loss)
    assert model.train()(input_ids=ids, attention_mask=mask, labels=labels).logits is None


def test_num_items_in_batch_sums_then_divides_by_the_global_count() -> None:
    model = build("llama")
    ids, mask, labels = batch()
    count = int((labels[:, 1:] != -100).sum())
    halves = [dict(input_ids=ids[h], attention_mask=mask[h], labels=labels[h]) for h in (slice(0, 2), slice(2, 4))]
    _, whole, whole_grads = loss_and_grads(model, input_ids=ids, attention_mask=mask, labels=labels)
    unpatched = [loss_and_grads(model, **half, num_items_in_batch=torch.tensor(count))[1] for half in halves]
    patch(model)
    parts = [loss_and_grads(model, **half, num_items_in_batch=torch.tensor(count)) for half in halves]
    for (_, part, _), theirs in zip(parts, unpatched, strict=True):
        assert_close(part, theirs, rtol=RTOL)
    # Micro-batches normalised by the global count add up to the whole batch's mean.
    assert_close(parts[0][1] + parts[1][1], whole, rtol=RTOL)
    summed = {n: parts[0][2][n] + parts[1][2][n] for n in whole_grads}
    assert_same_grads(summed, whole_grads)


def test_shift_labels_logits_to_keep_and_tuples_follow_the_model() -> None:
    model = build("mistral")
    ids, mask, labels = batch()
    shifted = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
    cases = [
        dict(input_ids=ids, attention_mask=mask, labels=labels, shift_labels=shifted),
        dict(input_ids=ids, labels=labels[:, -4:], logits_to_keep=4),
        dict(input_ids=ids, attention_mask=mask, labels=labels, return_dict=False),
    ]
    expected = [loss_and_grads(model, **case) for case in cases]
    patch(model)
    for case, (theirs, loss, grads) in zip(cases, expected, strict=True):
        ours, our_loss, our_grads = loss_and_grads(model, **case)
        assert_close(our_loss, loss, rtol=RTOL)
        assert_same_grads(our_grads, grads)
        if isinstance(theirs, tuple):  # (loss, logits, cache...) without the logits
            assert len(ours) == len(theirs) - 1


def test_loss_options_add_label_smoothing_and_z_loss() -> None:
    model = build("qwen2")
    ids, mask, labels = batch()
    z = model(input_ids=ids, attention_mask=mask).logits[:, :-1].reshape(-1, VOCAB)
    y = labels[:, 1:].reshape(-1)
    kept = y != -100
    expected = torch.nn.functional.cross_entropy(z, y, label_smoothing=0.1) + 1e-2 * (
        torch.logsumexp(z, -1)[kept] ** 2
    ).mean()
    patch(model, label_smoothing=0.1, z_loss=1e-2, chunk_size=8)
    assert_close(model(input_ids=ids, attention_mask=mask, labels=labels).loss, expected.detach(), rtol=RTOL)


@pytest.mark.parametrize("adapter", ["lora-on-the-head", "modules-to-save"])
def test_peft_heads_give_the_adapted_models_loss_and_gradients(adapter: str) -> None:
    peft = pytest.importorskip("peft")
    if adapter == "lora-on-the-head":
        config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "lm_head"], init_lora_weights=False)
    else:
        config = peft.LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["lm_head"])
    with warnings.catch_warnings():  # peft reads a property transformers has deprecated
        warnings.simplefilter("ignore", FutureWarning)
        model = peft.get_peft_model(build("llama"), config).train()
    ids, mask, labels = batch()
    inputs = dict(input_ids=ids, attention_mask=mask, labels=labels)
    _, expected_loss, expected_grads = loss_and_grads(model, **inputs)
    assert len(expected_grads) >= 5  # the adapters' (and a saved head's) parameters
    patch(model)
    out, loss, grads = loss_and_grads(model, **inputs)
    assert out.logits is None
    assert_close(loss, expected_loss, rtol=RTOL)
    assert_same_grads(grads, expected_grads)


def _trainer_step(model: torch.nn.Module, rows: int, accumulation: int, tmp_path: Any, **trainer: Any) -> dict:
    ids, mask, labels = batch(rows=4)
    data = [dict(input_ids=ids[r], attention_mask=mask[r], labels=labels[r]) for r in range(4)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=rows, gradient_accumulation_steps=accumulation,
        max_steps=1, learning_rate=1.0, optim="sgd", lr_scheduler_type="constant", weight_decay=0.0,
        max_grad_norm=1e9, report_to=[], save_strategy="no", use_cpu=True, seed=0, disable_tqdm=True,
    )  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    transformers.Trainer(model=model, args=args, train_dataset=data, **trainer).train()
    return {n: before[n] - p.detach() for n, p in model.named_parameters()}  # lr 1: the gradient


@pytest.mark.parametrize("route", ["patched", "compute_loss_func"])
def test_trainer_with_gradient_accumulation_equals_one_batch_of_twice_the_size(route: str, tmp_path: Any) -> None:
    expected = _trainer_step(build("llama"), rows=4, accumulation=1, tmp_path=tmp_path)
    if route == "patched":
        step = _trainer_step(patch(build("llama")), rows=2, accumulation=2, tmp_path=tmp_path)
    else:
        step = _trainer_step(build("llama"), 2, 2, tmp_path, compute_loss_func=compute_loss_func())
    assert_same_grads(step, expected)


def test_unpatch_restores_the_forward_and_patching_twice_keeps_one_patch() -> None:
    model = build("llama")
    ids, _, labels = batch()
    patch(patch(model, z_loss=1e-3))
    assert model(input_ids=ids, labels=labels).logits is None
    assert unpatch(model) is model and "forward" not in vars(model)
    assert model(input_ids=ids, labels=labels).logits.shape == (4, 9, VOCAB)
    assert unpatch(model) is model  # not patched: unchanged


def test_instance_forwards_installed_before_the_patch_come_back() -> None:
    model = build("llama")
    calls = []
    inner = model.forward

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return inner(*args, **kwargs)

    model.forward = wrapped
    head_forward = model.lm_head.forward  # as accelerate's hooks install one on a module
    model.lm_head.forward = head_forward
    ids, _, labels = batch()
    assert patch(model)(input_ids=ids, labels=labels).logits is None and calls == [1]
    assert model.lm_head.forward is head_forward and "_loss_function" not in vars(model)
    assert unpatch(model).forward is wrapped


def test_models_it_cannot_patch_safely_are_refused_with_what_was_found() -> None:
    with pytest.raises(TypeError, match="causal LM with an output layer.*got Linear"):
        patch(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="loss options are label_smoothing, z_loss, chunk_size; got softcap"):
        patch(build("llama"), softcap=30.0)
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        patch(build("llama"), label_smoothing=2.0)
    custom = build("llama")
    custom.loss_function = lambda logits, labels, **kwargs: logits.sum()
    with pytest.raises(ValueError, match="custom loss_function"):
        patch(custom)
    sequential = build("llama")
    sequential.lm_head = torch.nn.Sequential(sequential.lm_head)
    with pytest.raises(TypeError, match="nn.Linear or a PEFT LoRA.*got Sequential"):
        patch(sequential)

    # Llama ignores a logit_scale in its configuration: the forward shows it, and the patch
    # refuses rather than scale the logits the model does not scale.
    torch.manual_seed(0)
    claims = transformers.LlamaForCausalLM(transformers.LlamaConfig(**SIZES, logit_scale=2.0))
    ids, _, labels = batch()
    with pytest.raises(ValueError, match=r"changes its logits.*logit_scale=2\.0"):
        patch(claims)(input_ids=ids, labels=labels)


class _InlineLoss(transformers.LlamaForCausalLM):
    """A model that computes its loss without ``self.loss_function``."""

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: Any) -> Any:
        logits = self.lm_head(self.model(input_ids=input_ids).last_hidden_state)
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return transformers.modeling_outputs.CausalLMOutputWithPast(loss=loss, logits=logits)


def test_a_model_that_bypasses_its_loss_function_is_refused_at_its_first_step() -> None:
    torch.manual_seed(0)
    model = patch(_InlineLoss(transformers.LlamaConfig(**SIZES)))
    ids = torch.randint(0, 5, (2, 4))  # within the stand-in's few columns: no other error first
    with pytest.raises(ValueError, match="without self.loss_function"):
        model(input_ids=ids, labels=ids)


def _single_process(ids: torch.Tensor, labels: torch.Tensor, ranks: int) -> tuple[list[float], dict[str, np.ndarray]]:
    """The unpatched model's losses on the rows each of ``ranks`` data-parallel ranks takes
    (r, r + ranks, ...), and the gradients of their mean, as data parallelism averages them."""
    model = tiny_llama()
    losses = [model(input_ids=ids[r::ranks], labels=labels[r::ranks]).loss for r in range(ranks)]
    (sum(losses) / ranks).backward()
    return [loss.item() for loss in losses], {n: p.grad.numpy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("worker", [sharded_weight_worker, tensor_parallel_worker, fsdp_worker], ids=lambda w: w.__name__)
def test_sharded_heads_on_two_processes_give_the_single_process_model(worker: Any) -> None:
    ids, _, labels = batch()
    losses, grads = _single_process(ids, labels, 2 if worker is fsdp_worker else 1)
    reference_logits = tiny_llama()(input_ids=ids).logits.detach().numpy()
    for rank, got in enumerate(run_ranks(2, worker, ids, labels)):
        assert "error" not in got, got
        assert_close(got["loss"], losses[rank % len(losses)], rtol=RTOL)
        for name, grad in grads.items():
            assert_close(got["grads"][name], grad, rtol=RTOL, atol=ATOL)
        if worker is tensor_parallel_worker:  # without labels: the model's own logits
            assert_close(got["logits"], reference_logits, rtol=RTOL, atol=1e-6)
        else:
            assert got["logits"] is None, rank


def test_a_head_with_its_own_fully_shard_is_refused() -> None:
    for got in run_ranks(2, own_fsdp_head_worker):
        assert got["error"] == "ValueError"
        assert "the output layer is sharded by its own fully_shard" in got["message"]


def test_activation_checkpointing_gives_the_same_loss_and_gradients() -> None:
    model = build("llama")
    ids, mask, labels = batch()
    inputs = dict(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
    _, expected_loss, expected_grads = loss_and_grads(model, **inputs)
    model.activation_checkpointing_enable()  # the decoder's layers run again in backward
    out, loss, grads = loss_and_grads(patch(model), **inputs)
    assert out.logits is None
    assert_close(loss, expected_loss, rtol=RTOL)
    assert_same_grads(grads, expected_grads)
