"""The checks of a workflow configuration that its JSON schema cannot express.

:func:`config_problems` takes the schema-validated configuration (defaults filled in, not yet
resolved) and returns one line per problem, each naming the offending key:
:func:`gradiend.workflow_config.load_and_validate` raises them together.
"""
from __future__ import annotations

import re
import sys
from functools import partial
from itertools import combinations
from pathlib import Path
from typing import Any, Mapping

from gradiend.cells import WEAKEN_SUFFIX, class_feature_factor, split_rewrite_target
from gradiend.util import devices
from gradiend.util.child import call_in_child
from gradiend.util.devices import placement_problems
from gradiend.util.io import written_as_path
from gradiend.util.remote_code import remote_code_message
from gradiend.util.tokenizer_files import missing_tokenizer_message

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
DEMO_PREFIX = "demo:"
# Keys of decoder/summary.json (and the `base` cell) that sit beside the class ids: a class with one
# of these ids would overwrite them (or be overwritten).
RESERVED_CLASS_IDS = ("base", "policy", "skipped", "non_finite_cells")
# Encoder activations with act(-x) = -act(x), which `normalize_gradiend` needs to flip the encoding
# (the same as gradiend.model.activations, kept here so that start-up does not import torch).
ODD_ACTIVATIONS = ("tanh", "smht", "id")


def config_problems(resolved: Mapping[str, Any], memory_plans: bool = True, measure_memory: bool = True) -> list[str]:
    """Every problem of a schema-validated configuration, one line each (empty: none); with
    ``memory_plans`` also each readable base model's memory plan (:func:`memory_problems`), against this
    machine's memory when ``measure_memory`` (the jobs run here), else against `max_memory` alone."""
    problems = []
    results_dir = Path(resolved["results_dir"]).expanduser()
    if results_dir.exists() and not results_dir.is_dir():
        problems.append(f"config key `results_dir`: {resolved['results_dir']!r} is an existing file, not a "
                        f"folder; name a folder (it is created if missing)")
    problems += [f"config key `experiments`: the names {same} differ only in case, so their result folders "
                 f"collide on case-insensitive file systems; rename one"
                 for same in _case_twins(resolved["experiments"])]
    for name, experiment in resolved["experiments"].items():
        problems += _check_experiment(name, experiment, resolved)
        problems += _check_benchmarks(f"experiments.{name}.benchmarks", experiment["benchmarks"])
        problems += _check_search(f"experiments.{name}.decoder", experiment["decoder"])
        problems += _check_capability(f"experiments.{name}.capability", experiment["capability"])
    problems += _check_comparisons(resolved)
    if memory_plans and not problems:
        problems += memory_problems(resolved, measure=measure_memory)
    return problems


def _readable_model(cfg: Mapping[str, Any], spec: str) -> str | None:
    """The folder or cached hub id whose ``config.json`` can be read now (None: not yet, e.g. a
    demo model the workflow builds, or a hub id that is not in the local cache)."""
    if spec.startswith(DEMO_PREFIX):
        folder = Path(cfg["results_dir"]).expanduser() / "_demo" / "models" / spec[len(DEMO_PREFIX):]
        return str(folder) if (folder / "config.json").is_file() else None
    if written_as_path(spec) or Path(spec).expanduser().is_dir():
        folder = Path(spec).expanduser()
        return str(folder) if (folder / "config.json").is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cached = try_to_load_from_cache(spec, "config.json")
    return spec if isinstance(cached, str) else None


