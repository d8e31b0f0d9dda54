"""The workflow configuration: validation, resolution, and what each stage is allowed to see.

``load_and_validate`` is what ``workflow/rules/common.smk`` calls at start-up; it needs no Snakemake,
so the same checks run in unit tests and notebooks. It returns a *resolved* copy of the config:
schema defaults filled in, each experiment given its ``name``, the model to load
(``base_model_path``), its ``target_classes`` and its decoder ``feature_factors``.

``stage_config`` cuts out of an experiment the keys one stage reads. The workflow passes that cut as
a rule parameter, so Snakemake reruns a stage exactly when a key it reads changes, and a stage
cannot silently depend on a key whose change would not rerun it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

from gradiend.cells import WEAKEN_SUFFIX, cell_name, class_feature_factor, grid_cells, number_label  # noqa: F401
from gradiend.schema_validation import ConfigError, load_yaml, validate_with_defaults
from gradiend.util.io import written_as_path
from gradiend.util.tokenizer_files import missing_tokenizer_message

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
DEMO_PREFIX = "demo:"
BUILTIN_RESOURCES = {"gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1}
# Keys of decoder/summary.json (and the `base` cell) that sit beside the class ids: a class with one
# of these ids would overwrite them (or be overwritten).
RESERVED_CLASS_IDS = ("base", "policy", "skipped", "non_finite_cells")
# Encoder activations with act(-x) = -act(x), which `normalize_gradiend` needs to flip the encoding.
ODD_ACTIVATIONS = ("tanh", "smht", "id")

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
        "training.train_max_size",
    ),
    "train_seed": (  # every `training` key but those only seed selection and evaluation read
        "base_model", "base_model_path", "trust_remote_code", "data.target_classes", "post_prune",
        *(f"training.{key}" for key in (
            "source", "target", "train_batch_size", "train_max_size", "learning_rate", "num_train_epochs",
            "max_steps", "weight_decay", "adam_epsilon", "optim", "max_length", "add_identity_for_other_classes",
            "eval_steps", "eval_batch_size", "encoder_eval_max_size", "params", "latent_dim",
            "activation_encoder", "activation_decoder", "bias_decoder", "normalize_gradiend", "torch_dtype",
            "convergent_score_threshold", "convergent_mean_by_class_threshold")),
    ),
    "evaluate_encoder": (
        "base_model", "base_model_path", "trust_remote_code", "data.target_classes",
        "data.neutral.additional_excluded_words", "training.eval_batch_size",
        "training.encoder_eval_max_size", "training.seed_selection_eval_max_size",
        "training.torch_dtype", "training.max_length",
    ),
    "select_seed": (
        "seeds", "training.min_convergent_seeds", "training.convergent_score_threshold",
        "training.convergent_mean_by_class_threshold", "training.fail_on_non_convergence",
    ),
    "decoder_cell": (
        "base_model", "base_model_path", "trust_remote_code", "data.target_classes",
        "data.neutral.additional_excluded_words", "training.source", "training.eval_batch_size",
        "training.torch_dtype", "training.max_length", "decoder.max_size_training_like",
        "decoder.max_size_neutral", "decoder.lms_max_samples",
    ),
    "select_cell": ("data.target_classes", "decoder.selection"),
    "rewrite_model": (
        "base_model", "base_model_path", "trust_remote_code", "data.target_classes", "training.torch_dtype",
        "training.max_length",
    ),
    "report": ("*",),
    "provenance": ("*",),
    "summary": ("base_model", "data.target_classes", "seeds"),
    "benchmark_model": ("base_model", "base_model_path", "trust_remote_code", "training.torch_dtype", "benchmarks"),
    "benchmark_table": ("base_model",),
    "comparison_topk": ("base_model",),
    "comparison_cross_encoding": (
        "base_model", "base_model_path", "trust_remote_code", "data.target_classes", "training.torch_dtype",
        "training.max_length",
    ),
}


def load_config_file(path: str | Path, schema_path: str | Path | None = None) -> dict:
    """Read a YAML config file and return it validated and resolved (see :func:`load_and_validate`)."""
    return load_and_validate(load_yaml(path) or {}, schema_path)


def load_and_validate(config: Mapping[str, Any], schema_path: str | Path | None = None) -> dict:
    """Validate ``config`` against the schema, check what a schema cannot, return it resolved.

    Raises :class:`~gradiend.schema_validation.ConfigError` (a ``ValueError``) listing every
    problem, one line each, naming the offending key. ``config`` itself is not modified.
    """
    schema = load_yaml(schema_path or SCHEMA_PATH)
    resolved = validate_with_defaults(dict(config), schema)
    problems = _check_results_dir(resolved["results_dir"])
    folded: dict[str, list[str]] = {}
    for name in resolved["experiments"]:
        folded.setdefault(name.casefold(), []).append(name)
    problems += [f"config key `experiments`: the names {same} differ only in case, so their result folders "
                 f"collide on case-insensitive file systems; rename one" for same in folded.values() if len(same) > 1]
    for name, experiment in resolved["experiments"].items():
        problems += _check_experiment(name, experiment, resolved)
        problems += _check_benchmarks(f"experiments.{name}.benchmarks", experiment["benchmarks"])
    problems += _check_comparisons(resolved)
    if problems:
        raise ConfigError(problems)
    for name, experiment in resolved["experiments"].items():
        _resolve_experiment(name, experiment, resolved)
    return resolved


def _check_benchmarks(key: str, benchmarks: Mapping | None) -> list[str]:
    """A benchmarks block names at least one benchmark, and its local files exist, are in the
    released format and hold items of every requested bias type (hub datasets are read by the job)."""
    if benchmarks is None:
        return []
    if benchmarks["stereoset"] is None and benchmarks["crows_pairs"] is None and benchmarks["seat"] is None:
        return [f"config key `{key}` names no benchmark: give `stereoset`, `crows_pairs` and/or `seat` "
                f"(or remove the block)"]
    from gradiend.evaluation.bias.formats import BenchmarkFormatError, read_crows_pairs, read_stereoset

    problems = []
    readers = {"stereoset": read_stereoset, "crows_pairs": read_crows_pairs}
    for name, read in readers.items():
        source = benchmarks[name]
        if source is None or "path" not in source:
            continue
        if not Path(source["path"]).expanduser().is_file():
            problems.append(f"config key `{key}.{name}.path`: file not found: {source['path']}")
            continue
        try:  # the released format and the requested bias types, checked before anything runs
            read(source, benchmarks["bias_types"])
        except BenchmarkFormatError as error:
            problems.append(f"config key `{key}.{name}.path`: {error}")
    if benchmarks["seat"] is not None:
        from gradiend.evaluation.bias.seat import read_seat

        for i, path in enumerate(benchmarks["seat"]["paths"]):
            if not Path(path).expanduser().is_file():
                problems.append(f"config key `{key}.seat.paths[{i}]`: file not found: {path}")
                continue
            try:
                read_seat(path)
            except BenchmarkFormatError as error:
                problems.append(f"config key `{key}.seat.paths[{i}]`: {error}")
    return problems


def _check_comparisons(cfg: Mapping) -> list[str]:
    """Every compared experiment exists, and the experiments of one comparison share their base model."""
    problems = []
    experiments = cfg["experiments"]
    if cfg["comparisons"] and "comparisons" in experiments:
        problems.append("config key `experiments`: the name 'comparisons' is taken by the comparison results "
                        "folder (results/comparisons/) while `comparisons` is set; rename the experiment")
    for name, comparison in cfg["comparisons"].items():
        key = f"comparisons.{name}.experiments"
        unknown = [e for e in comparison["experiments"] if e not in experiments]
        if unknown:
            problems.append(f"config key `{key}`: unknown experiment(s) {unknown} (configured: {sorted(experiments)})")
            continue
        bases = {e: experiments[e]["base_model"] for e in comparison["experiments"]}
        if len(set(bases.values())) > 1:
            problems.append(f"config key `{key}`: the experiments of one comparison must share their base model "
                            f"(top-k parameters and encoders are only comparable on one model), got {bases}")
    return problems


def comparison_experiments(cfg: Mapping) -> dict[str, list[str]]:
    """Comparison name -> its experiments, in config order."""
    return {name: list(c["experiments"]) for name, c in cfg["comparisons"].items()}


def benchmarked_models(experiment: Mapping[str, Any]) -> list[str]:
    """Models an experiment's benchmarks score: ``base`` and every rewrite target; none without the block."""
    if experiment.get("benchmarks") is None:
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


