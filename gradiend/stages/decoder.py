"""Decoder stages: score grid cells (with a cache), choose the cells, write the rewritten models."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Mapping, Sequence

from gradiend.stages.models import (evaluation_parts, load_base, read_tables, target_classes, with_checkpoint,
                                    without_gradiend)
from gradiend.util.logging import get_logger

logger = get_logger("gradiend.stages")


def _evaluator(config: dict, model: str | None, training: str, neutral: str):
    """A :class:`DecoderEvaluator` over the loaded base model (with the checkpoint ``model``, if given)."""
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
    return DecoderEvaluator(parts)


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
    lms_max_samples}``.
    Reads: ``model`` (best checkpoint; None for ``base`` alone), ``training`` (``test`` split),
    ``neutral`` (LMS texts).
    Writes each of ``cells``: JSON, the cell of ``DecoderEvaluator.evaluate_cell`` / ``evaluate_base``:
    ``{"id", "is_base", "learning_rate", "feature_factor", "probs_by_dataset": {dataset class:
    {class: mean P}}, "n_rows_by_dataset", "lms", "lms_details", "class_feature_factors",
    "finite", "part"}``; ``"id"`` is the cell's name.
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

    facts = {"version": __version__, "config": config, "cell": name,
             "inputs": {k: v for k, v in inputs.items() if with_checkpoint or k != "checkpoint"}}
    return hashlib.sha256(to_json_text(facts).encode()).hexdigest()


def select_cell(config: dict, *, base: str, cells: Sequence[str], seed_choice: str, summary: str, plot: str) -> None:
    """Choose, per target class and direction, the grid cell to rewrite with.

    Config: ``data.target_classes, decoder.selection.{policy, ratio}`` (``lms_threshold``: best
    metric among cells with LMS >= ratio·base LMS, else the smallest learning rate;
    ``lms_times_metric``: best metric·LMS).
    Reads: ``base`` (the base cell) and ``cells`` (every other cell; each file names its own
    learning rate and feature factor, and the feature factor that strengthens each class);
    ``seed_choice`` (``best/seed.json``: the seed whose GRADIEND rewrote, named in the plot's title).
    Writes:
      - ``summary``: JSON ``{"<class>": {...}, "<class>_weaken": {...}}`` for both target classes
        (a direction whose feature factor is not in the grid is listed under ``skipped``), each
        entry from ``gradiend.evaluation.selection.summarize_cells`` (``value``,
        ``base_value``, ``learning_rate``, ``feature_factor``, ``lms``, ``base_lms``,
        ``strengthen``, ``target_class``, ``fallback``, ``reason``, ``id``, ...) plus ``cell`` (the
        workflow's cell name); also ``"base"`` (LMS and probabilities of the unmodified model),
        ``"policy"`` and ``"non_finite_cells"``;
      - ``plot``: PNG of the probability shifts and LMS over the learning rates
        (:func:`gradiend.plots.decoder.plot_probability_shifts`).
    """
    from gradiend.cells import cell_name, rewrite_key
    from gradiend.evaluation.selection import LMSThresholdPolicy, LMSTimesMetricPolicy, summarize_cells
    from gradiend.plots.decoder import plot_probability_shifts
    from gradiend.util.io import read_json, write_json

    base_cell = read_json(base)
    grid = [read_json(path) for path in cells]
    seed = read_json(seed_choice)["seed"]
    selection = config["decoder"]["selection"]  # the schema allows these two policies
    policy = (LMSThresholdPolicy(ratio=float(selection["ratio"])) if selection["policy"] == "lms_threshold"
              else LMSTimesMetricPolicy())
    factors = base_cell["class_feature_factors"]
    in_grid = {float(cell["feature_factor"]) for cell in grid}
    chosen: dict = {}
    skipped = []
    for cls in target_classes(config):
        for direction, needed in (("strengthen", [factors[cls]]),
                                  ("weaken", [f for other, f in factors.items() if other != cls])):
            if not in_grid & {float(f) for f in needed}:
                skipped.append(rewrite_key(cls, weaken=direction == "weaken"))
                continue
            chosen.update(summarize_cells(grid, base_cell, factors, [cls], (direction,), policy))
    for entry in chosen.values():
        if isinstance(entry, dict):
            entry["cell"] = cell_name(entry["learning_rate"], entry["feature_factor"])
            if entry.get("fallback"):
                logger.warning("select_cell %s: %s", entry["id"], entry["reason"])
    result = {**chosen, "policy": {"name": policy.name, **selection},
              "skipped": skipped,
              "base": {"lms": base_cell["lms"], "probs_by_dataset": base_cell["probs_by_dataset"],
                       "class_feature_factors": base_cell["class_feature_factors"]}}
    write_json(summary, result)
    by_id = {"base": base_cell, **{c["id"]: c for c in grid}}
    plot_probability_shifts(by_id, chosen, plot, experiment=config["name"], seed=seed,
                            lms_ratio=getattr(policy, "ratio", None))


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