def memory_problems(cfg: Mapping[str, Any], out=None, measure: bool = True) -> list[str]:
    """Each experiment's memory plan (:mod:`gradiend.model.memory_plan`), printed to ``out``; a plan
    above `max_memory` (else, when ``measure``, the memory this machine's host and GPUs have now: not
    for a cluster's jobs, which plan again on their nodes) and a `training.params` pattern that matches
    no parameter are problems. Experiments whose base model is not readable yet are planned by their
    jobs. Reads only the models' config files (torch is imported only when one is readable)."""
    readable = {name: _readable_model(cfg, exp["base_model"]) for name, exp in cfg["experiments"].items()}
    if not any(readable.values()):
        return []
    from gradiend.model.backbone import UnmatchedPatternError
    from gradiend.model.loading import load_meta_model
    from gradiend.model.memory_plan import MemoryPlanError, ensure_fits

    out, problems = out or sys.stderr, []
    for name, source in readable.items():
        if source is None:
            print(f"memory plan for experiment {name!r}: when its base model exists (its jobs plan it)", file=out)
            continue
        exp, training = cfg["experiments"][name], cfg["experiments"][name]["training"]
        try:
            meta = load_meta_model(source, torch_dtype=training["torch_dtype"],
                                   trust_remote_code=bool(exp["trust_remote_code"]))[0]
            ensure_fits(meta, max_memory=cfg["max_memory"], running_here=False, measure=measure,
                        label=f"experiment {name!r}", report=lambda lines: print("\n".join(lines), file=out),
                        device_map=training["device_map"], gradiend_device=training["gradiend_device"],
                        params=training["params"],
                        pre_prune=exp["pre_prune"], latent_dim=training["latent_dim"],
                        train_batch_size=training["train_batch_size"], eval_batch_size=training["eval_batch_size"],
                        tokens=training["max_length"])
        except UnmatchedPatternError as error:
            problems.append(f"config key `experiments.{name}.training.params`: {error}")
        except MemoryPlanError as error:
            problems.append(f"config key `max_memory` / experiment {name!r}: " + str(error).replace("\n", "\n    "))
    return problems


def device_problems(resolved: Mapping[str, Any]) -> list[str]:
    """What this machine cannot run of each experiment's ``training.{device_map, gradiend_device,
    torch_dtype}``: an absent device, a dtype its devices cannot compute in, a map without accelerate
    (:func:`gradiend.util.devices.device_problems`). For the machine that runs the jobs: the workflow
    calls it when it runs them here, and on a cluster each job checks its own node before loading weights.
    An experiment that names no device and keeps float32 imports no torch (the default start-up stays fast);
    one in another dtype is probed in a child process, so no GPU context stays in Snakemake's."""
    problems = []
    for name, experiment in resolved["experiments"].items():
        settings = {key: experiment["training"][key] for key in ("device_map", "gradiend_device", "torch_dtype")}
        if devices.probes_dtype(settings["torch_dtype"]):  # a matmul on the device: in a child, so no GPU
            found = call_in_child("gradiend.util.devices.device_problems", **settings)  # context stays here
        else:
            found = devices.device_problems(**settings)
        problems += [f"config key `experiments.{name}.training.{field}`: {why}" for field, why in found]
    return problems


def _check_benchmarks(key: str, benchmarks: Mapping | None) -> list[str]:
    """A benchmarks block names at least one benchmark, and its local files exist, are in the
    released format and hold items of every requested bias type (hub datasets are read by the job)."""
    if benchmarks is None:
        return []
    if benchmarks["stereoset"] is None and benchmarks["crows_pairs"] is None and benchmarks["seat"] is None:
        return [f"config key `{key}` names no benchmark: give `stereoset`, `crows_pairs` and/or `seat` "
                f"(or remove the block)"]
    from gradiend.evaluation.bias.formats import BenchmarkFormatError, read_crows_pairs, read_stereoset

    files = [(f"{name}.path", source["path"], partial(read, source, benchmarks["bias_types"]))
             for name, read in (("stereoset", read_stereoset), ("crows_pairs", read_crows_pairs))
             if (source := benchmarks[name]) is not None and "path" in source]
    if benchmarks["seat"] is not None:
        from gradiend.evaluation.bias.seat import read_seat

        files += [(f"seat.paths[{i}]", path, partial(read_seat, path))
                  for i, path in enumerate(benchmarks["seat"]["paths"])]
    problems = []
    for where, path, read in files:
        if not Path(path).expanduser().is_file():
            problems.append(f"config key `{key}.{where}`: file not found: {path}")
            continue
        try:  # the released format and the requested bias types, checked before anything runs
            read()
        except BenchmarkFormatError as error:
            problems.append(f"config key `{key}.{where}`: {error}")
    return problems


