"""Config validation, paths, wildcard constraints and input/param/resource helpers for every rule."""
import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from gradiend import __version__ as GRADIEND_VERSION
from gradiend import workflow_config as wfc
from gradiend import cells
from gradiend.schema_validation import ConfigError

# On a cluster the encoder evaluations, the decoder grid and the rewrites fan out; on one machine each
# is one job per experiment (one start-up of Python, torch and transformers instead of many). A
# remote executor (SLURM) needs --jobs, which on one machine Snakemake turns into --cores; a job it
# submits parses this file again in remote mode, and must see the same rules.
ON_CLUSTER = bool(workflow.resource_settings.nodes or workflow.remote_exec)
try:
    # The config files themselves were checked by the Snakefile, before Snakemake read the default.
    # Memory is planned at start-up: against this machine when the jobs run here, against `max_memory`
    # alone when a cluster runs them; a job a cluster runs parses this file again and plans again
    # itself, on its node, before it loads weights.
    CFG = wfc.load_and_validate(config, SCHEMA_FILE, memory_plans=not workflow.remote_exec,
                                measure_memory=not ON_CLUSTER)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

RESULTS = CFG["results_dir"]
JOB_LAYOUT = CFG["job_layout"]
if JOB_LAYOUT == "auto":
    JOB_LAYOUT = "fan_out" if ON_CLUSTER else "per_experiment"
# Jobs that run on this machine need the devices and dtypes the config names here (checked before any
# job starts); on a cluster each job checks its own node before it loads weights (gradiend.util.devices).
if not ON_CLUSTER:
    _device_problems = wfc.device_problems(CFG)
    if _device_problems:
        raise WorkflowError(str(ConfigError(_device_problems)))
EXPERIMENTS = CFG["experiments"]
DEMO_DIR = os.path.join(RESULTS, "_demo")
CONDA_ENV = "../envs/gradiend.yaml"

# Defence in depth: the names become folder names, so nothing that could leave results_dir.
for _name in EXPERIMENTS:
    if not wfc.SAFE_NAME.match(_name):
        raise WorkflowError(f"config key `experiments`: {_name!r} is not a safe folder name")


wildcard_constraints:
    experiment="|".join(re.escape(name) for name in EXPERIMENTS),
    seed=r"\d+",
    cell=cells.NAME_PATTERN,
    target=wfc.SAFE_NAME.pattern.strip("^$"),
    demo_model=wfc.SAFE_NAME.pattern.strip("^$"),


# --- paths -----------------------------------------------------------------------------------------


def exp_path(*parts):
    """A path pattern under results/{experiment}/."""
    return os.path.join(RESULTS, "{experiment}", *parts)


def exp_file(wildcards, *parts):
    """A concrete path under results/<experiment>/ (for input functions)."""
    return os.path.join(RESULTS, wildcards.experiment, *parts)


def experiment_of(wildcards):
    return EXPERIMENTS[wildcards.experiment]


def all_targets():
    files = [os.path.join(RESULTS, "summary.csv"), os.path.join(RESULTS, "summary.tex")]
    for name in EXPERIMENTS:
        files.append(os.path.join(RESULTS, name, "report.md"))
        files.append(os.path.join(RESULTS, name, "provenance.json"))
    return files


# --- params and resources --------------------------------------------------------------------------


def stage_params(stage):
    """Rule param: the keys of the experiment that `stage` reads (a change reruns the stage)."""

    def cut(wildcards):
        return wfc.stage_config(experiment_of(wildcards), stage)

    return cut


def resource(stage, key):
    """Rule threads/resources from the config (`resources`, then the experiment's `resources`)."""

    def get(wildcards):
        experiment = getattr(wildcards, "experiment", None)
        return wfc.stage_resources(CFG, stage, experiment)[key]

    return get


# --- inputs ----------------------------------------------------------------------------------------


def base_model_input(wildcards):
    """The demo model folder when the experiment uses one (Hub ids and local folders: none)."""
    exp = experiment_of(wildcards)
    return {"base_model": exp["base_model_path"]} if exp["demo_model"] else {}