def _check_results_dir(results_dir: str) -> list[str]:
    path = Path(results_dir).expanduser()
    if path.exists() and not path.is_dir():
        return [f"config key `results_dir`: {results_dir!r} is an existing file, not a folder; "
                f"name a folder (it is created if missing)"]
    return []


def _check_class_ids(key: str, targets: list[dict]) -> list[str]:
    """Class ids that would collide in output names, and target words claimed by two classes."""
    problems = []
    ids = [t["id"] for t in targets]
    for cls in ids:
        if cls in RESERVED_CLASS_IDS:
            problems.append(f"config key `{key}.data.feature_targets`: class id {cls!r} is reserved (the decoder "
                            f"summary uses {list(RESERVED_CLASS_IDS)} for its own entries); rename the class")
        if cls.endswith(WEAKEN_SUFFIX):
            problems.append(f"config key `{key}.data.feature_targets`: class id {cls!r} ends in '{WEAKEN_SUFFIX}', "
                            f"the suffix of weakening rewrites (class '{cls.removesuffix(WEAKEN_SUFFIX)}' weakened "
                            f"is called {cls!r}); rename the class")
    folded: dict[str, list[str]] = {}
    for cls in dict.fromkeys(ids):
        folded.setdefault(cls.casefold(), []).append(cls)
    for same in folded.values():
        if len(same) > 1:
            problems.append(f"config key `{key}.data.feature_targets`: class ids {same} differ only in case, so "
                            f"their output folders collide on case-insensitive file systems; rename one")
    owner: dict[str, list[dict]] = {}
    for target in targets:
        for word in dict.fromkeys(w.casefold() for w in target["targets"]):
            owner.setdefault(word, []).append(target)
    for word, classes in owner.items():
        for i, first in enumerate(classes):
            for second in classes[i + 1:]:
                if (first["spacy_tags"], first["use_lemma"]) == (second["spacy_tags"], second["use_lemma"]):
                    problems.append(
                        f"config key `{key}.data.feature_targets`: target {word!r} is in class {first['id']!r} "
                        f"and in class {second['id']!r} with the same filter, so its rows cannot tell the classes "
                        f"apart (targets match case-insensitively); keep it in one class, or tell the classes "
                        f"apart with different `spacy_tags`")
    return problems