def _check_search(key: str, decoder: Mapping) -> list[str]:
    """A damage bound (``max_kl``) and the adaptive search both need the threshold policy, the one
    that maximises the metric under a bound."""
    if decoder["selection"]["policy"] == "lms_threshold":
        return []
    uses = [what for what, used in ((f"`{key}.selection.max_kl`", decoder["selection"]["max_kl"] is not None),
                                    (f"`{key}.search: adaptive`", decoder["search"] == "adaptive")) if used]
    return [f"config key `{key}.selection.policy`: {decoder['selection']['policy']!r} has no damage bound, but "
            f"{' and '.join(uses)} need one; use `policy: lms_threshold`"] if uses else []


def _check_capability(key: str, capability: Mapping | None) -> list[str]:
    """The held-out text file exists, and lm-evaluation-harness is installed when tasks are named."""
    if capability is None:
        return []
    import importlib.util

    problems = []
    if not Path(capability["text"]).expanduser().is_file():
        problems.append(f"config key `{key}.text`: file not found: {capability['text']}")
    lm_eval = capability["lm_eval"]
    if lm_eval is not None and importlib.util.find_spec("lm_eval") is None:
        problems.append(f"config key `{key}.lm_eval` names tasks {lm_eval['tasks']}, but lm-evaluation-harness is not "
                        f"installed (pip install lm-eval), or remove the block")
    if lm_eval is not None and lm_eval["include_path"] is not None \
            and not Path(lm_eval["include_path"]).expanduser().is_dir():
        problems.append(f"config key `{key}.lm_eval.include_path`: folder not found: {lm_eval['include_path']}")
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


def _case_twins(names) -> list[list[str]]:
    """Groups of distinct names that differ only in case (they collide on case-insensitive file systems)."""
    folded: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        folded.setdefault(name.casefold(), []).append(name)
    return [same for same in folded.values() if len(same) > 1]


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
    for same in _case_twins(ids):
        problems.append(f"config key `{key}.data.feature_targets`: class ids {same} differ only in case, so "
                        f"their output folders collide on case-insensitive file systems; rename one")
    owner: dict[str, list[dict]] = {}
    for target in targets:
        for word in dict.fromkeys(w.casefold() for w in target["targets"]):
            owner.setdefault(word, []).append(target)
    for word, classes in owner.items():
        for first, second in combinations(classes, 2):
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
        cls, weaken = split_rewrite_target(target)
        if cls not in classes:
            problems.append(f"config key `{key}.rewrite`: {target!r} is neither a target class {classes} "
                            f"nor one of them followed by '{WEAKEN_SUFFIX}'")
        elif factors is not None:
            needed = class_feature_factor(exp["training"]["source"], classes.index(cls), weaken)
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
    problems += [f"config key `{key}.training.{field}`: {why}" for field, why in placement_problems(
        device_map=training["device_map"], gradiend_device=training["gradiend_device"])]
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
        from gradiend.data.base_loader import unknown_format_message

        message = unknown_format_message(source["path"])
        if message:
            problems.append(f"config key `{key}.data.source.path`: {message}; rename or convert the file")
    problems += _check_base_model(key, exp["base_model"], cfg, exp["trust_remote_code"])
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


def _check_base_model(key: str, value: str, cfg: dict, trust_remote_code: bool = False) -> list[str]:
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
        folder = Path(value).expanduser()
        message = missing_tokenizer_message(folder, value) or (
            None if trust_remote_code else remote_code_message(folder, value, f"`{key}.trust_remote_code: true`"))
        if message:
            return [f"config key `{key}.base_model`: {message}"]
    return []
