"""How masked rows become model inputs: masks, targets, padding, truncation, objective choice."""
from __future__ import annotations

import pytest
import torch

from gradiend.model.loading import load_base_model
from gradiend.objectives import CausalLMObjective, MaskedLMObjective, resolve_objective
from gradiend.objectives.base import IGNORE_ID
from tests.objectives_support import masked_rows

CHEF = "The chef tasted the soup, then [MASK] added pepper."


@pytest.fixture(scope="module")
def masked_lm(tiny_masked_lm_dir):
    return load_base_model(tiny_masked_lm_dir)


@pytest.fixture(scope="module")
def causal_lm(tiny_causal_lm_dir):
    return load_base_model(tiny_causal_lm_dir)


def test_auto_objective_follows_model_family(masked_lm, causal_lm):
    assert masked_lm[2].name == "masked_lm" and isinstance(masked_lm[2], MaskedLMObjective)
    assert causal_lm[2].name == "causal_lm" and isinstance(causal_lm[2], CausalLMObjective)
    assert masked_lm[2].max_positions == masked_lm[0].config.max_position_embeddings


def test_masked_lm_objective_needs_a_mask_token(causal_lm):
    model, tokenizer, _ = causal_lm
    with pytest.raises(ValueError, match="mask token"):
        resolve_objective("masked_lm", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="mask token"):
        MaskedLMObjective().prepare(tokenizer, [CHEF], ["she"])
    with pytest.raises(ValueError, match="unknown objective"):
        resolve_objective("seq2seq", tokenizer=tokenizer)


