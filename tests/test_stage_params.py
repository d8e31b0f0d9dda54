"""Rule parameters at the granularity of what each stage reads.

Every rule has ``params: config=stage_params(<stage>)`` (``workflow_config.stage_config``), and
Snakemake reruns a job whose params changed (``--rerun-triggers params``, on by default). Each key of
the default experiment is changed in turn; the jobs whose params change must be exactly the stages
that read the key (``report`` and ``provenance`` record the whole experiment and take every change).
The last test asks Snakemake itself: the default workflow is marked finished (``--touch``), then a dry
run with a changed key lists the jobs it would rerun.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from gradiend import workflow_config as wfc
from tests.workflow_support import planned_jobs

REPO = Path(__file__).resolve().parents[1]
MODEL = {"base_model", "base_model_path", "trust_remote_code"}  # who loads the base model
LOADERS = {"pre_prune", "train_seed", "evaluate_encoders", "decoder_grid", "decoder_search", "rewrite_models",
           "benchmark_model", "capability_model", "comparison_cross_encoding"}
CELL = {"decoder_grid", "decoder_search"}  # what a decoder cell depends on: the grid's cells and the search's trials
TRAINING_ONLY = {"train_seed"}
BOTH_DATA = {"create_training_data", "create_neutral_data"}

# key -> the stages (besides report and provenance) whose jobs rerun when it changes
EXPECTED: dict[str, set[str]] = {
    "base_model": LOADERS - {"benchmark_model", "comparison_cross_encoding"} | {
        "benchmark_model", "comparison_cross_encoding", "benchmark_table", "comparison_topk", "summary"},
    "base_model_path": LOADERS,
    "trust_remote_code": LOADERS,
    "data.source": BOTH_DATA,
    "data.max_texts": BOTH_DATA,
    "data.seed": BOTH_DATA,
    "data.preprocess": BOTH_DATA,
    "data.spacy_model": BOTH_DATA,
    "data.feature_targets": BOTH_DATA | {"summary"},  # the summary table names each class's tokens
    "data.max_size_per_class": {"create_training_data"},
    "data.min_left_context_words": {"create_training_data"},
    "data.balance": {"create_training_data"},
    "data.split_ratios.train": {"create_training_data"},
    "data.split_ratios.validation": {"create_training_data"},
    "data.split_ratios.test": {"create_training_data"},
    "data.max_counterfactuals_per_sentence": {"create_training_data"},
    "data.target_classes": {"create_training_data", "pre_prune", "train_seed", "evaluate_encoders", *CELL,
                            "select_cell", "rewrite_models", "comparison_cross_encoding", "summary"},
    "data.neutral.max_size": {"create_neutral_data"},
    "data.neutral.excluded_spacy_tags": {"create_neutral_data"},
    "data.neutral.additional_excluded_words": {"create_neutral_data", "evaluate_encoders", *CELL},
    # training: a seed's job reads what shapes its run; seed selection and evaluation read their own keys
    **{f"training.{key}": TRAINING_ONLY for key in (
        "train_batch_size", "max_steps", "eval_steps", "learning_rate", "num_train_epochs", "weight_decay",
        "adam_epsilon", "optim", "target", "latent_dim", "activation_encoder", "activation_decoder",
        "bias_decoder", "normalize_gradiend", "add_identity_for_other_classes")},
    "training.source": {"train_seed", *CELL},
    "training.params": {"pre_prune", "train_seed"},
    "training.train_max_size": {"pre_prune", "train_seed"},
    "training.eval_batch_size": {"train_seed", "evaluate_encoders", *CELL},
    "training.encoder_eval_max_size": {"train_seed", "evaluate_encoders"},
    "training.torch_dtype": LOADERS,
    "training.device_map": LOADERS,
    "training.gradiend_device": LOADERS - {"pre_prune", "benchmark_model", "capability_model"},  # the stages that load a GRADIEND
    "training.max_length": LOADERS - {"benchmark_model", "capability_model"},
    "training.convergent_score_threshold": {"train_seed", "select_seed"},
    "training.convergent_mean_by_class_threshold": {"train_seed", "select_seed"},
    "training.seed_selection_eval_max_size": {"evaluate_encoders"},
    "training.min_convergent_seeds": {"select_seed"},
    "training.fail_on_non_convergence": {"select_seed"},
    "seeds": {"select_seed", "summary"},  # a seed is a job wildcard; pre_prune reads the resolved pre_prune.seed
    "pre_prune": {"pre_prune"},
    "post_prune": {"train_seed"},
    "decoder.learning_rates": set(),  # a learning rate is a job wildcard
    "decoder.feature_factors": set(),  # the cell files of a learning-rate job
    "decoder.max_size_training_like": CELL,
    "decoder.max_size_neutral": CELL,
    "decoder.lms_max_samples": CELL,
    "decoder.search": CELL | {"select_cell"},  # adaptive cells also score the validation rows
    # the bound steers the search and the choice, but no cell: a new bound or budget rescores nothing
    "decoder.selection.policy": {"select_cell", "decoder_search"},
    "decoder.selection.ratio": {"select_cell", "decoder_search"},
    "decoder.selection.max_kl": {"select_cell", "decoder_search"},
    "decoder.adaptive.trials": {"decoder_search"},
    "decoder.adaptive.feature_factor_scales": {"decoder_search"},
    "rewrite": set(),  # a target is a job wildcard
    "benchmarks": {"benchmark_model"},
    "capability": {"capability_model"},
    "demo_model": {"rewrite_models"},  # the card says the pipeline built the base model; the demo_model rule has its own params
}
EVERYTHING = {stage for stage, keys in wfc.STAGE_KEYS.items() if keys == ("*",)}


@pytest.fixture(scope="module")
def experiment():
    config = wfc.load_config_file(REPO / "config" / "config.yaml")
    return next(iter(config["experiments"].values()))


def leaves(tree: dict, prefix: str = "") -> list[str]:
    """Dotted keys down to the level the table above names (sections with named sub-keys are opened)."""
    found = []
    for key, value in tree.items():
        dotted = prefix + key
        if isinstance(value, dict) and value and dotted not in ("data.source", "resources") and dotted.count(".") < 2:
            found += leaves(value, dotted + ".")
        elif dotted not in ("name", "resources"):
            found.append(dotted)
    return found


def changed(experiment: dict, dotted: str) -> dict:
    experiment = copy.deepcopy(experiment)
    *parents, leaf = dotted.split(".")
    node = experiment
    for part in parents:
        node = node[part]
    node[leaf] = ["<changed>", node[leaf]]
    return experiment


def rerun_by(experiment: dict, dotted: str) -> set[str]:
    after = changed(experiment, dotted)
    return {stage for stage in wfc.STAGE_KEYS
            if wfc.stage_config(experiment, stage) != wfc.stage_config(after, stage)}


def test_every_key_has_an_expectation(experiment):
    assert sorted(set(leaves(experiment)) - set(EXPECTED)) == []


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_changing_a_key_reruns_exactly_the_stages_that_read_it(experiment, key):
    assert rerun_by(experiment, key) == EXPECTED[key] | EVERYTHING


def test_every_rule_passes_its_stage_params():
    """The params the test compares are the ones the rules declare (one stage cut per rule)."""
    text = "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    declared = set(re.findall(r'config=stage_params\("([a-z_]+)"\)', text))
    assert declared <= set(wfc.STAGE_KEYS)
    for rule in ("create_training_data", "create_neutral_data", "pre_prune", "train_seed", "evaluate_encoders",
                 "select_seed", "decoder_grid", "select_cell", "rewrite_models", "report", "provenance"):
        assert rule in declared, rule


def test_adding_a_seed_keeps_the_pre_pruning_mask():
    """``pre_prune.seed: null`` means the first seed, resolved in the config: a further seed is one more
    training job and leaves the shared mask (and so every trained seed) as it is."""
    config = wfc.load_config_file(REPO / "config" / "config.yaml")
    pruned = next(e for e in config["experiments"].values() if e["pre_prune"] is not None)
    assert pruned["pre_prune"]["seed"] == pruned["seeds"][0]
    more = copy.deepcopy(pruned)
    more["seeds"] = [*pruned["seeds"], max(pruned["seeds"]) + 1]
    assert wfc.stage_config(pruned, "pre_prune") == wfc.stage_config(more, "pre_prune")
    assert wfc.stage_config(pruned, "train_seed") == wfc.stage_config(more, "train_seed")


# ---------------------------------------------------------------- the same, through Snakemake itself
def _snakemake(*args, cwd=REPO):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def finished_workflow(tmp_path_factory):
    """The default config's workflow marked as finished without running it: every output exists and
    Snakemake's metadata (including each job's params) is recorded by ``--touch --forceall``."""
    import yaml

    root = tmp_path_factory.mktemp("rerun")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["results_dir"] = str(root / "results")

    def write_config(name: str, change=None) -> Path:
        changed_config = copy.deepcopy(config)
        if change is not None:
            change(changed_config)
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(changed_config))
        return path

    plan = _snakemake("-n", "--configfile", str(write_config("base")))
    for line in plan.splitlines():
        if line.strip().startswith("output:"):
            for output in line.split(":", 1)[1].split(","):
                path = Path(output.strip())
                if path.suffix:  # directory() outputs are the ones without a suffix
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                else:
                    path.mkdir(parents=True, exist_ok=True)
    _snakemake("--touch", "--forceall", "--cores", "1", "--configfile", str(write_config("base")))
    return write_config


def _training(key, value):
    def change(config):
        for experiment in config["experiments"].values():
            experiment.setdefault("training", {})[key] = value
    return change


@pytest.mark.parametrize("name, change, reruns, keeps", [
    ("nothing", None, set(), {"train_seed", "select_seed"}),
    ("fail_on_non_convergence", _training("fail_on_non_convergence", True), {"select_seed"}, {"train_seed"}),
    ("seed_selection_eval_max_size", _training("seed_selection_eval_max_size", 7), {"evaluate_encoders"},
     {"train_seed"}),
    ("learning_rate", _training("learning_rate", 0.123), {"train_seed", "select_seed"}, {"create_training_data"}),
])
def test_snakemake_dry_run_reruns_what_reads_the_key(finished_workflow, name, change, reruns, keeps):
    rules = planned_jobs(_snakemake("-n", "--quiet", "rules", "--rerun-triggers", "params", "mtime",
                                     "--configfile", str(finished_workflow(name, change))))
    assert reruns <= set(rules) and not keeps & set(rules), rules
    if change is None:
        assert rules == {}  # the touched workflow is complete: the check above is not vacuous
