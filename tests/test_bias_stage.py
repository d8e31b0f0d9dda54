"""The bias-benchmark stages on tiny models: one JSON per model, the table, the report section."""
import json
from pathlib import Path

import pandas as pd
import pytest

from gradiend import stages
from gradiend import workflow_config as wfc
from gradiend.evaluation.bias import BenchmarkFormatError, load_benchmarks, run_benchmarks
from gradiend.model.loading import load_base_model
from gradiend.stages.bias import benchmark_report_section
from gradiend.stages.report import _Links
from tests.bias_support import write_crows_pairs, write_seat, write_stereoset


def experiment(base_model, files, **benchmarks):
    config = {"results_dir": str(files / "results"), "experiments": {"exp": {
        "base_model": str(base_model),
        "data": {"source": {"texts": ["she ran."]},
                 "feature_targets": [{"id": "F", "targets": ["she"]}, {"id": "M", "targets": ["he"]}]},
        "rewrite": ["F"],
        "benchmarks": {"stereoset": {"path": str(files / "st.json")}, "crows_pairs": {"path": str(files / "cp.csv")},
                       "bootstrap": 50, **benchmarks}}}}
    return wfc.load_and_validate(config)["experiments"]["exp"]


@pytest.fixture
def files(tmp_path):
    write_stereoset(tmp_path / "st.json")
    write_crows_pairs(tmp_path / "cp.csv")
    return tmp_path


def test_benchmark_model_table_and_report(files, tiny_masked_lm_dir, tiny_causal_lm_dir):
    exp = experiment(tiny_masked_lm_dir, files)
    assert wfc.evaluated_models(exp, "benchmarks") == ["base", "F"]
    cut = wfc.stage_config(exp, "benchmark_model")
    out = files / "results" / "exp" / "benchmarks"
    stages.benchmark_model(cut, model_name="base", model_dir=None, output=str(out / "base.json"),
                           stereoset=str(files / "st.json"), crows_pairs=str(files / "cp.csv"))
    # a "rewritten" model folder: here simply another model of the same tokenizer family
    stages.benchmark_model(cut, model_name="F", model_dir=str(tiny_causal_lm_dir), output=str(out / "F.json"),
                           seat=[str(write_seat(files / "sent-weat6.jsonl"))])
    base = json.loads((out / "base.json").read_text())
    rewritten = json.loads((out / "F.json").read_text())
    assert (base["model"], base["kind"], base["likelihood"]) == ("base", "masked", "pseudo-log-likelihood")
    assert (rewritten["kind"], rewritten["likelihood"]) == ("causal", "log-likelihood")
    assert base["stereoset"]["source"] == str(files / "st.json") and base["bias_types"] == ["gender"]
    assert base["stereoset"]["n"] == 5 and base["crows_pairs"]["n"] == 4 and base["bootstrap"] == 50
    import hashlib
    assert base["crows_pairs"]["sha256"] == hashlib.sha256((files / "cp.csv").read_bytes()).hexdigest()

    model, tokenizer, _ = load_base_model(tiny_masked_lm_dir)
    direct = run_benchmarks(model, tokenizer, load_benchmarks(exp["benchmarks"]), bootstrap=50, seed=0)
    for key in ("ss", "lms", "icat"):
        assert base["stereoset"][key] == pytest.approx(direct["stereoset"][key])
    assert base["stereoset"]["ci"].keys() == direct["stereoset"]["ci"].keys()
    for key, interval in direct["stereoset"]["ci"].items():
        assert base["stereoset"]["ci"][key] == pytest.approx(interval)
    assert base["crows_pairs"]["score"] == direct["crows_pairs"]["score"]

    results = [str(out / "base.json"), str(out / "F.json")]
    stages.benchmark_table({"exp": wfc.stage_config(exp, "benchmark_table")}, results=results,
                           csv=str(files / "results" / "benchmarks.csv"), tex=str(files / "results" / "benchmarks.tex"))
    table = pd.read_csv(files / "results" / "benchmarks.csv")
    assert list(table["model"]) == ["base", "F"]
    assert table.loc[0, "stereoset_ss"] == pytest.approx(base["stereoset"]["ss"])
    assert table.loc[0, "stereoset_ss_low"] == pytest.approx(base["stereoset"]["ci"]["ss"][0])
    assert table.loc[1, "crows_pairs_score_high"] == pytest.approx(rewritten["crows_pairs"]["ci"]["score"][1])
    assert rewritten["seat"]["n_tests"] == 1 and "seat" not in base          # the input list adds SEAT
    assert table.loc[1, "seat_sent-weat6_effect_size"] == pytest.approx(rewritten["seat"]["tests"]["sent-weat6"]["effect_size"])
    assert pd.isna(table.loc[0, "seat_mean_abs_effect_size"])
    tex = (files / "results" / "benchmarks.tex").read_text()
    assert tex.startswith(r"\begin{tabular}") and "CrowS-Pairs" in tex and "SEAT" in tex and tex.count(r"\\") == 3

    section = "\n".join(benchmark_report_section(results, _Links(str(files / "results" / "exp" / "report.md"))))
    assert "## Bias benchmarks" in section and "[base](benchmarks/base.json)" in section
    assert f"{base['stereoset']['ss']:.3g} [" in section