def raw_texts_input(wildcards):
    """The local raw-text file (demo corpus or data.source.path), if the source is a file."""
    path = wfc.raw_texts_path(CFG, experiment_of(wildcards))
    return {"texts": path} if path else {}


def train_seed_input(wildcards):
    files = {"training": exp_file(wildcards, "data", "training.parquet")}
    if experiment_of(wildcards)["pre_prune"] is not None:
        files["mask"] = exp_file(wildcards, "prune", "mask.safetensors")
    files.update(base_model_input(wildcards))
    return files


def per_seed(*parts):
    """Input function: one path per configured seed, in the order of `seeds`."""

    def files(wildcards):
        seeds = experiment_of(wildcards)["seeds"]
        return [exp_file(wildcards, "seeds", str(seed), *parts) for seed in seeds]

    return files


def decoder_learning_rate(wildcards):
    """The learning rate of a decoder job; its `lr` wildcard is the rate as written in cell names."""
    for lr in experiment_of(wildcards)["decoder"]["learning_rates"]:
        if cells.number_label(lr) == wildcards.lr:
            return float(lr)
    raise WorkflowError(
        f"decoder learning rate {wildcards.lr!r} is not in `decoder.learning_rates` of experiment "
        f"{wildcards.experiment!r}"
    )


def decoder_data_input(wildcards):
    """What every decoder cell reads: the tables (test split, neutral texts) and the demo model."""
    files = {
        "training": exp_file(wildcards, "data", "training.parquet"),
        "neutral": exp_file(wildcards, "data", "neutral.parquet"),
    }
    files.update(base_model_input(wildcards))
    return files


def decoder_lr_input(wildcards):
    return {**decoder_data_input(wildcards), "model": exp_file(wildcards, "best", "model")}


def decoder_search_input(wildcards):
    """The adaptive search's results, for an experiment with `decoder.search: adaptive` (else nothing)."""
    if experiment_of(wildcards)["decoder"]["search"] != "adaptive":
        return {}
    return {"search": exp_file(wildcards, "decoder", "search.json")}


def experiments_by(key):
    """`key(experiment)` -> the experiments with that key. A rule's outputs are fixed patterns, so a
    rule whose outputs depend on a list from the config (seeds, cells, targets) is written once per
    distinct list, for the experiments that share it."""
    groups = {}
    for name, experiment in EXPERIMENTS.items():
        groups.setdefault(key(experiment), []).append(name)
    return groups


def decoder_factors(experiment):
    return tuple(sorted(float(f) for f in experiment["decoder"]["feature_factors"]))


def grid_cell_names(experiment):
    return tuple(wfc.decoder_cells(experiment))


def decoder_cell_pattern(feature_factor):
    """Output pattern of one feature factor's cell, with the `lr` wildcard."""
    return exp_path("decoder", "cells", f"{cells.cell_name_with_wildcard(feature_factor)}.json")


def grid_cells(wildcards):
    """Every decoder cell file except `base`, in grid order."""
    names = [n for n in wfc.decoder_cells(experiment_of(wildcards)) if n != "base"]
    return [exp_file(wildcards, "decoder", "cells", f"{name}.json") for name in names]


def rewritten_dirs(wildcards):
    return [exp_file(wildcards, "rewritten", t) for t in experiment_of(wildcards)["rewrite"]]


def prune_summary_input(wildcards):
    if experiment_of(wildcards)["pre_prune"] is None:
        return {}
    return {"prune_summary": exp_file(wildcards, "prune", "summary.json")}


def provenance_input(wildcards):
    """The files provenance.json hashes: raw texts (if a local file), both data tables, the demo model."""
    files = {
        "training": exp_file(wildcards, "data", "training.parquet"),
        "neutral": exp_file(wildcards, "data", "neutral.parquet"),
    }
    files.update(raw_texts_input(wildcards))
    files.update(base_model_input(wildcards))
    return files


def per_experiment(*parts):
    """Input for the cross-experiment summary: one path per experiment, in config order."""
    return [os.path.join(RESULTS, name, *parts) for name in EXPERIMENTS]
