"""The config keys of the adaptive search, the damage bound and the capability block: defaults, what
each stage sees, and bad values refused at start-up with the key named."""
import importlib.util

import pytest
import yaml

from gradiend import workflow_config as wfc

from tests.config_support import EXP, bert, only_problem, raw  # noqa: F401 (raw is a fixture)




def test_defaults_keep_the_grid_and_no_kl_bound(raw):
    decoder = bert(wfc.load_and_validate(raw))["decoder"]
    assert decoder["search"] == "grid" and decoder["selection"]["max_kl"] is None
    assert decoder["adaptive"] == {"trials": 8, "feature_factor_scales": [1.0]}
    assert bert(wfc.load_and_validate(raw))["capability"] is None


def test_each_stage_sees_its_search_keys(raw):
    exp = bert(wfc.load_and_validate(raw))
    grid, search = wfc.stage_config(exp, "decoder_grid"), wfc.stage_config(exp, "decoder_search")
    # a cell depends on the search mode (validation scores) but not on the budget or the bound,
    # so a rerun with more trials or another bound keeps every scored cell
    assert grid["decoder"]["search"] == "grid" and "adaptive" not in grid["decoder"]
    assert "selection" not in grid["decoder"]
    assert {k: v for k, v in search.items() if k != "decoder"} == {k: v for k, v in grid.items() if k != "decoder"}
    assert set(search["decoder"]) - set(grid["decoder"]) == {"adaptive", "selection"}
    assert set(wfc.stage_config(exp, "select_cell")["decoder"]) == {"search", "selection"}


def test_a_trial_budget_of_zero_is_refused(raw):
    bert(raw)["decoder"]["adaptive"] = {"trials": 0}
    problem = only_problem(raw)
    assert f"`{EXP}.decoder.adaptive.trials`: 0 is less than the minimum of 1" in problem


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_a_non_finite_kl_bound_is_refused(raw, value):
    bert(raw)["decoder"]["selection"] = {"max_kl": yaml.safe_load(value)}
    problem = only_problem(raw)
    assert f"`{EXP}.decoder.selection.max_kl`" in problem and "NaN and infinity are not allowed" in problem


def test_a_kl_bound_of_zero_or_below_is_refused(raw):
    bert(raw)["decoder"]["selection"] = {"max_kl": 0.0}
    assert f"`{EXP}.decoder.selection.max_kl`" in only_problem(raw)


def test_unknown_search_mode_and_scale(raw):
    bert(raw)["decoder"]["search"] = "optuna"
    assert f"`{EXP}.decoder.search`" in only_problem(raw)
    bert(raw)["decoder"]["search"] = "adaptive"
    bert(raw)["decoder"]["adaptive"] = {"feature_factor_scales": [1.0, 0.0]}
    assert f"`{EXP}.decoder.adaptive.feature_factor_scales" in only_problem(raw)


def test_a_bound_needs_the_threshold_policy(raw):
    bert(raw)["decoder"]["search"] = "adaptive"
    bert(raw)["decoder"]["selection"] = {"policy": "lms_times_metric", "max_kl": 0.01}
    problem = only_problem(raw)
    assert f"`{EXP}.decoder.selection.policy`" in problem
    assert f"`{EXP}.decoder.selection.max_kl`" in problem and f"`{EXP}.decoder.search: adaptive`" in problem
    assert "use `policy: lms_threshold`" in problem


def test_capability_block(raw, tmp_path):
    bert(raw)["capability"] = {"text": str(tmp_path / "missing.txt")}
    assert f"`{EXP}.capability.text`: file not found" in only_problem(raw)
    (tmp_path / "held_out.txt").write_text("the chef tasted the soup .\n", encoding="utf-8")
    bert(raw)["capability"] = {"text": str(tmp_path / "held_out.txt")}
    exp = bert(wfc.load_and_validate(raw))
    assert exp["capability"] == {"text": str(tmp_path / "held_out.txt"), "max_texts": None, "batch_size": 32,
                                 "bootstrap": 1000, "seed": 0, "lm_eval": None}
    assert wfc.evaluated_models(exp, "capability") == ["base", "F", "F_weaken"]
    assert wfc.stage_config(exp, "capability_model")["capability"] == exp["capability"]


@pytest.mark.skipif(importlib.util.find_spec("lm_eval") is not None, reason="lm-evaluation-harness is installed")
def test_lm_eval_tasks_without_the_package_are_refused(raw, tmp_path):
    (tmp_path / "held_out.txt").write_text("the chef tasted the soup .\n", encoding="utf-8")
    bert(raw)["capability"] = {"text": str(tmp_path / "held_out.txt"), "lm_eval": {"tasks": ["hellaswag"]}}
    problem = only_problem(raw)
    assert f"`{EXP}.capability.lm_eval`" in problem and "pip install lm-eval" in problem
