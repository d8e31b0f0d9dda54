"""One real Snakemake run of a reduced default config, end to end, then what reruns.

The reduced config keeps the shape of config/config.yaml (demo corpus, a pre-trained tiny BERT,
pre-pruning, several seeds, a grid with both feature factors, strengthen and weaken rewrites) at a
size that runs in a few minutes on 2 cores: a short pre-training, a few training steps, 2 seeds, a
2 x 2 grid. Checks are on content: the summary's keys, the rewritten model loading as a masked LM,
the report naming the chosen seed; then a second run has nothing to do, and changing one grid
learning rate reruns the grid job, which scores only the cells of that rate, and what depends on them, and a run killed during
training resumes without redoing the jobs that had finished.
"""
import json
import os
import re
import shutil
import signal
import time
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.workflow_support import planned_jobs

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "gender_tiny_bert"


def reduced_config(results: Path, learning_rates) -> dict:
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    experiment = default["experiments"][EXPERIMENT]
    experiment["data"].update(max_size_per_class=80)
    experiment["data"]["neutral"]["max_size"] = 40
    experiment["training"].update(train_batch_size=8, max_steps=8, eval_steps=4)
    experiment["seeds"] = [0, 1]
    experiment["pre_prune"] = {"n_samples": 8, "topk": 0.5, "source": "diff"}
    experiment["decoder"].update(learning_rates=list(learning_rates), max_size_training_like=20,
                                 max_size_neutral=20)
    return {
        "results_dir": str(results),
        "demo": {"corpus": {"n_sentences": 1500, "seed": 0},
                 "models": {"tiny-bert": {"kind": "masked", "seed": 0, "steps": 40}}},
        "resources": default["resources"],
        "experiments": {EXPERIMENT: experiment},
    }


def snakemake(config_file: Path, *args: str, timeout: int = 600) -> str:
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config_file), *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    config_file = root / "config.yaml"
    config_file.write_text(yaml.safe_dump(reduced_config(root / "results", [1.0, 0.1])))
    output = snakemake(config_file)
    return root, config_file, output


def test_outputs_have_content(workflow):
    root, _, _ = workflow
    exp = root / "results" / EXPERIMENT
    summary = json.loads((exp / "decoder" / "summary.json").read_text())
    assert {"F", "F_weaken", "M", "M_weaken", "base", "policy"} <= set(summary)
    assert summary["F"]["strengthen"] and not summary["F_weaken"]["strengthen"]
    # the chosen cell, by the documented rule applied here to the cell files: best P(F) on M rows among the
    # cells keeping lms >= ratio * base lms (smallest |lr| first on ties), else the smallest |lr|
    cells = {p.stem: json.loads(p.read_text()) for p in (exp / "decoder" / "cells").glob("*.json")}
    base = cells.pop("base")
    assert summary["policy"]["name"] == "lms_threshold" and len(cells) == 4
    candidates = sorted((c for c in cells.values() if c["feature_factor"] == summary["F"]["feature_factor"]),
                        key=lambda c: abs(c["learning_rate"]))
    passing = [c for c in candidates if c["lms"] >= summary["policy"]["ratio"] * base["lms"]]
    expected = max(passing, key=lambda c: c["probs_by_dataset"]["M"]["F"]) if passing else candidates[0]
    assert (summary["F"]["learning_rate"], summary["F"]["fallback"]) == (expected["learning_rate"], not passing)
    choice = json.loads((exp / "best" / "seed.json").read_text())
    scores = choice["scores"]
    pool = [s for s in (0, 1) if scores[str(s)]["converged"]] or [0, 1]
    assert choice["seed"] == max(pool, key=lambda s: abs(scores[str(s)]["validation_correlation"]))
    report = (exp / "report.md").read_text()
    assert f"Chosen seed: **{choice['seed']}**" in report
    table = pd.read_csv(root / "results" / "summary.csv")
    assert list(table["experiment"]) == [EXPERIMENT] and table.loc[0, "chosen_seed"] == choice["seed"]
    assert json.loads((exp / "provenance.json").read_text())["inputs"]["texts"]["file"] == "corpus.txt"
    assert (exp / "prune" / "mask.safetensors").is_file()


