"""The workflow configuration: validation, resolution, and what each stage is allowed to see.

``load_and_validate`` is what ``workflow/rules/common.smk`` calls at start-up; it needs no Snakemake,
so the same checks run in unit tests and notebooks (the checks a schema cannot express are in
:mod:`gradiend.workflow_checks`). It returns a *resolved* copy of the config:
schema defaults filled in, each experiment given its ``name``, the model to load
(``base_model_path``), its ``target_classes`` and its decoder ``learning_rates`` and ``feature_factors``.

``stage_config`` cuts out of an experiment the keys one stage reads. The workflow passes that cut as
a rule parameter, so Snakemake reruns a stage exactly when a key it reads changes, and a stage
cannot silently depend on a key whose change would not rerun it.
"""
from __future__ import annotations

import operator
import os
from functools import reduce
from pathlib import Path
from typing import Any, Mapping

from gradiend.cells import SEARCH_ONLY_KEYS, class_feature_factor, default_learning_rates, grid_cells
from gradiend.config_files import check_config_files
from gradiend.schema_validation import ConfigError, load_yaml, validate_with_defaults
# the semantic checks live in gradiend.workflow_checks; SAFE_NAME stays importable here for the workflow
from gradiend.workflow_checks import DEMO_PREFIX, SAFE_NAME, config_problems, device_problems  # noqa: F401

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
BUILTIN_RESOURCES = {"gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1}

# Where a stage that loads the base model and a GRADIEND puts them (gradiend.util.devices).
PLACEMENT = ("training.device_map", "training.gradiend_device")

# What a decoder cell depends on: the keys of decoder_grid, and of decoder_search's trial cells.
_DECODER_CELL_KEYS = (
    "base_model", "base_model_path", "trust_remote_code", "data.target_classes",
    "data.neutral.additional_excluded_words", "training.source", "training.eval_batch_size",
    "training.torch_dtype", "training.max_length", *PLACEMENT, "decoder.max_size_training_like",
    "decoder.max_size_neutral", "decoder.lms_max_samples", "decoder.search",
)

# Dotted keys of an experiment that each stage reads ("*" = the whole experiment except its
# scheduling ``resources``). ``name`` is always included. Keep in step with the docstrings of gradiend.stages.
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "create_training_data": (
        "data.source", "data.max_texts", "data.seed", "data.preprocess", "data.spacy_model",
        "data.feature_targets", "data.target_classes", "data.max_size_per_class",
        "data.min_left_context_words", "data.balance", "data.split_ratios",
        "data.max_counterfactuals_per_sentence",
    ),
    "create_neutral_data": (
        "data.source", "data.max_texts", "data.seed", "data.preprocess", "data.spacy_model",
        "data.feature_targets", "data.neutral",
    ),
    "pre_prune": (  # `pre_prune.seed` is resolved (null = the first seed), so adding a seed keeps the mask
        "base_model", "base_model_path", "trust_remote_code", "data.target_classes", "pre_prune",
        "training.params", "training.torch_dtype", "training.max_length",
        "training.train_max_size", "training.device_map",
    ),
    "train_seed": (  # every `training` key but those only seed selection and evaluation read
        "base_model", "base_model_path", "trust_remote_code", "data.target_classes", "post_prune",
        *(f"training.{key}" for key in (
            "source", "target", "train_batch_size", "train_max_size", "learning_rate", "num_train_epochs",
            "max_steps", "weight_decay", "adam_epsilon", "optim", "max_length", "add_identity_for_other_classes",
            "eval_steps", "eval_batch_size", "encoder_eval_max_size", "params", "latent_dim",
            "activation_encoder", "activation_decoder", "bias_decoder", "normalize_gradiend", "torch_dtype",
            "device_map", "gradiend_device", "convergent_score_threshold", "convergent_mean_by_class_threshold")),
    ),
    "evaluate_encoders": (
        "base_model", "base_model_path", "trust_remote_code", "data.target_classes",
        "data.neutral.additional_excluded_words", "training.eval_batch_size",
        "training.encoder_eval_max_size", "training.seed_selection_eval_max_size",
        "training.torch_dtype", "training.max_length", *PLACEMENT,
    ),
    "select_seed": (
        "seeds", "training.min_convergent_seeds", "training.convergent_score_threshold",
        "training.convergent_mean_by_class_threshold", "training.fail_on_non_convergence",
    ),
    "decoder_grid": _DECODER_CELL_KEYS,
    # what a trial cell depends on (the grid's keys) plus the search's own
    "decoder_search": (*_DECODER_CELL_KEYS, *(f"decoder.{key}" for key in SEARCH_ONLY_KEYS)),
    "select_cell": ("data.target_classes", "decoder.selection", "decoder.search"),
    "rewrite_models": (
        "base_model", "base_model_path", "demo_model", "trust_remote_code", "data.target_classes", "training.torch_dtype",
        "training.max_length", *PLACEMENT,
    ),
    "report": ("*",),
    "provenance": ("*",),
    "summary": ("base_model", "data.target_classes", "data.feature_targets", "seeds"),
    "benchmark_model": ("base_model", "base_model_path", "trust_remote_code", "training.torch_dtype",
                        "training.device_map", "benchmarks"),
    "benchmark_table": ("base_model",),
    "capability_model": ("base_model", "base_model_path", "trust_remote_code", "training.torch_dtype",
                         "training.device_map", "capability"),
    "comparison_topk": ("base_model",),
    "comparison_cross_encoding": (
        "base_model", "base_model_path", "trust_remote_code", "data.target_classes", "training.torch_dtype",
        "training.max_length", *PLACEMENT,
    ),
}