def _check_experiment(name: str, exp: dict, cfg: dict) -> list[str]:
    key = f"experiments.{name}"
    if not SAFE_NAME.match(name):
        return [f"config key `experiments`: the name {name!r} is not a safe folder name"]
    data = exp["data"]
    problems = []
    ids = [target["id"] for target in data["feature_targets"]]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        problems.append(f"config key `{key}.data.feature_targets` repeats the class id(s) {duplicates}")
    problems += _check_class_ids(key, data["feature_targets"])
    pair = data["target_classes"]
    if pair is None and len(ids) != 2:
        problems.append(f"config key `{key}.data.target_classes` is required when there are "
                        f"{len(ids)} feature classes ({ids}); name the two to learn")
    for cls in pair or []:
        if cls not in ids:
            problems.append(f"config key `{key}.data.target_classes`: {cls!r} is not a feature class id {ids}")
    classes = pair or sorted(ids)
    factors = exp["decoder"]["feature_factors"]
    for target in exp["rewrite"]:
        cls = target.removesuffix(WEAKEN_SUFFIX)
        if cls not in classes:
            problems.append(f"config key `{key}.rewrite`: {target!r} is neither a target class {classes} "
                            f"nor one of them followed by '{WEAKEN_SUFFIX}'")
        elif factors is not None:
            needed = rewrite_factor(exp["training"]["source"], classes.index(cls), target != cls)
            if needed not in [float(f) for f in factors]:
                problems.append(f"config key `{key}.rewrite`: {target!r} needs feature factor {needed:g}, which "
                                f"`decoder.feature_factors` {factors} does not hold")
    needs_spacy = any(t["spacy_tags"] or t["use_lemma"] for t in data["feature_targets"])
    if (needs_spacy or data["neutral"]["excluded_spacy_tags"]) and not data["spacy_model"]:
        problems.append(f"config key `{key}.data.spacy_model` is required: spaCy tags or lemmas are "
                        f"used (e.g. de_core_news_sm, en_core_web_sm)")
    ratios = data["split_ratios"]
    if abs(sum(ratios.values()) - 1.0) > 1e-6:
        problems.append(f"config key `{key}.data.split_ratios` must sum to 1, got {sum(ratios.values())}")
    for split, ratio in ratios.items():
        if ratio <= 0:
            problems.append(f"config key `{key}.data.split_ratios.{split}` must be above 0, got {ratio}: the workflow "
                            f"trains on `train`, selects the seed on `validation` and evaluates on `test`")
    preprocess = data["preprocess"]
    if preprocess is not None and None not in (preprocess["min_chars"], preprocess["max_chars"]) \
            and preprocess["min_chars"] > preprocess["max_chars"]:
        problems.append(f"config key `{key}.data.preprocess.min_chars` ({preprocess['min_chars']}) is larger than "
                        f"`max_chars` ({preprocess['max_chars']}): every text would be dropped")
    training = exp["training"]
    if training["normalize_gradiend"] and training["activation_encoder"] not in ODD_ACTIVATIONS:
        problems.append(f"config key `{key}.training.activation_encoder`: {training['activation_encoder']!r} cannot be "
                        f"used with `normalize_gradiend: true`, which flips the encoding and needs an odd activation "
                        f"{list(ODD_ACTIVATIONS)}; choose one of those or set `normalize_gradiend: false`")
    for factor in factors or []:
        if factor == 0:
            problems.append(f"config key `{key}.decoder.feature_factors`: a feature factor of 0 leaves the model "
                            f"unchanged (every such cell is the base model); remove it")
    source = data["source"]
    if isinstance(source, dict) and "path" in source and not Path(source["path"]).expanduser().is_file():
        problems.append(f"config key `{key}.data.source.path`: file not found: {source['path']}")
    elif isinstance(source, dict) and "path" in source:
        from gradiend.data.base_loader import SUPPORTED_SUFFIXES

        suffix = Path(source["path"]).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            problems.append(f"config key `{key}.data.source.path`: {source['path']} has the suffix {suffix!r}, which "
                            f"names no supported format ({', '.join(SUPPORTED_SUFFIXES)}); rename or convert the file")
    problems += _check_base_model(key, exp["base_model"], cfg)
    demo = exp["base_model"][len(DEMO_PREFIX):] if exp["base_model"].startswith(DEMO_PREFIX) else None
    if demo in cfg["demo"]["models"] and cfg["demo"]["models"][demo]["kind"] == "causal":
        without = [t["id"] for t in data["feature_targets"]
                   if (t["min_left_context_words"] if t["min_left_context_words"] is not None
                       else data["min_left_context_words"]) < 1]
        if without:
            problems.append(f"config key `{key}.data.min_left_context_words`: the base model {exp['base_model']!r} is a "
                            f"causal LM, which predicts a target from the words before it, but class(es) {without} "
                            f"accept targets with no word before them; set it to 1 or more (e.g. 3)")
    if exp["training"]["min_convergent_seeds"] > len(exp["seeds"]):
        problems.append(f"config key `{key}.training.min_convergent_seeds` "
                        f"({exp['training']['min_convergent_seeds']}) exceeds the number of seeds "
                        f"({len(exp['seeds'])})")
    for section in ("pre_prune", "post_prune"):
        prune = exp[section]
        if prune is not None and prune["topk"] is None and prune["threshold"] is None:
            problems.append(f"config key `{key}.{section}` needs `topk` or `threshold`")
    return problems