def test_masked_lm_scores_every_mask_and_pads_to_longest_row(masked_lm, demo_corpus):
    _, tokenizer, objective = masked_lm
    masked, factual, alternative = masked_rows(demo_corpus, 20)
    batch = objective.prepare(tokenizer, masked, factual, alternative)
    lengths = [len(tokenizer(m.replace("[MASK]", tokenizer.mask_token))["input_ids"]) for m in masked]
    assert batch.inputs["input_ids"].shape == (20, max(lengths))
    assert batch.inputs["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch.positions_per_row().tolist() == [m.count("[MASK]") for m in masked]
    assert bool((batch.inputs["input_ids"][batch.row_index, batch.position] == tokenizer.mask_token_id).all())
    for p in range(batch.n_positions):
        row = int(batch.row_index[p])
        assert batch.factual_ids[p] == tokenizer.convert_tokens_to_ids(factual[row].lower())
        assert batch.alternative_ids[p] == tokenizer.convert_tokens_to_ids(alternative[row].lower())


def test_masked_lm_expands_a_single_mask_for_multi_token_targets(masked_lm):
    _, tokenizer, objective = masked_lm
    batch = objective.prepare(tokenizer, [CHEF, CHEF], ["he-she", "she"], ["she-he", "he"])
    pieces = tokenizer("he-she", add_special_tokens=False)["input_ids"]
    assert len(pieces) == 3
    assert batch.positions_per_row().tolist() == [3, 1]
    first = batch.position[batch.row_index == 0]
    assert first.tolist() == list(range(int(first[0]), int(first[0]) + 3))
    assert batch.factual_ids[:3].tolist() == pieces
    assert batch.alternative_ids[:3].tolist() == tokenizer("she-he", add_special_tokens=False)["input_ids"]


def test_masked_lm_scores_targets_of_different_sub_token_counts_on_their_own_inputs(masked_lm):
    _, tokenizer, objective = masked_lm
    batch = objective.prepare(tokenizer, [CHEF, CHEF], ["she", "she"], ["he", "he-she"])
    pieces = tokenizer("he-she", add_special_tokens=False)["input_ids"]
    she, he = tokenizer.convert_tokens_to_ids(["she", "he"])
    # row 0 shares one input; row 1 has its factual on input 1 (one mask), its alternative on input 2 (three)
    widened = [tokenizer(CHEF.replace("[MASK]", tokenizer.mask_token * k))["input_ids"] for k in (1, 1, 3)]
    ids = batch.inputs["input_ids"]
    assert ids.shape[0] == 3 and [ids[r, : len(w)].tolist() for r, w in enumerate(widened)] == widened
    assert batch.input_rows.tolist() == [0, 1, 2, 2, 2] and batch.row_index.tolist() == [0, 1, 1, 1, 1]
    assert bool((ids[batch.input_rows, batch.position] == tokenizer.mask_token_id).all())
    assert batch.factual_ids.tolist() == [she, she, IGNORE_ID, IGNORE_ID, IGNORE_ID]
    assert batch.alternative_ids.tolist() == [he, IGNORE_ID] + pieces
    assert not batch.shared_positions
    assert batch.positions_per_row("factual").tolist() == [1, 1]
    assert batch.positions_per_row("alternative").tolist() == [1, 3]
    alone = objective.prepare(tokenizer, [CHEF], ["she"], ["he-she"])
    sub = batch.select([1])
    for name in ("row_index", "position", "factual_ids", "alternative_ids", "input_row"):
        assert torch.equal(getattr(sub, name), getattr(alone, name)), name
    assert torch.equal(sub.inputs["input_ids"], alone.inputs["input_ids"])
    assert batch.select([0]).input_row is None  # row 0 alone needs one input


def test_a_moved_batch_keeps_whether_its_positions_are_shared(masked_lm):
    """Decided once, where prepare left the ids: on the meta device (where no value can be read, like a
    GPU tensor that would make the CPU wait) the moved batch still knows."""
    _, tokenizer, objective = masked_lm
    shared = objective.prepare(tokenizer, [CHEF], ["she"], ["he"])
    unshared = objective.prepare(tokenizer, [CHEF], ["she"], ["he-she"])
    assert [shared.to("meta").shared_positions, unshared.to("meta").shared_positions] == [True, False]


def test_rows_without_mask_or_target_are_named(masked_lm):
    _, tokenizer, objective = masked_lm
    with pytest.raises(ValueError, match=r"row 1 contains no mask placeholder"):
        objective.prepare(tokenizer, [CHEF, "No mask here."], ["she", "he"])
    with pytest.raises(ValueError, match=r"row 0 has an empty factual target"):
        objective.prepare(tokenizer, [CHEF], [""])
    with pytest.raises(ValueError, match="alternative has 1 entries"):
        objective.prepare(tokenizer, [CHEF, CHEF], ["she", "he"], ["he"])


def test_truncation_that_cuts_a_mask_raises(masked_lm):
    model, tokenizer, objective = masked_lm
    late = "one two three four five six seven eight nine ten then [MASK] left."
    batch = objective.prepare(tokenizer, ["Then [MASK] left.", late], ["she", "he"])  # fits the model
    assert batch.n_positions == 2
    with pytest.raises(ValueError, match=r"row 1 loses 1 of its 1 mask\(s\) to truncation at max_length=8.*ten then"):
        objective.prepare(tokenizer, ["Then [MASK] left.", late], ["she", "he"], max_length=8)


def test_models_with_few_positions_work_and_default_truncation_follows_the_model(masked_lm):
    model, tokenizer, objective = masked_lm
    positions = model.config.max_position_embeddings
    assert positions < 256
    long_tail = "[MASK] went home. " + "The dog barked. " * positions
    batch = objective.prepare(tokenizer, [long_tail], ["she"])
    assert batch.inputs["input_ids"].shape[1] == positions
    assert objective.scored_logits(model, batch).shape == (1, model.config.vocab_size)
    with pytest.raises(ValueError, match=f"max_length={positions}"):
        objective.prepare(tokenizer, ["The dog barked. " * positions + "[MASK] went home."], ["she"])


def test_causal_target_is_the_token_with_its_leading_space(causal_lm):
    _, tokenizer, objective = causal_lm
    batch = objective.prepare(tokenizer, [CHEF], ["she"], ["he"])
    she = tokenizer(" she", add_special_tokens=False)["input_ids"]
    assert len(she) == 1 and tokenizer.convert_ids_to_tokens(she) == ["Ġshe"]
    assert batch.factual_ids.tolist() == she
    assert batch.alternative_ids.tolist() == tokenizer(" he", add_special_tokens=False)["input_ids"]
    prefix = tokenizer("The chef tasted the soup, then")["input_ids"]
    assert batch.inputs["input_ids"][0].tolist() == prefix
    assert batch.position.tolist() == [len(prefix) - 1]


def test_causal_rows_are_right_padded_and_scored_at_their_last_prefix_token(causal_lm, demo_corpus):
    _, tokenizer, objective = causal_lm
    masked, factual, alternative = masked_rows(demo_corpus, 20, need_left_context=True)
    batch = objective.prepare(tokenizer, masked, factual, alternative)
    prefixes = [tokenizer(m[: m.index("[MASK]")].rstrip())["input_ids"] for m in masked]
    assert batch.inputs["input_ids"].shape == (20, max(len(p) for p in prefixes))
    assert batch.row_index.tolist() == list(range(20))
    assert batch.position.tolist() == [len(p) - 1 for p in prefixes]
    ids = batch.inputs["input_ids"]
    assert all(ids[i, : len(p)].tolist() == p for i, p in enumerate(prefixes))
    assert bool((ids[batch.inputs["attention_mask"] == 0] == tokenizer.pad_token_id).all())


def test_causal_multi_token_target_is_scored_piece_by_piece(causal_lm):
    _, tokenizer, objective = causal_lm
    pieces = tokenizer(" zxqvj", add_special_tokens=False)["input_ids"]
    he = tokenizer(" he", add_special_tokens=False)["input_ids"]
    assert len(pieces) > 2 and len(he) == 1
    prefix = tokenizer("The chef tasted the soup, then")["input_ids"]
    first = len(prefix) - 1
    # the factual on prefix + its first pieces; " he" shares its first position
    batch = objective.prepare(tokenizer, [CHEF], ["zxqvj"], ["he"])
    assert batch.inputs["input_ids"].tolist() == [prefix + pieces[:-1]] and batch.input_row is None
    assert batch.position.tolist() == list(range(first, first + len(pieces)))
    assert batch.factual_ids.tolist() == pieces
    assert batch.alternative_ids.tolist() == he + [IGNORE_ID] * (len(pieces) - 1)
    # two multi-piece targets that continue differently: one input each
    other = tokenizer(" qjxwz", add_special_tokens=False)["input_ids"]
    assert len(other) > 1 and other[0] != pieces[0]
    batch = objective.prepare(tokenizer, [CHEF], ["zxqvj"], ["qjxwz"])
    ids = batch.inputs["input_ids"]
    assert ids[0, : len(prefix) + len(pieces) - 1].tolist() == prefix + pieces[:-1]
    assert ids[1, : len(prefix) + len(other) - 1].tolist() == prefix + other[:-1]
    assert batch.input_rows.tolist() == [0] * len(pieces) + [1] * len(other)
    assert batch.row_index.tolist() == [0] * (len(pieces) + len(other))
    assert batch.position.tolist() == list(range(first, first + len(pieces))) + list(range(first, first + len(other)))
    assert batch.factual_ids.tolist() == pieces + [IGNORE_ID] * len(other)
    assert batch.alternative_ids.tolist() == [IGNORE_ID] * len(pieces) + other


def test_causal_target_longer_than_max_length_is_named(causal_lm):
    _, tokenizer, objective = causal_lm
    pieces = tokenizer(" zxqvj", add_special_tokens=False)["input_ids"]
    batch = objective.prepare(tokenizer, [CHEF], ["zxqvj"], max_length=len(pieces))
    assert batch.position.tolist() == list(range(len(pieces)))  # the prefix's last token is kept
    with pytest.raises(ValueError, match=rf"row 0 has a target of {len(pieces)} sub-tokens.*max_length={len(pieces) - 1}"):
        objective.prepare(tokenizer, [CHEF], ["zxqvj"], max_length=len(pieces) - 1)


def test_causal_row_without_left_context_is_named(causal_lm):
    _, tokenizer, objective = causal_lm
    with pytest.raises(ValueError, match=r"row 1 has no text before its mask"):
        objective.prepare(tokenizer, [CHEF, "[MASK] went home."], ["she", "she"])


def test_causal_long_prefix_keeps_its_last_tokens(causal_lm):
    _, tokenizer, objective = causal_lm
    text = "The dog barked and the cat slept. " * 10 + "Then [MASK] left."
    batch = objective.prepare(tokenizer, [text], ["she"], max_length=12)
    full = tokenizer(text[: text.index("[MASK]")].rstrip())["input_ids"]
    assert batch.inputs["input_ids"][0].tolist() == full[-12:]
    assert batch.position.tolist() == [11]


def test_select_repads_and_to_moves(masked_lm, demo_corpus):
    _, tokenizer, objective = masked_lm
    masked, factual, alternative = masked_rows(demo_corpus, 6)
    batch = objective.prepare(tokenizer, masked, factual, alternative)
    sub = batch.select([4, 1])
    alone = objective.prepare(tokenizer, [masked[4], masked[1]], [factual[4], factual[1]], [alternative[4], alternative[1]])
    for key in alone.inputs:
        assert torch.equal(sub.inputs[key], alone.inputs[key])
    for name in ("row_index", "position", "factual_ids", "alternative_ids"):
        assert torch.equal(getattr(sub, name), getattr(alone, name))
    moved = batch.to("cpu")
    assert moved.n_rows == batch.n_rows and torch.equal(moved.position, batch.position)


def test_training_batches_and_scorers_share_one_length_limit(masked_lm, causal_lm):
    from gradiend.evaluation.batching import max_input_length
    from gradiend.objectives.base import length_limit, model_max_positions

    def tokenizer_with_limit(limit):
        return type("Tokenizer", (), {"model_max_length": limit})()

    for model, _, objective in (masked_lm, causal_lm):
        positions = model_max_positions(model)
        for limit, expected in ((16, 16), (positions + 1, positions), (int(1e30), positions)):
            tokenizer = tokenizer_with_limit(limit)
            assert objective.max_length_for(tokenizer, None) == max_input_length(model, tokenizer) == expected
    assert length_limit(None, tokenizer_with_limit(int(1e30))) is None   # nothing known: no truncation