def load_config_file(path: str | Path, schema_path: str | Path | None = None) -> dict:
    """Read a YAML config file and return it validated and resolved (see :func:`load_and_validate`);
    the file itself is checked first (:func:`gradiend.config_files.check_config_files`)."""
    check_config_files([path], load_yaml(schema_path or SCHEMA_PATH))
    return load_and_validate(load_yaml(path), schema_path)


def load_and_validate(config: Mapping[str, Any], schema_path: str | Path | None = None,
                      memory_plans: bool = True, measure_memory: bool = True) -> dict:
    """Validate ``config`` against the schema, check what a schema cannot, return it resolved.

    Raises :class:`~gradiend.schema_validation.ConfigError` (a ``ValueError``) listing every
    problem, one line each, naming the offending key. ``config`` itself is not modified.
    ``memory_plans``: plan each readable base model's memory (:func:`~gradiend.workflow_checks.memory_problems`),
    against this machine's memory when ``measure_memory`` (its jobs run here), else against `max_memory` alone.
    """
    schema = load_yaml(schema_path or SCHEMA_PATH)
    resolved = validate_with_defaults(dict(config), schema)
    problems = config_problems(resolved, memory_plans, measure_memory)
    if problems:
        raise ConfigError(problems)
    for name, experiment in resolved["experiments"].items():
        _resolve_experiment(name, experiment, resolved)
    return resolved


def comparison_experiments(cfg: Mapping) -> dict[str, list[str]]:
    """Comparison name -> its experiments, in config order."""
    return {name: list(c["experiments"]) for name, c in cfg["comparisons"].items()}


def evaluated_models(experiment: Mapping[str, Any], block: str) -> list[str]:
    """Models an experiment's optional evaluation ``block`` (``benchmarks``, ``capability``) scores:
    ``base`` and every rewrite target; none without the block."""
    if experiment.get(block) is None:
        return []
    return ["base", *experiment["rewrite"]]


