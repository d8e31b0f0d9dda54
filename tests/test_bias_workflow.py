"""Dry runs (snakemake -n) of a config with bias benchmarks and a feature comparison."""
import copy
from pathlib import Path

import yaml

from tests.bias_support import write_crows_pairs, write_seat, write_stereoset
from tests.test_workflow_dryrun import REPO, dry_run, snakemake


def analysis_config(tmp_path: Path, **changes) -> Path:
    """The embedded default plus benchmarks on the BERT experiment, a her/his experiment on the same
    demo BERT, and a comparison of the two."""
    write_stereoset(tmp_path / "bench" / "test.json")
    write_crows_pairs(tmp_path / "bench" / "crows_pairs_anonymized.csv")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    bert = config["experiments"]["gender_tiny_bert"]
    bert["benchmarks"] = {"stereoset": {"path": str(tmp_path / "bench" / "test.json")},
                          "crows_pairs": {"path": str(tmp_path / "bench" / "crows_pairs_anonymized.csv")},
                          "seat": {"paths": [str(write_seat(tmp_path / "bench" / "sent-weat6.jsonl"))]},
                          "bias_types": ["gender"], "bootstrap": 100}
    possessive = copy.deepcopy(bert)
    possessive["data"]["feature_targets"] = [{"id": "H", "targets": ["her"]}, {"id": "S", "targets": ["his"]}]
    possessive["data"]["target_classes"] = ["H", "S"]
    possessive["data"]["neutral"]["additional_excluded_words"] = ["she", "he", "him", "hers"]
    possessive["rewrite"] = ["H"]
    config["experiments"]["possessive_tiny_bert"] = possessive
    config["comparisons"] = {"pronouns": {"experiments": ["gender_tiny_bert", "possessive_tiny_bert"], "topk": 100}}
    for key, value in changes.items():
        config[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_benchmarks_and_comparisons_dry_run(tmp_path):
    counts, output = dry_run(tmp_path, "--configfile", str(analysis_config(tmp_path)), quiet=False)
    # base + F + F_weaken for the gender experiment, base + H for the possessive one; no benchmarks
    # for the GPT-2 experiment, which has no `benchmarks` block
    assert counts["benchmark_model"] == 5
    assert counts["benchmark_table"] == 1
    assert counts["comparison_topk"] == counts["comparison_cross_encoding"] == 1
    assert counts["report"] == 3 and counts["train_seed"] == 9
    results = tmp_path / "results"
    for name in ("base", "F", "F_weaken"):
        assert str(results / "gender_tiny_bert" / "benchmarks" / f"{name}.json") in output
    assert str(results / "possessive_tiny_bert" / "benchmarks" / "H.json") in output
    assert str(results / "gender_tiny_gpt2" / "benchmarks" / "base.json") not in output
    for stem in ("topk_overlap", "cross_encoding"):
        for suffix in ("csv", "png"):
            assert str(results / "comparisons" / "pronouns" / f"{stem}.{suffix}") in output
    assert str(results / "benchmarks.csv") in output and str(results / "benchmarks.tex") in output
    job = output.split("rule benchmark_model:")[1].split("output:")[0]
    assert str(tmp_path / "bench" / "sent-weat6.jsonl") in job and str(tmp_path / "bench" / "test.json") in job


def test_without_the_blocks_nothing_extra_runs(tmp_path):
    counts, _ = dry_run(tmp_path)
    assert not {"benchmark_model", "benchmark_table", "comparison_topk", "comparison_cross_encoding"} & set(counts)


def test_benchmarks_change_reruns_only_the_benchmark_jobs(tmp_path):
    from gradiend import workflow_config as wfc

    config = wfc.load_config_file(analysis_config(tmp_path))
    bert = config["experiments"]["gender_tiny_bert"]
    changed = copy.deepcopy(bert)
    changed["benchmarks"]["bootstrap"] = 200
    for stage in wfc.STAGE_KEYS:
        if stage in ("report", "provenance", "benchmark_model"):
            continue
        assert wfc.stage_config(bert, stage) == wfc.stage_config(changed, stage), stage
    assert wfc.stage_config(bert, "benchmark_model") != wfc.stage_config(changed, "benchmark_model")


def test_different_base_models_in_one_comparison_is_a_config_error(tmp_path):
    config = analysis_config(tmp_path, comparisons={"mixed": {"experiments": ["gender_tiny_bert", "gender_tiny_gpt2"]}})
    code, output = snakemake("-n", "--configfile", str(config), results_dir=tmp_path / "results")
    assert code != 0
    assert "config key `comparisons.mixed.experiments`: the experiments of one comparison must share their base model" \
        in output
    config = analysis_config(tmp_path, comparisons={"typo": {"experiments": ["gender_tiny_bert", "gender_tiny_brt"]}})
    code, output = snakemake("-n", "--configfile", str(config), results_dir=tmp_path / "results")
    assert code != 0 and "unknown experiment(s) ['gender_tiny_brt']" in output


def test_a_benchmark_file_in_another_format_stops_snakemake_at_start_up(tmp_path):
    config = analysis_config(tmp_path)
    (tmp_path / "bench" / "test.json").write_text("sent_more,sent_less\n", encoding="utf-8")
    code, output = snakemake("-n", "--configfile", str(config), results_dir=tmp_path / "results")
    assert code != 0
    assert f"{tmp_path / 'bench' / 'test.json'}: not a StereoSet JSON file" in output
