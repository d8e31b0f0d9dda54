"""Decoder stages: score grid cells (with a cache), refine them by an adaptive search (optional),
choose the cells, write the rewritten models."""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Mapping, Sequence

from gradiend.stages.models import (evaluation_parts, load_base, read_tables, target_classes, with_checkpoint,
                                    without_gradiend)
from gradiend.util.logging import get_logger

logger = get_logger("gradiend.stages")

# What a cell file holds; part of every cache fingerprint, so cells of an older layout are scored again.
CELL_FORMAT = 2


def _adaptive(config: Mapping) -> bool:
    return config["decoder"]["search"] == "adaptive"


def _evaluator(config: dict, model: str | None, training: str, neutral: str):
    """A :class:`DecoderEvaluator` over the loaded base model (with the checkpoint ``model``, if given);
    with ``decoder.search: adaptive`` its cells also score the validation rows."""
    from gradiend.evaluation.decoder import DecoderEvaluator

    table, neutral_table = read_tables(training, neutral)
    base = load_base(config)
    mwg = without_gradiend(config, base) if model is None else with_checkpoint(config, base, model)
    decoder = config["decoder"]
    # the LMS scores the smaller of `max_size_neutral` and `lms_max_samples` neutral texts
    caps = [c for c in (decoder["max_size_neutral"], decoder["lms_max_samples"]) if c is not None]
    parts = evaluation_parts(config, mwg, table, neutral_table,
                             decoder_max_size_training_like=decoder["max_size_training_like"],
                             decoder_max_size_neutral=min(caps) if caps else None)
    return DecoderEvaluator(parts, validation=_adaptive(config))


def decoder_grid(config: dict, *, model: str | None, training: str, neutral: str, cells: Sequence[str],
                 cache: str | None = None) -> None:
    """Score cells of an experiment's decoder grid with one loaded model: the whole grid in one job
    (rule ``decoder_grid``: one start-up of Python, torch, transformers, the model and the scored
    inputs for all cells), or on a cluster one learning rate's cells (``decoder_cell``) or ``base``
    alone (``decoder_base``: ``model`` None, so the unmodified model never waits for training).

    Each path of ``cells`` is named by its cell: ``base.json`` is the unmodified model,
    ``lr~0.01_ff~-1.json`` is θ + lr·dec(ff) (:func:`gradiend.cells.cell_name`). Each update is applied
    in place and restored bitwise, so a cell's numbers do not depend on which other cells its job scored.
    ``cache``: a folder of cells scored before, each stored with the fingerprint of everything it
    depends on (library version, ``config``, the cell, the bytes of the data, the checkpoint and a
    local base model). A cell whose fingerprint is unchanged is copied from there (the same bytes a
    recomputation writes), so a changed learning rate recomputes only its cells; delete the folder to
    recompute everything.
    Config: ``base_model, base_model_path, trust_remote_code, data.target_classes,
    data.neutral.additional_excluded_words, training.{source, eval_batch_size, torch_dtype,
    max_length, device_map, gradiend_device}, decoder.{max_size_training_like, max_size_neutral,
    lms_max_samples, search}``.
    Reads: ``model`` (best checkpoint; None for ``base`` alone), ``training`` (``test`` split; with
    ``decoder.search: adaptive`` also ``validation``), ``neutral`` (LMS texts).
    Writes each of ``cells``: JSON, the cell of ``DecoderEvaluator.evaluate_cell`` / ``evaluate_base``:
    ``{"id", "is_base", "learning_rate", "feature_factor", "probs_by_dataset": {dataset class:
    {class: mean P}}, "probs_ci_by_dataset", "n_rows_by_dataset", "lms", "lms_details", "kl",
    "perplexity", "damage": {perplexity_kind, n_texts, n_kl_positions, n_perplexity_tokens,
    bootstrap, confidence, ci: {lms, kl, perplexity}}, "class_feature_factors", "finite", "part"}``
    (adaptive: also ``"validation": {"probs_by_dataset", "probs_ci_by_dataset", "n_rows_by_dataset"}``);
    ``"id"`` is the cell's name.
    """
    from gradiend.cells import BASE, parse_cell_name
    from gradiend.util.io import write_json

    todo = []
    inputs = _input_digests(config, model, training, neutral) if cache else {}
    for path in cells:
        name = Path(path).stem
        lr, ff = (None, None) if name == BASE else parse_cell_name(name)
        if model is None and name != BASE:
            raise ValueError(f"decoder_grid: cell {name!r} needs the GRADIEND checkpoint `model`")
        fingerprint = _fingerprint(config, name, inputs, with_checkpoint=name != BASE) if cache else None
        stored = Path(cache or ".") / f"{name}.json"
        entry = _cached(stored) if cache else None
        if entry is not None and entry.get("fingerprint") == fingerprint:
            write_json(path, entry["cell"])
            logger.info("cell %s: unchanged inputs, copied from %s", name, stored)
        else:
            todo.append((path, lr, ff, stored, fingerprint))
    if not todo:
        return
    evaluator = _evaluator(config, model, training, neutral)
    with evaluator.grid_session() if model is not None else contextlib.nullcontext():
        for path, learning_rate, feature_factor, stored, fingerprint in todo:
            cell = (evaluator.evaluate_base() if learning_rate is None
                    else evaluator.evaluate_cell(learning_rate, feature_factor))
            write_json(path, cell)
            logger.info("cell %s: lms %.4f, probabilities %s", cell["id"], cell["lms"],
                        cell["probs_by_dataset"])
            if cache:
                write_json(stored, {"fingerprint": fingerprint, "cell": cell})