def benchmark_paths(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """The local benchmark files of an experiment: ``stereoset`` and ``crows_pairs`` (a path each),
    ``seat`` (a list of paths), for the ones configured as local files."""
    benchmarks = experiment.get("benchmarks") or {}
    paths: dict[str, Any] = {name: os.path.expanduser(source["path"]) for name in ("stereoset", "crows_pairs")
                             if (source := benchmarks.get(name)) is not None and "path" in source}
    if benchmarks.get("seat") is not None:
        paths["seat"] = [os.path.expanduser(p) for p in benchmarks["seat"]["paths"]]
    return paths


def _resolve_experiment(name: str, exp: dict, cfg: dict) -> None:
    exp["name"] = name
    data = exp["data"]
    if data["target_classes"] is None:
        data["target_classes"] = sorted(t["id"] for t in data["feature_targets"])
    spec = exp["base_model"]
    if spec.startswith(DEMO_PREFIX):
        exp["demo_model"] = spec[len(DEMO_PREFIX):]
        exp["base_model_path"] = os.path.join(cfg["results_dir"], "_demo", "models", exp["demo_model"])
    else:
        exp["demo_model"] = None
        exp["base_model_path"] = os.path.expanduser(spec) if spec.startswith("~") else spec
    if exp["pre_prune"] is not None and exp["pre_prune"]["seed"] is None:
        exp["pre_prune"]["seed"] = int(exp["seeds"][0])
    decoder = exp["decoder"]
    if decoder["learning_rates"] is None:
        decoder["learning_rates"] = default_learning_rates()
    if decoder["feature_factors"] is None:
        source = exp["training"]["source"]
        decoder["feature_factors"] = [class_feature_factor(source, 0), class_feature_factor(source, 1)]


def _place(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _sorted_tree(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted_tree(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_tree(v) for v in value]
    return value


def stage_config(experiment: Mapping[str, Any], stage: str) -> dict:
    """The part of a resolved experiment that ``stage`` reads (same nesting, keys sorted)."""
    keys = STAGE_KEYS[stage]
    if keys == ("*",):
        return _sorted_tree({k: v for k, v in experiment.items() if k != "resources"})
    cut: dict = {"name": experiment["name"]}
    for dotted in keys:
        _place(cut, dotted, reduce(operator.getitem, dotted.split("."), experiment))
    return _sorted_tree(cut)


def stage_resources(cfg: Mapping, stage: str, experiment: str | None = None) -> dict:
    """gpu / mem_mb / runtime / threads of ``stage``: built-in < config ``resources`` (default, then
    stage) < the experiment's ``resources`` (default, then stage)."""
    merged = dict(BUILTIN_RESOURCES)
    layers = [cfg["resources"]]
    if experiment is not None:
        layers.append(cfg["experiments"][experiment]["resources"])
    for layer in layers:
        merged.update(layer.get("default", {}))
        merged.update(layer.get(stage, {}))
    return merged


def decoder_cells(experiment: Mapping[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    """Cell name -> (learning rate, feature factor); ``base`` (the unmodified model) comes first.
    Names come from :func:`gradiend.cells.cell_name` (a cell file's stem is its ``"id"``)."""
    decoder = experiment["decoder"]
    return grid_cells(decoder["learning_rates"], decoder["feature_factors"])


def raw_texts_path(cfg: Mapping, experiment: Mapping[str, Any]) -> str | None:
    """The local file an experiment's texts come from (demo corpus or ``data.source.path``), if any."""
    source = experiment["data"]["source"]
    if source == "demo":
        return os.path.join(cfg["results_dir"], "_demo", "corpus.txt")
    if isinstance(source, Mapping) and "path" in source:
        return os.path.expanduser(source["path"])
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m gradiend.workflow_config FILE...``: the checks ``snakemake -n --configfile FILE...``
    makes of the files (one file is validated in full). Snakemake refuses a ``--configfile`` that holds
    no mapping before it reads the workflow, with a message that names no file; this names it."""
    import sys

    paths = sys.argv[1:] if argv is None else argv
    try:
        check_config_files(paths, load_yaml(SCHEMA_PATH))
        if len(paths) == 1:
            load_config_file(paths[0])
    except (ConfigError, OSError) as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{', '.join(paths)}: no problem found")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
