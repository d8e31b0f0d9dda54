"""Decoder cells on the tiny random masked LM: in-place rewrite + restore, base once, grid, selection."""
import math

import pytest
import torch

from gradiend.evaluation.decoder import DecoderEvaluator
from gradiend.util.io import read_json, write_json
from tests.evaluation_support import demo_tables, gradiend_parts

LRS = [0.01, 1.0]


@pytest.fixture(scope="module")
def parts(tiny_masked_lm_dir, demo_corpus):
    return gradiend_parts(tiny_masked_lm_dir, *demo_tables(demo_corpus))


@pytest.fixture(scope="module")
def evaluator(parts):
    return DecoderEvaluator(parts)


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_cell_restores_base_model_bitwise_and_is_order_independent(parts, evaluator):
    base_model = parts.model_with_gradiend.base_model
    before = state(base_model)
    first = evaluator.evaluate_cell(1.0, 1.0)
    evaluator.evaluate_cell(0.01, -1.0)
    again = evaluator.evaluate_cell(1.0, 1.0)
    after = state(base_model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert first["probs_by_dataset"] == again["probs_by_dataset"] and first["lms"] == again["lms"]
    assert first["id"] == "lr~1_ff~1" and first["finite"] is True
    assert first["class_feature_factors"] == {"she": 1.0, "he": -1.0}
    assert set(first["probs_by_dataset"]) == {"she", "he"}
    # scored on the test split: one row per distinct masked text of each class (no cap set here)
    assert parts.decoder_max_size_training_like is None
    test = parts.data[parts.data["split"] == "test"]
    assert first["n_rows_by_dataset"] == {c: test.loc[test["factual_class"] == c, "masked"].nunique() for c in ("she", "he")}
    # the rewrite is really applied while scoring
    base = evaluator.evaluate_base()
    assert first["probs_by_dataset"] != base["probs_by_dataset"]


def test_base_is_scored_once(evaluator, monkeypatch):
    evaluator.evaluate_base()
    calls = []
    original = type(evaluator.damage).__call__
    monkeypatch.setattr(type(evaluator.damage), "__call__", lambda self, m: calls.append(1) or original(self, m))
    evaluator.evaluate_base()
    evaluator.evaluate_decoder(lrs=LRS, target_class="she")
    assert len(calls) == len(LRS)  # one LMS (with KL and perplexity) per cell, none for the (cached) base


def test_strengthen_only_scores_the_needed_cells_and_datasets(evaluator):
    result = evaluator.evaluate_decoder(lrs=LRS, target_class="she")
    cells = {k: c for k, c in result["grid"].items() if k != "base"}
    assert {c["feature_factor"] for c in cells.values()} == {1.0}
    assert all(set(c["probs_by_dataset"]) == {"he"} for c in cells.values())
    entry = result["she"]
    assert entry["strengthen"] and entry["feature_factor"] == 1.0
    # the chosen cell, by the documented rule computed here: the largest P(she) on "he" rows among the
    # cells keeping lms >= 0.99 * base lms (smallest |lr| first on ties), else the smallest |lr|
    base_lms = result["grid"]["base"]["lms"]
    ordered = sorted(cells.values(), key=lambda c: abs(c["learning_rate"]))
    passing = [c for c in ordered if c["lms"] >= 0.99 * base_lms]
    expected = max(passing, key=lambda c: c["probs_by_dataset"]["he"]["she"]) if passing else ordered[0]
    assert entry["learning_rate"] == expected["learning_rate"] and entry["fallback"] is (not passing)
    assert entry["value"] == pytest.approx(expected["probs_by_dataset"]["he"]["she"])
    assert entry["lms"] == expected["lms"] and entry["base_lms"] == base_lms
    assert "she_weaken" not in result and "he" not in result


def test_both_directions_and_json_round_trip(evaluator, tmp_path):
    result = evaluator.evaluate_decoder(lrs=LRS, increase_target_probabilities=None, output_dir=tmp_path)
    assert {"she", "he", "she_weaken", "he_weaken"} <= set(result)
    assert result["she_weaken"]["feature_factor"] == -1.0 and result["he_weaken"]["feature_factor"] == 1.0
    stored = read_json(tmp_path / "summary.json")
    assert stored["she"] == result["she"]
    # the workflow path: cells written one by one, summarised from the files without the model
    for key, cell in result["grid"].items():
        write_json(tmp_path / "cells" / f"{key}.json", cell)
    cells = {p.stem: read_json(p) for p in (tmp_path / "cells").glob("*.json")}
    base = cells.pop("base")
    again = evaluator.summarize(cells, base, increase_target_probabilities=None)
    assert again["she"] == result["she"] and again["he_weaken"] == result["he_weaken"]


def test_non_finite_cell_is_flagged_and_never_selected(evaluator):
    result = evaluator.evaluate_decoder(lrs=[1e38, 0.01], target_class="she")
    broken = result["grid"]["lr~1e+38_ff~1"]
    assert broken["finite"] is False
    assert not all(math.isfinite(v) for v in [broken["lms"], *broken["probs_by_dataset"]["he"].values()])
    assert result["she"]["learning_rate"] == 0.01
    assert result["non_finite_cells"] == ["lr~1e+38_ff~1"]


def test_unknown_target_class_error(evaluator):
    with pytest.raises(ValueError, match=r"unknown target class 'it'.*\['she', 'he'\]"):
        evaluator.evaluate_decoder(lrs=LRS, target_class="it")


def test_without_neutral_data_lms_ignores_target_words(parts):
    from gradiend.evaluation.context import EvaluationParts

    bare = EvaluationParts(parts.model_with_gradiend, parts.data, None)
    texts, ignored = DecoderEvaluator(bare).lms_texts()
    assert {"she", "he"} <= ignored
    assert texts and all("[MASK]" not in t for t in texts)


def test_grid_session_matches_single_cells_and_restores(parts, evaluator):
    before = state(parts.model_with_gradiend.base_model)
    grid = evaluator.evaluate_grid([0.01, 1.0], [1.0, -1.0])
    after = state(parts.model_with_gradiend.base_model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    for lr, ff in ((1.0, -1.0), (0.01, 1.0)):
        single = evaluator.evaluate_cell(lr, ff)
        cell = grid[single["id"]]
        assert cell["probs_by_dataset"] == single["probs_by_dataset"] and cell["lms"] == single["lms"]