def _cached(stored: Path) -> dict | None:
    """A cache entry, or None when there is none or it cannot be read (then the cell is scored again)."""
    from gradiend.util.io import read_json

    try:
        entry = read_json(stored) if stored.is_file() else None
    except ValueError as error:
        logger.warning("ignoring an unreadable decoder cache entry: %s", error)
        return None
    return entry if isinstance(entry, dict) and "cell" in entry else None


def _input_digests(config: Mapping, model: str | None, training: str, neutral: str) -> dict:
    """SHA-256 of every file a cell reads: the tables, the checkpoint, a local base model folder
    (not their ``timing.json``: wall-clock times, which change with every run and no result)."""
    from gradiend.model.base_reference import sha256_file
    from gradiend.stages.provenance import model_hashes
    from gradiend.training.history import TIMING_FILE

    def folder(path) -> dict:
        root = Path(path)
        return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != TIMING_FILE}

    base = config["base_model_path"]
    return {"training": sha256_file(training), "neutral": sha256_file(neutral),
            "checkpoint": folder(model) if model else None,
            "base_model": folder(base) if Path(base).is_dir() else model_hashes(base)}


def _fingerprint(config: Mapping, name: str, inputs: Mapping, with_checkpoint: bool) -> str:
    """What a cell depends on, as one hash (the base cell does not read the checkpoint)."""
    import hashlib

    from gradiend import __version__
    from gradiend.util.io import to_json_text

    facts = {"version": __version__, "cell_format": CELL_FORMAT, "config": config, "cell": name,
             "inputs": {k: v for k, v in inputs.items() if with_checkpoint or k != "checkpoint"}}
    return hashlib.sha256(to_json_text(facts).encode()).hexdigest()


def _policy(config: Mapping):
    """The selection policy of ``decoder.selection``; with a KL bound or an adaptive search a bound
    that no cell meets is an error (``BoundNotMet``), never a fallback."""
    from gradiend.evaluation.selection import LMSThresholdPolicy, LMSTimesMetricPolicy

    selection = config["decoder"]["selection"]  # the schema allows these two policies
    if selection["policy"] == "lms_times_metric":
        return LMSTimesMetricPolicy()
    return LMSThresholdPolicy(ratio=float(selection["ratio"]), max_kl=selection["max_kl"], strict=_adaptive(config))


