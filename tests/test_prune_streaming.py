"""Pre-pruning in bounded memory selects exactly what the plain computation selects.

Plain = what pre-pruning did before it streamed: one ``parameter_gradients`` dict per chunk (cast to
float32), ``grad * weight`` summed, ``|sum|``, one flat concatenation of every parameter, then a
full sort by (importance descending, index ascending) over the finite entries. The streamed path
(per-parameter sums filled during the backward pass, radix-select top-k over the parameters) must
give the same importance bit for bit and the same kept entries.
"""
import math

import pytest
import torch

import gradiend.model.topk as topk_module
from gradiend.model.backbone import mapped_parameters
from gradiend.model.topk import keep_indices, resolve_topk
from gradiend.objectives import CausalLMObjective, MaskedLMObjective, parameter_gradients
from gradiend.data.rows import training_rows
from gradiend.training.arguments import PrePruneConfig
from gradiend.training.pruning import PrePruneResult, compute_pre_prune_mask, stratified_sample
from tests.training_support import she_he_table


def _plain_importance(model, tokenizer, objective, params, rows, config):
    picked = stratified_sample(rows["feature_class_id"].tolist(), config.n_samples, config.seed)
    sample = rows.iloc[picked]
    sums = {}
    for start in range(0, len(sample), config.batch_size):
        chunk = sample.iloc[start:start + config.batch_size]
        batch = objective.prepare(tokenizer, chunk["masked"].tolist(), chunk["factual"].tolist(),
                                  chunk["alternative"].tolist())
        grads = parameter_gradients(model, params, objective, batch, [config.source], reduction="rows")[config.source]
        for name, grad in grads.items():
            scaled = grad * (len(chunk) / len(sample))
            sums[name] = scaled if name not in sums else sums[name] + scaled
    return {name: sums[name].abs().float() for name in params}


def _plain_keep(importance: dict, topk) -> dict:
    """Sorted-by-(value desc, index asc) top-k of the finite entries of the flat concatenation."""
    flat = torch.cat([t.reshape(-1) for t in importance.values()]).double()
    finite = torch.isfinite(flat).nonzero().reshape(-1)
    k = resolve_topk(topk, finite.numel())
    order = torch.sort(flat[finite], descending=True, stable=True).indices[:k]  # stable: ties by index
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[finite[order]] = True
    out, start = {}, 0
    for name, values in importance.items():
        out[name] = keep[start:start + values.numel()].nonzero().reshape(-1)
        start += values.numel()
    return out


def _model(folder, kind, dtype):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    auto = AutoModelForMaskedLM if kind == "masked" else AutoModelForCausalLM
    model = auto.from_pretrained(folder, attn_implementation="eager").eval().to(dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if kind == "causal":
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, MaskedLMObjective() if kind == "masked" else CausalLMObjective()


@pytest.mark.parametrize("kind,dtype,batch_size,topk", [
    ("masked", torch.float32, 8, 0.01),
    ("masked", torch.float32, 3, 0.97),     # three chunks; the cut lands among exact zeros (unused words): ties
    ("masked", torch.bfloat16, 8, 0.05),    # one chunk: the importance stays bfloat16; ties split at the cut
    ("masked", torch.bfloat16, 3, 2000),    # three chunks: summed in float32
    ("causal", torch.float32, 8, 0.02),     # GPT-2: input and output embeddings are one tensor
])
def test_streamed_pre_pruning_equals_plain(tiny_masked_lm_dir, tiny_causal_lm_dir, demo_corpus, monkeypatch,
                                           kind, dtype, batch_size, topk):
    monkeypatch.setattr(topk_module, "CHUNK", 4099)  # many chunks per parameter, odd boundaries
    model, tokenizer, objective = _model(tiny_masked_lm_dir if kind == "masked" else tiny_causal_lm_dir, kind, dtype)
    params = mapped_parameters(model)
    rows = training_rows(she_he_table(demo_corpus, 60, left_context=kind == "causal"), ["she", "he"], "alternative",
                         add_identity=False, max_size=None, seed=0).frame
    config = PrePruneConfig(n_samples=8, topk=topk, batch_size=batch_size, seed=5)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}

    result = compute_pre_prune_mask(model, tokenizer, objective, params, rows, config, seed=0)

    plain = _plain_importance(model, tokenizer, objective, params, rows, config)
    expected_dtype = dtype if batch_size >= config.n_samples else torch.float32
    for name in params:
        assert result.importance[name].dtype == expected_dtype
        assert torch.equal(result.importance[name].float(), plain[name]), name
    expected = _plain_keep(plain, topk)
    assert result.n_kept == sum(k.numel() for k in expected.values()) > 0
    for name in params:
        assert torch.equal(result.kept[name], expected[name]), name
    # the model is left as it was: no .grad anywhere, requires_grad flags unchanged
    assert all(p.grad is None for p in model.parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_radix_select_matches_sort_with_signs_ties_and_non_finite(monkeypatch):
    monkeypatch.setattr(topk_module, "CHUNK", 7)
    gen = torch.Generator().manual_seed(3)
    parts = [torch.randn(n, generator=gen).round(decimals=1) for n in (23, 1, 40)]
    parts[0][[2, 5]] = float("nan")
    parts[2][[0, 9]] = torch.tensor([float("inf"), float("-inf")])
    parts[1][0] = -0.0
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        cast = [p.to(dtype) for p in parts]
        flat = torch.cat(cast).double()
        for k, finite_only in ((1, False), (5, True), (17, False), (0.5, True), (60, False)):
            ranked = [i for i in range(flat.numel()) if not math.isnan(flat[i])
                      and (math.isfinite(flat[i]) or not finite_only)]
            chosen = set(sorted(ranked, key=lambda i: (-flat[i].item(), i))[:resolve_topk(k, len(ranked))])
            got = keep_indices(cast, k, finite_only=finite_only)
            offsets = [0, 23, 24]
            assert {int(i) + offsets[p] for p, idx in enumerate(got) for i in idx} == chosen, (dtype, k)
    with pytest.raises(ValueError, match="keep no input dimension"):
        keep_indices([torch.full((5,), float("nan"))], 3)


def test_pre_prune_result_keeps_indices_and_loads_masks_only(tmp_path):
    mask = {"b.weight": torch.tensor([[True, False, False], [False, False, True]]), "a.bias": torch.tensor([False, True])}
    importance = {"b.weight": torch.rand(2, 3), "a.bias": torch.rand(2)}
    PrePruneResult.from_masks(mask, importance).save(tmp_path)
    slim = PrePruneResult.load(tmp_path, importance=False)
    assert slim.importance is None and slim.n_kept == 3 and slim.n_total == 8
    assert slim.kept["b.weight"].tolist() == [0, 5] and slim.kept["a.bias"].tolist() == [1]
    assert {n: m.tolist() for n, m in slim.mask.items()} == {n: m.tolist() for n, m in mask.items()}
    full = PrePruneResult.load(tmp_path)
    assert torch.equal(full.importance["a.bias"], importance["a.bias"])