def test_a_bad_file_fails_before_any_model_is_loaded(files):
    exp = experiment("no-such-org/no-such-model", files)  # loading it would fail differently (offline)
    (files / "cp.csv").write_text("sent_more,sent_less\na,b\n", encoding="utf-8")  # broken after start-up
    with pytest.raises(BenchmarkFormatError, match=r"cp\.csv: not the released CrowS-Pairs format"):
        stages.benchmark_model(wfc.stage_config(exp, "benchmark_model"), model_name="base", model_dir=None,
                               output=str(files / "out.json"))
    assert not (files / "out.json").exists()


def test_a_bad_file_is_a_config_error_at_start_up(files, tiny_masked_lm_dir):
    (files / "st.json").write_text(json.dumps({"data": {"intrasentence": [{"bias_type": "gender"}]}}))
    write_crows_pairs(files / "cp.csv", rows=[("a b", "c d", "stereo", "race-color")])
    with pytest.raises(ValueError) as info:
        experiment(tiny_masked_lm_dir, files)
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 2
    assert "`experiments.exp.benchmarks.stereoset.path`" in lines[0] and str(files / "st.json") in lines[0]
    assert "has no `context`" in lines[0]
    assert "`experiments.exp.benchmarks.crows_pairs.path`" in lines[1] and str(files / "cp.csv") in lines[1]
    assert "no CrowS-Pairs item of bias type(s) ['gender']" in lines[1]


def test_benchmarks_config_errors(tmp_path, tiny_masked_lm_dir):
    with pytest.raises(ValueError, match=r"`experiments.exp.benchmarks.crows_pairs.path`: file not found"):
        experiment(tiny_masked_lm_dir, tmp_path)
    write_stereoset(tmp_path / "st.json")
    with pytest.raises(ValueError, match="names no benchmark"):
        experiment(tiny_masked_lm_dir, tmp_path, stereoset=None, crows_pairs=None)
    exp = experiment(tiny_masked_lm_dir, tmp_path, crows_pairs=None)
    assert exp["benchmarks"]["bias_types"] == ["gender"] and exp["benchmarks"]["bootstrap"] == 50
    assert wfc.benchmark_paths(exp) == {"stereoset": str(tmp_path / "st.json")}


def test_hugging_face_dataset_folder_with_class_labels(tmp_path):
    import datasets

    from gradiend.evaluation.bias import read_crows_pairs, read_stereoset

    gold = datasets.ClassLabel(names=["anti-stereotype", "stereotype", "unrelated"])
    features = datasets.Features({
        "id": datasets.Value("string"), "target": datasets.Value("string"), "bias_type": datasets.Value("string"),
        "context": datasets.Value("string"),
        "sentences": {"sentence": datasets.List(datasets.Value("string")), "gold_label": datasets.List(gold)}})
    rows = {"id": ["x"], "target": ["t"], "bias_type": ["gender"], "context": ["BLANK ran."],
            "sentences": [{"sentence": ["He ran.", "She ran.", "Cat ran."], "gold_label": [0, 1, 2]}]}
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(
        str(tmp_path / "stereoset"))
    item = read_stereoset({"hf_dataset": str(tmp_path / "stereoset"), "hf_config": "intrasentence",
                           "split": "validation"})[0]
    assert (item.stereotype, item.anti_stereotype, item.unrelated) == ("She ran.", "He ran.", "Cat ran.")

    crows_features = datasets.Features({
        "sent_more": datasets.Value("string"), "sent_less": datasets.Value("string"),
        "stereo_antistereo": datasets.ClassLabel(names=["stereo", "antistereo"]),
        "bias_type": datasets.ClassLabel(names=["race-color", "gender"])})
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(
        {"sent_more": ["a b", "c d"], "sent_less": ["e f", "g h"], "stereo_antistereo": [1, 0], "bias_type": [1, 0]},
        features=crows_features)}).save_to_disk(str(tmp_path / "crows"))
    pairs = read_crows_pairs({"hf_dataset": str(tmp_path / "crows"), "split": "test"}, ["gender"])
    assert len(pairs) == 1 and pairs[0].direction == "antistereo" and pairs[0].stereotypical == "e f"