def _directions(config: Mapping, factors: Mapping[str, float], feature_factors) -> tuple[list, list[str]]:
    """``([(class, direction)], skipped keys)``: the directions whose feature factor is in ``feature_factors``."""
    from gradiend.cells import rewrite_key
    from gradiend.evaluation.selection import objective

    served, skipped = [], []
    for cls in target_classes(config):
        for direction in ("strengthen", "weaken"):
            needed, _ = objective(cls, direction, factors)
            if {float(f) for f in needed} & {float(f) for f in feature_factors}:
                served.append((cls, direction))
            else:
                skipped.append(rewrite_key(cls, weaken=direction == "weaken"))
    return served, skipped


def decoder_search(config: dict, *, model: str, training: str, neutral: str, base: str, cells: Sequence[str],
                   trials: str, search: str) -> None:
    """Refine the grid: per target class and direction, trials around the best grid cell that look for
    the strongest rewrite within the damage bound (:mod:`gradiend.evaluation.search`).

    The metric is read on the validation rows; the bound is ``lms >= ratio · base LMS`` and, when
    set, ``kl <= max_kl``. Every trial is a cell file in ``trials`` named by its cell and stored with
    the fingerprint of what it depends on (as ``decoder_grid``'s cache): a rerun with more trials, or
    another direction that proposes the same cell, copies it instead of scoring it again. The model
    is loaded only when some trial is not in ``trials`` yet.
    Config: the keys of ``decoder_grid`` plus ``decoder.{adaptive.{trials, feature_factor_scales},
    selection.{policy, ratio, max_kl}}``.
    Reads: ``base`` and ``cells`` (the grid, scored with validation rows), and for new trials
    ``model`` (best checkpoint), ``training`` (validation and test splits), ``neutral``.
    Writes: ``trials/<cell>.json`` (``{"fingerprint", "cell"}``) and ``search``: JSON ``{"settings":
    {trials, feature_factor_scales, ratio, max_kl, relative_tolerance}, "targets": {key: {"trials":
    [cell ids in the order run], "n_scored": new ones, "n_reused": copied ones}}, "cells": {id:
    cell}}`` (every trial cell; ``key`` as in ``decoder/summary.json``).
    """
    from gradiend.cells import SEARCH_ONLY_KEYS, cell_name, rewrite_key
    from gradiend.evaluation.search import RELATIVE_TOLERANCE, search as run_search
    from gradiend.evaluation.selection import admissible, objective, on_split
    from gradiend.util.io import read_json, write_json

    if not _adaptive(config):
        raise ValueError(f"decoder_search: experiment {config['name']!r} has `decoder.search: grid`; nothing to search")
    base_cell, grid = read_json(base), [read_json(path) for path in cells]
    adaptive, policy = config["decoder"]["adaptive"], _policy(config)
    base_lms = float(base_cell["lms"])
    cell_config = {**config, "decoder": {k: v for k, v in config["decoder"].items() if k not in SEARCH_ONLY_KEYS}}
    inputs = _input_digests(config, model, training, neutral)
    scored: dict[str, dict] = {}
    counts = {"scored": 0, "reused": 0}

    with contextlib.ExitStack() as stack:
        evaluator = []  # loaded on the first trial that is not stored yet

        def score(learning_rate: float, feature_factor: float) -> dict:
            name = cell_name(learning_rate, feature_factor)
            if name in scored:
                counts["reused"] += 1
                return scored[name]
            stored = Path(trials) / f"{name}.json"
            fingerprint = _fingerprint(cell_config, name, inputs, with_checkpoint=True)
            entry = _cached(stored)
            if entry is not None and entry.get("fingerprint") == fingerprint:
                cell = entry["cell"]
                counts["reused"] += 1
                logger.info("trial %s: unchanged inputs, copied from %s", name, stored)
            else:
                if not evaluator:
                    evaluator.append(_evaluator(config, model, training, neutral))
                    stack.enter_context(evaluator[0].grid_session())
                cell = evaluator[0].evaluate_cell(learning_rate, feature_factor)
                write_json(stored, {"fingerprint": fingerprint, "cell": cell})
                counts["scored"] += 1
                logger.info("trial %s: lms %.4f, kl %.4g, probabilities %s", name, cell["lms"], cell["kl"],
                            cell["validation"]["probs_by_dataset"])
            scored[name] = cell
            return cell

        factors = base_cell["class_feature_factors"]
        served, _ = _directions(config, factors, {float(c["feature_factor"]) for c in grid})
        targets = {}
        for cls, direction in served:
            (sign, *_), metric = objective(cls, direction, factors)
            on_validation = lambda cell, m=metric: m(on_split(cell, "validation"))  # noqa: E731
            before = dict(counts)
            run = run_search(grid, sign=sign,
                             scales=adaptive["feature_factor_scales"], trials=adaptive["trials"],
                             admits=lambda cell, m=on_validation: admissible(policy, cell, m, base_lms),
                             metric=on_validation, score=score)
            key = rewrite_key(cls, weaken=direction == "weaken")
            targets[key] = {"trials": [c["id"] for c in run], "n_scored": counts["scored"] - before["scored"],
                            "n_reused": counts["reused"] - before["reused"]}
            logger.info("search %s: %d trial(s) %s", key, len(run), targets[key]["trials"])
    settings = {"trials": adaptive["trials"], "feature_factor_scales": list(adaptive["feature_factor_scales"]),
                "ratio": getattr(policy, "ratio", None), "max_kl": getattr(policy, "max_kl", None),
                "relative_tolerance": RELATIVE_TOLERANCE}
    write_json(search, {"settings": settings, "targets": targets, "cells": scored})