def _check_base_model(key: str, value: str, cfg: dict) -> list[str]:
    if value.startswith(DEMO_PREFIX):
        demo = value[len(DEMO_PREFIX):]
        known = sorted(cfg["demo"]["models"])
        if demo not in known:
            return [f"config key `{key}.base_model`: unknown demo model {demo!r} (configured: {known})"]
        return []
    if written_as_path(value) and not Path(value).expanduser().is_dir():
        return [f"config key `{key}.base_model`: local model folder not found: {value} "
                f"(a Hugging Face id must not start with '/', './', '../' or '~')"]
    if written_as_path(value) or Path(value).is_dir():
        message = missing_tokenizer_message(Path(value).expanduser(), value)
        if message:
            return [f"config key `{key}.base_model`: {message}"]
    return []


def demo_model_dir(cfg: Mapping, name: str) -> str:
    return os.path.join(cfg["results_dir"], "_demo", "models", name)


def demo_corpus_path(cfg: Mapping) -> str:
    return os.path.join(cfg["results_dir"], "_demo", "corpus.txt")


def strengthen_factor(source: str, class_index: int) -> float:
    """Feature factor that strengthens ``target_classes[class_index]`` (:func:`gradiend.cells.class_feature_factor`)."""
    return class_feature_factor(source, class_index)


def rewrite_factor(source: str, class_index: int, weaken: bool) -> float:
    """Feature factor of the cells that strengthen (or weaken) ``target_classes[class_index]``."""
    return class_feature_factor(source, class_index, weaken)


def _resolve_experiment(name: str, exp: dict, cfg: dict) -> None:
    exp["name"] = name
    data = exp["data"]
    if data["target_classes"] is None:
        data["target_classes"] = sorted(t["id"] for t in data["feature_targets"])
    spec = exp["base_model"]
    if spec.startswith(DEMO_PREFIX):
        exp["demo_model"] = spec[len(DEMO_PREFIX):]
        exp["base_model_path"] = demo_model_dir(cfg, exp["demo_model"])
    else:
        exp["demo_model"] = None
        exp["base_model_path"] = os.path.expanduser(spec) if spec.startswith("~") else spec
    if exp["pre_prune"] is not None and exp["pre_prune"]["seed"] is None:
        exp["pre_prune"]["seed"] = int(exp["seeds"][0])
    decoder = exp["decoder"]
    if decoder["feature_factors"] is None:
        source = exp["training"]["source"]
        decoder["feature_factors"] = [strengthen_factor(source, 0), strengthen_factor(source, 1)]


def _pick(tree: Mapping, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


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
        _place(cut, dotted, _pick(experiment, dotted))
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
        return demo_corpus_path(cfg)
    if isinstance(source, Mapping) and "path" in source:
        return os.path.expanduser(source["path"])
    return None