def test_rewritten_folder_is_a_masked_lm(workflow):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    root, _, _ = workflow
    for target in ("F", "F_weaken"):
        folder = root / "results" / EXPERIMENT / "rewritten" / target
        model = AutoModelForMaskedLM.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        inputs = tokenizer(f"Anna said that {tokenizer.mask_token} was tired.", return_tensors="pt")
        assert model(**inputs).logits.shape[-1] == len(tokenizer)
        assert "GRADIEND" in (folder / "README.md").read_text()


def test_rerun_does_nothing_then_one_learning_rate_recomputes_only_its_cells(workflow):
    root, config_file, _ = workflow
    assert planned_jobs(snakemake(config_file, "-n", "--quiet", "rules")) == {}
    changed = root / "changed.yaml"
    changed.write_text(yaml.safe_dump(reduced_config(root / "results", [1.0, 0.5])))
    jobs = planned_jobs(snakemake(changed, "-n", "--quiet", "rules"))
    # the experiment's grid job, and what reads the grid or the whole config
    assert jobs == {"decoder_grid": 1, "select_cell": 1, "rewrite_models": 1, "report": 1, "provenance": 1,
                    "summary": 1, "all": 1}
    cells = root / "results" / EXPERIMENT / "decoder" / "cells"
    kept = {name: (cells / f"{name}.json").read_bytes() for name in ("base", "lr~1_ff~1", "lr~1_ff~-1")}
    snakemake(changed)
    # the grid job scores only the two new cells; the others are copied from its cache, byte for byte
    log = (root / "results" / EXPERIMENT / "logs" / "decoder_grid.log").read_text()
    assert sorted(re.findall(r"cell (\S+): lms", log)) == ["lr~0.5_ff~-1", "lr~0.5_ff~1"]
    assert sorted(re.findall(r"cell (\S+): unchanged inputs", log)) == sorted(kept)
    assert {name: (cells / f"{name}.json").read_bytes() for name in kept} == kept


@pytest.mark.slow
def test_full_default_learns_she_vs_he_and_rewrites_move_p_she(tmp_path):
    """The embedded default as shipped (minutes on 2 cores): every experiment converges, and the
    chosen rewrites raise P(she) on "he" rows (F) and lower it on "she" rows (F_weaken)."""
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--config", f"results_dir={tmp_path}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for name in default["experiments"]:
        exp = tmp_path / name
        choice = json.loads((exp / "best" / "seed.json").read_text())
        assert choice["converged"], choice["reason"]
        assert abs(choice["scores"][str(choice["seed"])]["test_correlation"]) > 0.9
        summary = json.loads((exp / "decoder" / "summary.json").read_text())
        for key in ("F", "F_weaken"):
            entry = summary[key]
            assert not entry["fallback"] and entry["lms"] >= 0.99 * entry["base_lms"], (name, key, entry)
            assert entry["value"] > entry["base_value"] + 0.2, (name, key, entry)


def test_a_run_killed_during_training_resumes_without_redoing_finished_jobs(workflow):
    """SIGKILL while a seed trains; the rerun redoes that seed and what follows it, nothing before."""
    root, config_file, _ = workflow
    exp = root / "results" / EXPERIMENT
    # the state of a first run that reached seed 1's training: everything downstream of it is missing
    for done_later in ("seeds/1", "best", "decoder", "rewritten", "report.md", "logs/train_seed_1.log"):
        path = exp / done_later
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config_file)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (exp / "logs" / "train_seed_1.log").exists():
            assert process.poll() is None and time.monotonic() < deadline, "training never started"
            time.sleep(0.05)
        time.sleep(1.0)  # inside the training job
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (exp / "seeds" / "1" / "model" / "config.json").exists()
    snakemake(config_file, "--unlock")
    jobs = planned_jobs(snakemake(config_file, "-n", "--quiet", "rules"))
    assert jobs["train_seed"] == 1 and jobs["evaluate_encoders"] == 1
    assert not {"demo_corpus", "demo_model", "create_training_data", "create_neutral_data", "pre_prune"} & set(jobs)
    snakemake(config_file)
    assert (exp / "seeds" / "1" / "model" / "model.safetensors").is_file()
    assert planned_jobs(snakemake(config_file, "-n", "--quiet", "rules")) == {}