def select_cell(config: dict, *, base: str, cells: Sequence[str], seed_choice: str, summary: str, plot: str,
                tradeoff: str | None = None, search: str | None = None) -> None:
    """Choose, per target class and direction, the cell to rewrite with.

    Config: ``data.target_classes, decoder.{search, selection.{policy, ratio, max_kl}}``
    (``lms_threshold``: best metric among cells with LMS >= ratio·base LMS and, with ``max_kl``,
    KL <= max_kl; no such cell: the smallest learning rate, or an error naming the least damaging
    cell when ``max_kl`` is set or the search is adaptive; ``lms_times_metric``: best metric·LMS).
    ``grid``: the grid cells, the metric on the test rows (as the grid has always chosen);
    ``adaptive``: the grid cells and the search's trials, the metric on the validation rows, while
    every reported ``value`` is the test rows'.
    Reads: ``base`` (the base cell), ``cells`` (every other grid cell; each file names its own
    learning rate and feature factor, and the feature factor that strengthens each class) and, for
    ``adaptive``, ``search`` (``decoder/search.json`` of :func:`decoder_search`); ``seed_choice``
    (``best/seed.json``: the seed whose GRADIEND rewrote, named in the figures' titles).
    Writes:
      - ``summary``: JSON ``{"<class>": {...}, "<class>_weaken": {...}}`` for both target classes
        (a direction whose feature factor is not in the grid is listed under ``skipped``), each
        entry from ``gradiend.evaluation.selection.summarize_cells`` (``value`` and ``value_ci`` on
        the test rows, ``base_value``, ``selection_split``, ``selection_value``, ``learning_rate``,
        ``feature_factor``, ``lms``, ``base_lms``, ``kl``, ``perplexity``, ``base_perplexity``,
        ``damage`` (with the bootstrap intervals), ``strengthen``, ``target_class``, ``fallback``,
        ``reason``, ``id``, ...) plus ``cell`` (the cell's name) and ``trial`` (whether a search
        trial); also ``"base"`` (LMS, KL, perplexity, damage and probabilities of the unmodified
        model), ``"policy"``, ``"search"`` (``mode``, ``selection_split``, ``n_grid_cells``,
        ``trials`` per key) and ``"non_finite_cells"``;
      - ``plot``: PNG of the probability shifts and LMS over the learning rates (grid and trials);
      - ``tradeoff`` (if given): PNG of the metric against KL and LMS for every cell and trial, the
        chosen point marked (:func:`gradiend.plots.tradeoff.plot_tradeoff`).
    """
    from gradiend.cells import cell_name
    from gradiend.evaluation.selection import BoundNotMet, summarize_cells
    from gradiend.plots.decoder import plot_probability_shifts
    from gradiend.util.io import read_json, write_json

    base_cell = read_json(base)
    grid = [read_json(path) for path in cells]
    seed = read_json(seed_choice)["seed"]
    adaptive = _adaptive(config)
    if adaptive and search is None:
        raise ValueError(f"select_cell: experiment {config['name']!r} has `decoder.search: adaptive` but no "
                         f"search results were given (decoder/search.json of decoder_search)")
    searched = read_json(search) if adaptive else {"targets": {}, "cells": {}}
    grid_ids = {c["id"] for c in grid}
    trials = [c for name, c in searched["cells"].items() if name not in grid_ids]
    split = "validation" if adaptive else "test"
    policy = _policy(config)
    factors = base_cell["class_feature_factors"]
    served, skipped = _directions(config, factors, {float(c["feature_factor"]) for c in grid + trials})
    chosen: dict = {}
    try:
        for cls, direction in served:
            chosen.update(summarize_cells(grid + trials, base_cell, factors, [cls], (direction,), policy, split))
    except BoundNotMet as error:
        advice = ("give the search more `decoder.adaptive.trials` or smaller learning rates, or loosen "
                  if adaptive else "add smaller `decoder.learning_rates` or loosen ")
        raise BoundNotMet(f"experiment {config['name']!r}: {error}; {advice}`decoder.selection.ratio` / "
                          f"`decoder.selection.max_kl`") from None
    trial_ids = {c["id"] for c in trials}
    for entry in chosen.values():
        if isinstance(entry, dict):
            entry["cell"] = cell_name(entry["learning_rate"], entry["feature_factor"])
            entry["trial"] = entry["id"] in trial_ids
            if entry.get("fallback"):
                logger.warning("select_cell %s: %s", entry["id"], entry["reason"])
    selection = config["decoder"]["selection"]
    result = {**chosen, "policy": {"name": policy.name, **selection},
              "search": {"mode": config["decoder"]["search"], "selection_split": split, "n_grid_cells": len(grid),
                         "trials": {key: t["trials"] for key, t in searched["targets"].items()}},
              "skipped": skipped,
              "base": {key: base_cell.get(key) for key in ("lms", "kl", "perplexity", "damage", "probs_by_dataset",
                                                             "probs_ci_by_dataset", "class_feature_factors")}}
    write_json(summary, result)
    by_id = {"base": base_cell, **{c["id"]: c for c in grid + trials}}
    plot_probability_shifts(by_id, chosen, plot, experiment=config["name"], seed=seed,
                            lms_ratio=getattr(policy, "ratio", None))
    if tradeoff is not None:
        _plot_tradeoff(config, seed, base_cell, grid, trials, chosen, policy, split, tradeoff)


