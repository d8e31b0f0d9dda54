"""Slow: one real Snakemake run of a reduced config with bias benchmarks and a feature comparison.

Two experiments on one tiny demo BERT (she/he with benchmarks, her/his), one seed, a 1 x 2 grid;
checks that every benchmark and comparison file is written with content and that the report shows
the benchmarks. A few minutes on 2 cores; run with ``python3 -m pytest -m slow tests/test_bias_workflow_e2e.py``.
"""
import copy
import json

import pandas as pd
import pytest
import yaml

from tests.bias_support import write_crows_pairs, write_stereoset
from tests.test_workflow_e2e import EXPERIMENT, reduced_config, snakemake

pytestmark = pytest.mark.slow


def test_benchmarks_and_comparison_end_to_end(tmp_path):
    config = reduced_config(tmp_path / "results", [0.1])
    bert = config["experiments"][EXPERIMENT]
    bert.update(seeds=[0], pre_prune=None, rewrite=["F"])
    bert["benchmarks"] = {"stereoset": {"path": str(write_stereoset(tmp_path / "st.json"))},
                          "crows_pairs": {"path": str(write_crows_pairs(tmp_path / "cp.csv"))},
                          "bootstrap": 100}
    possessive = copy.deepcopy(bert)
    del possessive["benchmarks"]
    possessive["data"]["feature_targets"] = [{"id": "H", "targets": ["her"]}, {"id": "S", "targets": ["his"]}]
    possessive["data"]["target_classes"] = ["H", "S"]
    possessive["data"]["neutral"]["additional_excluded_words"] = ["she", "he", "him", "hers"]
    possessive["rewrite"] = []
    config["experiments"]["possessive_tiny_bert"] = possessive
    config["comparisons"] = {"pronouns": {"experiments": [EXPERIMENT, "possessive_tiny_bert"], "topk": 50,
                                          "max_size": 8}}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    snakemake(config_file, timeout=1200)

    results = tmp_path / "results"
    for model in ("base", "F"):
        result = json.loads((results / EXPERIMENT / "benchmarks" / f"{model}.json").read_text())
        assert result["model"] == model and result["likelihood"] == "pseudo-log-likelihood"
        assert result["stereoset"]["n"] == 5 and result["crows_pairs"]["n"] == 4
    table = pd.read_csv(results / "benchmarks.csv")
    assert list(zip(table["experiment"], table["model"])) == [(EXPERIMENT, "base"), (EXPERIMENT, "F")]
    assert "## Bias benchmarks" in (results / EXPERIMENT / "report.md").read_text()
    assert "## Bias benchmarks" not in (results / "possessive_tiny_bert" / "report.md").read_text()
    overlap = pd.read_csv(results / "comparisons" / "pronouns" / "topk_overlap.csv")
    assert len(overlap) == 4 and set(overlap["k_a"]) == {50}
    cross = pd.read_csv(results / "comparisons" / "pronouns" / "cross_encoding.csv")
    assert len(cross) == 8 and cross["mean_encoded"].notna().all()
    for name in ("topk_overlap.png", "cross_encoding.png"):
        assert (results / "comparisons" / "pronouns" / name).read_bytes()[:4] == b"\x89PNG"
