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


@pytest.mark.parametrize("family", ["masked", "causal"])
def test_targets_of_different_sub_token_counts_are_scored_on_their_own_inputs(family, tiny_masked_lm_dir,
                                                                              tiny_causal_lm_dir):
    """Each target's loss is the mean cross-entropy over its pieces on its own input (k masks for k
    pieces; a causal LM fed the target's first pieces), computed here from plain model calls."""
    model, tokenizer, objective = load_base_model(tiny_masked_lm_dir if family == "masked" else tiny_causal_lm_dir)
    model.double()
    texts = ["The chef tasted the soup, then [MASK] added pepper.", "Later that day [MASK] went home."]
    factual, alternative = ["she", "he-she" if family == "masked" else "zxqvj"], ["he-she", "she"]
    batch = objective.prepare(tokenizer, texts, factual, alternative)
    assert not batch.shared_positions
    with torch.no_grad():
        logits = objective.scored_logits(model, batch)

    def plain_loss(text, word):
        """Mean CE over the word's pieces on its own input, and the number of pieces."""
        if family == "masked":
            pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
            inputs = tokenizer(text.replace("[MASK]", tokenizer.mask_token * len(pieces)), return_tensors="pt")
            positions = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
        else:
            prefix = tokenizer(text[: text.index("[MASK]")].rstrip())["input_ids"]
            pieces = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            inputs = {"input_ids": torch.tensor([prefix + pieces[:-1]])}
            positions = torch.arange(len(prefix) - 1, len(prefix) - 1 + len(pieces))  # piece s after piece s-1
        with torch.no_grad():
            scored = model(**inputs).logits[0, positions]
        return float(F.cross_entropy(scored, torch.tensor(pieces))), len(pieces)

    f = [plain_loss(t, w) for t, w in zip(texts, factual)]
    a = [plain_loss(t, w) for t, w in zip(texts, alternative)]
    rows = {"factual": [loss for loss, _ in f], "alternative": [loss for loss, _ in a]}
    means = {k: sum(loss * n for loss, n in parts) / sum(n for _, n in parts) for k, parts in (("factual", f), ("alternative", a))}
    for kind in ("factual", "alternative"):
        assert row_losses(logits, batch, kind).tolist() == pytest.approx(rows[kind], rel=1e-10)
        assert float(batch_loss(logits, batch, kind)) == pytest.approx(means[kind], rel=1e-10)
    diff_rows = [x - y for x, y in zip(rows["factual"], rows["alternative"])]
    assert row_losses(logits, batch, "diff").tolist() == pytest.approx(diff_rows, rel=1e-10)
    assert float(batch_loss(logits, batch, "diff")) == pytest.approx(means["factual"] - means["alternative"], rel=1e-10)
    assert float(row_losses(logits, batch, "diff", "positions").sum()) == pytest.approx(
        float(batch_loss(logits, batch, "diff")), rel=1e-10)
    with pytest.raises(ValueError, match="no per-position form"):
        position_losses(logits, batch, "diff")