def _plot_tradeoff(config, seed, base_cell, grid, trials, chosen, policy, split, path) -> None:
    """The trade-off figure: per chosen key, every cell of its factors as (KL, LMS ratio, metric)."""
    from gradiend.evaluation.selection import admissible, is_finite_cell, objective, on_split
    from gradiend.plots.tradeoff import plot_tradeoff

    base_lms = float(base_cell["lms"])
    panels = {}
    for key, entry in chosen.items():
        if not isinstance(entry, dict) or "learning_rate" not in entry:
            continue
        direction = "strengthen" if entry["strengthen"] else "weaken"
        needed, metric = objective(entry["target_class"], direction, base_cell["class_feature_factors"])
        points = []
        for kind, group in (("grid", grid), ("trial", trials)):
            for cell in group:
                if float(cell["feature_factor"]) in {float(f) for f in needed} and is_finite_cell(cell):
                    on_split_metric = lambda c, m=metric: m(on_split(c, split))  # noqa: E731
                    points.append({"id": cell["id"], "kind": kind, "kl": cell.get("kl"),
                                   "lms_ratio": float(cell["lms"]) / base_lms if base_lms > 0 else math.nan,
                                   "metric": on_split_metric(cell),
                                   "admissible": admissible(policy, cell, on_split_metric, base_lms)})
        label = f"P({entry['target_class']})" if entry["strengthen"] else f"1 − P({entry['target_class']})"
        panels[key] = {"points": points, "chosen": entry["id"], "base_metric": metric(on_split(base_cell, split)),
                       "metric_label": f"{label} ({split} rows)"}
    plot_tradeoff(panels, path, lms_ratio=getattr(policy, "ratio", None), max_kl=getattr(policy, "max_kl", None),
                  title=f"{config['name']}, seed {seed}: target shift against damage")


