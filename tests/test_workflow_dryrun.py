"""The Snakemake workflow: dry runs (job counts per rule), lint, profiles, config errors.

Snakemake runs as a subprocess at the repository root with ``results_dir`` pointed at a temporary
folder, so nothing is written into the repository's results/.
"""
import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflow_support import planned_jobs

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "config" / "experiments"


def snakemake(*args, results_dir, config=()):
    command = [sys.executable, "-m", "snakemake", *args, "--config", f"results_dir={results_dir}", *config]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def dry_run(tmp_path, *args, quiet=True, config=()):
    quietness = ("--quiet", "rules") if quiet else ()
    code, output = snakemake("-n", *quietness, *args, results_dir=tmp_path / "results", config=config)
    assert code == 0, output
    return planned_jobs(output), output


def per_experiment(seeds, learning_rates, rewrites, pre_prune=False, fan_out=False):
    """Job counts of one experiment. On one machine the encoder evaluations, the decoder grid and the
    rewrites are one job each; with ``fan_out`` (a cluster) one job per seed, per learning rate (writing
    one cell file per feature factor) plus the base cell, and per rewrite target."""
    scoring = ({"evaluate_encoder": seeds, "decoder_cell": learning_rates, "decoder_base": 1, "rewrite_model": rewrites}
               if fan_out else {"evaluate_encoders": 1, "decoder_grid": 1, "rewrite_models": 1})
    counts = {"create_training_data": 1, "create_neutral_data": 1, "train_seed": seeds, "select_seed": 1,
              "select_cell": 1, **scoring, "report": 1, "provenance": 1}
    if pre_prune:
        counts["pre_prune"] = 1
    return counts


def test_default_config_dry_run(tmp_path):
    counts, output = dry_run(tmp_path)
    # two experiments: 3 seeds each (one training job per seed, one job evaluating all three), one
    # decoder grid job (8 learning rates x 2 feature factors + base), one job for the 2 rewrites; the GPT-2 experiment pre-prunes; both demo models and the corpus are built once.
    bert, gpt2 = per_experiment(3, 8, 2), per_experiment(3, 8, 2, pre_prune=True)
    expected = {rule: bert.get(rule, 0) + gpt2.get(rule, 0) for rule in {*bert, *gpt2}}
    expected.update(demo_corpus=1, demo_model=2, summary=1, all=1)
    assert counts == expected
    assert "workflow specific profile profiles/default" in output


@pytest.mark.parametrize("name, seeds, rewrites, pre_prune, benchmarks", [
    ("bert_gender_en", 3, 4, False, True),
    ("gpt2_gender_en", 3, 2, False, True),
    ("german_articles", 5, 2, True, False),
    ("llama_1b_gender", 3, 2, True, True),
])
def test_paper_config_dry_run(tmp_path, name, seeds, rewrites, pre_prune, benchmarks):
    counts, _ = dry_run(tmp_path, "--configfile", str(EXPERIMENTS / f"{name}.yaml"))
    expected = per_experiment(seeds, 16, rewrites, pre_prune)
    expected.update(summary=1, all=1)
    if benchmarks:  # the base model and every rewritten one, then the table
        expected.update(benchmark_model=1 + rewrites, benchmark_table=1)
    assert counts == expected          # no demo jobs, and the default experiments are not merged in


def test_every_experiment_config_is_dry_run_tested():
    tested = {"bert_gender_en", "gpt2_gender_en", "german_articles", "llama_1b_gender"}
    assert {p.stem for p in EXPERIMENTS.glob("*.yaml")} == tested


def test_every_config_writes_its_own_results_folder():
    """A paper run never replaces another run's ``summary.*``, which live directly under ``results_dir``."""
    folders = {p.stem: yaml.safe_load(p.read_text())["results_dir"]
               for p in [REPO / "config" / "config.yaml", *sorted(EXPERIMENTS.glob("*.yaml"))]}
    assert folders["config"] == "results"
    assert sorted(folders.values()) == sorted({"results", *(f"results/papers/{name}" for name in folders if name != "config")})


