"""Scored logits and target losses: head-only logits equal the full forward, HF loss semantics,
per-row means, and the logit-difference form of L_f - L_a."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gradiend.model.loading import load_base_model
from gradiend.objectives import batch_loss, position_losses, row_losses
from gradiend.objectives.heads import scoring_head
from tests.objectives_support import masked_rows


@pytest.fixture(scope="module", params=["masked", "causal"])
def loaded(request, tiny_masked_lm_dir, tiny_causal_lm_dir, demo_corpus):
    path = tiny_masked_lm_dir if request.param == "masked" else tiny_causal_lm_dir
    model, tokenizer, objective = load_base_model(path)
    model.double()
    rows = masked_rows(demo_corpus, 16, need_left_context=True)
    return model, objective, objective.prepare(tokenizer, *rows)


def test_head_only_logits_equal_the_full_forward(loaded):
    model, objective, batch = loaded
    assert scoring_head(model) is not None
    fast = objective.scored_logits(model, batch)
    with torch.no_grad():
        full = model(**batch.inputs).logits[batch.row_index, batch.position]
    torch.testing.assert_close(fast.detach(), full, rtol=1e-10, atol=1e-10)


def test_a_head_with_extra_work_falls_back_to_the_full_forward(loaded):
    model, objective, batch = loaded

    class Scaled(type(model)):
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = out.logits * 2.0
            return out

    scaled = Scaled(model.config).double().eval()
    scaled.load_state_dict(model.state_dict())
    assert scoring_head(scaled) is None
    torch.testing.assert_close(
        objective.scored_logits(scaled, batch).detach(),
        2.0 * objective.scored_logits(model, batch).detach(),
    )


def test_losses_follow_cross_entropy_semantics(loaded):
    model, objective, batch = loaded
    with torch.no_grad():
        logits = objective.scored_logits(model, batch)
    ce_f = F.cross_entropy(logits, batch.factual_ids, reduction="none")
    ce_a = F.cross_entropy(logits, batch.alternative_ids, reduction="none")
    torch.testing.assert_close(position_losses(logits, batch, "factual"), ce_f)
    torch.testing.assert_close(position_losses(logits, batch, "diff"), ce_f - ce_a)
    torch.testing.assert_close(batch_loss(logits, batch, "alternative"), ce_a.mean())
    per_row = torch.stack([ce_f[batch.row_index == r].mean() for r in range(batch.n_rows)])
    torch.testing.assert_close(row_losses(logits, batch, "factual"), per_row)
    torch.testing.assert_close(batch_loss(logits, batch, "factual", "rows"), per_row.mean())
    shares = row_losses(logits, batch, "diff", reduction="positions")
    torch.testing.assert_close(shares.sum(), batch_loss(logits, batch, "diff"))


def test_masked_batch_loss_is_the_hugging_face_loss(tiny_masked_lm_dir, demo_corpus):
    model, tokenizer, objective = load_base_model(tiny_masked_lm_dir)
    batch = objective.prepare(tokenizer, *masked_rows(demo_corpus, 16))
    assert batch.n_positions > batch.n_rows  # some rows have several masks: positions weigh
    labels = torch.full_like(batch.inputs["input_ids"], -100)
    labels[batch.row_index, batch.position] = batch.factual_ids
    with torch.no_grad():
        hf = model(**batch.inputs, labels=labels).loss
        ours = batch_loss(objective.scored_logits(model, batch), batch, "factual")
    torch.testing.assert_close(ours, hf, rtol=1e-6, atol=1e-6)


def test_bad_kind_reduction_or_missing_alternative_is_clear(loaded):
    model, objective, batch = loaded
    logits = torch.zeros(batch.n_positions, model.config.vocab_size)
    with pytest.raises(ValueError, match="unknown loss kind 'source'"):
        row_losses(logits, batch, "source")
    with pytest.raises(ValueError, match="unknown reduction 'sum'"):
        batch_loss(logits, batch, "factual", reduction="sum")
    bare = type(batch)(batch.inputs, batch.row_index, batch.position, batch.factual_ids, None, batch.n_rows)
    with pytest.raises(ValueError, match="without alternatives"):
        batch_loss(logits, bare, "diff")