def rewrite_models(config: dict, *, targets: Sequence[str], model: str, decoder_summary: str,
                   output_dirs: Sequence[str]) -> None:
    """Apply the selected cell of each target to the base model and save it, with one loaded model:
    every target in one job (rule ``rewrite_models``), or one a job on a cluster (``rewrite_model``).
    ``output_dirs[i]`` is the rewrite for ``targets[i]``, each from a copy of the unmodified base model.

    A target is a class id (strengthen) or ``<class>_weaken`` (weaken).
    Config: ``base_model, base_model_path, demo_model, trust_remote_code, data.target_classes,
    training.{torch_dtype, max_length, device_map, gradiend_device}`` (``demo_model``: the name when the
    base model is a demo model this pipeline built, which the card then says).
    Reads: ``model`` (best GRADIEND checkpoint), ``decoder_summary`` (the entry of each target).
    Writes each of ``output_dirs``: a Hugging Face model folder (config, safetensors weights, tokenizer)
    plus ``README.md`` (model card: base model, target, learning rate, feature factor, LMS before/after)
    and ``gradiend_rewrite.json`` (the same facts for programs).
    """
    from gradiend.evaluation.model_card import save_rewritten_model
    from gradiend.model.base_source import describe_base_model
    from gradiend.util.io import read_json

    if len(targets) != len(output_dirs) or not targets:
        raise ValueError(f"rewrite_models: one output folder per target, got {len(output_dirs)} for {list(targets)}")
    summary = read_json(decoder_summary)
    have = sorted(k for k, v in summary.items() if isinstance(v, dict) and "learning_rate" in v)
    for target in targets:
        if target not in have:
            raise KeyError(f"rewrite target {target!r} is not in {decoder_summary}; available: {have}")
    mwg = with_checkpoint(config, load_base(config), model)
    mwg.base_model_id = config["base_model"]  # what the user configured, not where it was cached
    built_by = "this pipeline's `demo_model` rule" if config.get("demo_model") else None
    base = describe_base_model(config["base_model"], config["base_model_path"], built_by=built_by)
    c0, c1 = config["data"]["target_classes"]
    for target, output_dir in zip(targets, output_dirs):
        entry = summary[target]
        save_rewritten_model(mwg, entry, output_dir, feature_description=f"`{c0}` vs `{c1}` ({config['name']})",
                             base=base)
        logger.info("rewrote %s: lr %s, ff %s -> %s", target, entry["learning_rate"], entry["feature_factor"],
                    output_dir)