def test_lint_is_clean(tmp_path):
    code, output = snakemake("--lint", results_dir=tmp_path / "results")
    assert code == 0 and "Congratulations, your workflow is in a good condition!" in output, output


def test_slurm_profile_dry_run(tmp_path):
    """A cluster (the profile's --jobs) fans the decoder grid out: one job per learning rate plus base."""
    counts, output = dry_run(tmp_path, "--workflow-profile", "workflow/profiles/slurm", quiet=False)
    assert counts["decoder_cell"] == 16 and counts["decoder_base"] == 2 and counts["rewrite_model"] == 4
    assert counts["evaluate_encoder"] == 6 and not {"evaluate_encoders", "decoder_grid", "rewrite_models"} & set(counts)
    assert "workflow specific profile workflow/profiles/slurm" in output
    assert "slurm_partition=gpu" in output and "slurm_partition=cpu" in output


@pytest.mark.parametrize("jobs, setting, fan_out", [
    ((), "fan_out", True),                       # asked for on one machine
    (("--jobs", "4"), "per_experiment", False),  # asked for on a cluster
    (("--jobs", "4"), "auto", True),             # a job limit is what every cluster executor needs
    (("--mode", "remote"), "auto", True),        # a job on the cluster parses the workflow again: same rules
])
def test_job_layout_setting_decides_the_scoring_jobs(tmp_path, jobs, setting, fan_out):
    counts, _ = dry_run(tmp_path, *jobs, config=(f"job_layout={setting}",))
    one_machine = {"evaluate_encoders": 2, "decoder_grid": 2, "rewrite_models": 2}
    cluster = {"evaluate_encoder": 6, "decoder_cell": 16, "decoder_base": 2, "rewrite_model": 4}
    expected = cluster if fan_out else one_machine
    assert {rule: counts.get(rule) for rule in {*one_machine, *cluster}} == \
        {rule: expected.get(rule) for rule in {*one_machine, *cluster}}
    assert counts["train_seed"] == 6


def test_invalid_config_stops_snakemake_with_the_key(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["experiments"]["gender_tiny_bert"]["seeds"] = [0, 0]
    config["experiments"]["gender_tiny_bert"]["training"]["learning_rate"] = "1e-3"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    code, output = snakemake("-n", "--configfile", str(bad), results_dir=tmp_path / "results")
    assert code != 0
    assert "experiments.gender_tiny_bert.seeds` has duplicate entries" in output
    assert "experiments.gender_tiny_bert.training.learning_rate` must be a number" in output


def test_unsafe_experiment_name_stops_snakemake(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["experiments"] = {"../x": config["experiments"]["gender_tiny_bert"]}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    code, output = snakemake("-n", "--configfile", str(bad), results_dir=tmp_path / "results")
    assert code != 0 and "the name '../x' is not allowed" in output


def test_local_text_file_source_is_a_rule_input(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("She reads a book.\n")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    experiment = config["experiments"]["gender_tiny_bert"]
    experiment["data"]["source"] = {"path": str(texts)}
    config["experiments"] = {"from_file": experiment}
    good = tmp_path / "file.yaml"
    good.write_text(yaml.safe_dump(config))
    counts, output = dry_run(tmp_path, "--configfile", str(good), quiet=False)
    assert counts["demo_model"] == 1 and counts["demo_corpus"] == 1   # the model still needs it
    training_job = output.split("rule create_training_data:")[1].split("output:")[0]
    assert str(texts) in training_job and "corpus.txt" not in training_job


@pytest.mark.parametrize("script", sorted((REPO / "workflow" / "scripts").glob("*.py")), ids=lambda p: p.stem)
def test_script_calls_its_stage_with_every_keyword(script):
    from gradiend import stages

    calls = [node for node in ast.walk(ast.parse(script.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and getattr(node.func.value, "id", None) == "stages" and node.func.attr != "rule_context"]
    assert [call.func.attr for call in calls] == [script.stem]
    parameters = inspect.signature(getattr(stages, script.stem)).parameters
    assert len(calls[0].args) == 1                       # the config cut, positionally
    assert {k.arg for k in calls[0].keywords} == set(parameters) - {"config"}
