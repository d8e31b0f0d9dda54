"""Learning-rate grid, selection policies, strengthen/weaken summaries, non-finite cells."""
import math

import pytest

from gradiend.cells import cell_name, default_learning_rates
from gradiend.evaluation.selection import LMSThresholdPolicy, LMSTimesMetricPolicy, summarize_cells, summary_entry

FACTORS = {"she": 1.0, "he": -1.0}


def cell(lr, ff, lms, p_she_on_he, p_she_on_she, p_he_on_she=0.1, p_he_on_he=0.8):
    return {
        "id": cell_name(lr, ff), "learning_rate": lr, "feature_factor": ff, "lms": lms,
        "probs_by_dataset": {
            "he": {"she": p_she_on_he, "he": p_he_on_he},
            "she": {"she": p_she_on_she, "he": p_he_on_she},
        },
    }


BASE = {"is_base": True, "learning_rate": 0.0, "feature_factor": 0.0, "lms": 0.5,
        "probs_by_dataset": {"he": {"she": 0.1, "he": 0.8}, "she": {"she": 0.7, "he": 0.2}}}


def test_default_grid_matches_reference():
    assert default_learning_rates() == [100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001]


def test_threshold_policy_picks_best_metric_within_lms_budget():
    cells = [cell(0.01, 1.0, 0.5, 0.2, 0.8), cell(0.1, 1.0, 0.497, 0.4, 0.9), cell(1.0, 1.0, 0.3, 0.99, 0.99)]
    summary = summarize_cells(cells, BASE, FACTORS, target_classes=["she"], directions=["strengthen"])
    entry = summary["she"]
    assert (entry["learning_rate"], entry["feature_factor"]) == (0.1, 1.0)
    assert entry["value"] == pytest.approx(0.4) and entry["base_value"] == pytest.approx(0.1)
    assert entry["lms"] == 0.497 and entry["base_lms"] == 0.5
    assert entry["strengthen"] is True and entry["fallback"] is False


def test_threshold_fallback_takes_smallest_nonzero_lr():
    cells = [cell(lr, 1.0, 0.1, 0.9, 0.9) for lr in (5.0, 0.002, 0.5)] + [cell(0.0, 1.0, 0.1, 0.9, 0.9)]
    entry = summarize_cells(cells, BASE, FACTORS, target_classes=["she"], directions=["strengthen"])["she"]
    assert entry["learning_rate"] == 0.002
    assert entry["fallback"] is True
    assert "smallest" in entry["reason"]


def test_lms_times_metric_policy():
    cells = [cell(0.01, 1.0, 0.5, 0.2, 0.8), cell(1.0, 1.0, 0.45, 0.9, 0.9)]
    entry = summarize_cells(cells, BASE, FACTORS, ["she"], ["strengthen"], LMSTimesMetricPolicy())["she"]
    assert entry["learning_rate"] == 1.0 and entry["policy"] == "lms_times_metric"


def test_strengthen_and_weaken_keys_from_one_grid():
    cells = [
        cell(0.1, 1.0, 0.5, 0.6, 0.95),     # strengthens she: P(she) on he rows up
        cell(0.1, -1.0, 0.5, 0.01, 0.2),    # weakens she: P(she) on she rows down
        cell(0.01, -1.0, 0.5, 0.05, 0.5),
    ]
    summary = summarize_cells(cells, BASE, FACTORS)
    assert {"she", "he", "she_weaken", "he_weaken"} <= set(summary)
    assert summary["she"]["feature_factor"] == 1.0 and summary["she"]["strengthen"] is True
    weaken = summary["she_weaken"]
    assert weaken["feature_factor"] == -1.0 and weaken["learning_rate"] == 0.1
    assert weaken["value"] == pytest.approx(0.8) and weaken["strengthen"] is False
    assert weaken["base_value"] == pytest.approx(0.3)
    # weakening "he" uses she's factor, metric 1 - P(he) on he rows
    assert summary["he_weaken"]["feature_factor"] == 1.0
    assert summary_entry(summary, "she", increase_target_probabilities=False) == weaken


def test_non_finite_cell_is_reported_and_never_selected():
    cells = [cell(0.1, 1.0, 0.5, math.nan, 0.9), cell(1.0, 1.0, math.inf, 0.9, 0.9), cell(0.01, 1.0, 0.5, 0.2, 0.8)]
    summary = summarize_cells(cells, BASE, FACTORS, ["she"], ["strengthen"])
    assert summary["she"]["learning_rate"] == 0.01
    assert summary["she"]["n_non_finite"] == 2
    assert summary["non_finite_cells"] == sorted([cell_name(0.1, 1.0), cell_name(1.0, 1.0)])
    with pytest.raises(ValueError, match="no finite decoder cell to strengthen class .she..*non-finite"):
        summarize_cells(cells[:2], BASE, FACTORS, ["she"], ["strengthen"])


def test_unknown_target_class_names_valid_ones():
    with pytest.raises(ValueError, match=r"unknown target class 'it'.*\['she', 'he'\]"):
        summarize_cells([cell(0.1, 1.0, 0.5, 0.2, 0.8)], BASE, FACTORS, target_classes=["it"])


def test_summary_entry_missing_weaken_hints_at_second_call():
    with pytest.raises(KeyError, match="increase_target_probabilities=False"):
        summary_entry({"she": {"learning_rate": 1.0}}, "she", increase_target_probabilities=False)


def test_cell_key_is_stable_and_file_name_safe():
    assert cell_name(0.001, -1.0) == "lr~0.001_ff~-1"
    assert cell_name(100, 1) == "lr~100_ff~1"
    assert "/" not in cell_name(1e-5, 0.5)
    assert LMSThresholdPolicy().ratio == 0.99
