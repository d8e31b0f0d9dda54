"""Stages after training: encoder evaluation of each seed, and the choice of the best seed."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from gradiend.stages.models import evaluation_parts, load_base, read_tables, target_classes, with_checkpoint
from gradiend.util.logging import get_logger

logger = get_logger("gradiend.stages")


def evaluate_encoders(config: dict, *, seeds: Sequence[int], models: Sequence[str], training: str, neutral: str,
                      metrics: Sequence[str], encoded: Sequence[str], distributions: Sequence[str]) -> None:
    """Encode the test split and neutral texts with each seed's GRADIEND (batched JVP encoding), all
    with one loaded base model: every seed in one job (rule ``evaluate_encoders``), or one seed a job on
    a cluster (``evaluate_encoder``). Encoding never changes the base model's weights, so each seed
    sees the model its own job would load.

    Config: ``base_model, base_model_path, trust_remote_code, data.target_classes,
    data.neutral.additional_excluded_words, training.{eval_batch_size, encoder_eval_max_size,
    seed_selection_eval_max_size, torch_dtype, max_length, device_map, gradiend_device}``.
    Reads: ``models[i]`` (the checkpoint of ``seeds[i]`` from :func:`train_seed`), ``training``
    (``test`` and ``validation`` splits), ``neutral``. Rows are sampled with a fixed seed, so every
    seed sees the same rows.
    Writes, per seed (the i-th outputs are those of ``seeds[i]``):
      - ``metrics``: JSON, every metric of ``gradiend.evaluation.encoder_metrics`` on the test split
        (``correlation`` = Pearson of encoding vs. ±1 label, ``accuracy``, ``mean_by_class`` by
        label, ``mean_by_type``, ...) plus ``validation_correlation`` (what :func:`select_seed`
        ranks by), ``n_validation``, ``mean_by_target_class`` ({class: mean}), ``neutral_mean``,
        ``n_by_type`` and ``seed``;
      - ``encoded``: Parquet, one row per encoded text (``gradiend.evaluation.encoder.COLUMNS``:
        ``type, split, masked, factual, alternative, factual_class, alternative_class, transition,
        source_id, source_token, label, encoded``), test and neutral rows;
      - ``distributions``: PNG of the encoded values per class and for neutral texts.
    """
    if not len(seeds) == len(models) == len(metrics) == len(encoded) == len(distributions) or not len(seeds):
        raise ValueError(f"evaluate_encoders: one model and one set of outputs per seed, got {len(seeds)} seeds, "
                         f"{len(models)} models, {len(metrics)}/{len(encoded)}/{len(distributions)} outputs")
    tables = read_tables(training, neutral)
    base = load_base(config)
    for outputs in zip(seeds, models, metrics, encoded, distributions):
        _evaluate_seed(config, base, tables, *outputs)


def _evaluate_seed(config: dict, base, tables, seed: int, model: str, metrics: str, encoded: str,
                   distributions: str) -> None:
    from gradiend.data.tables import NEUTRAL_TYPES
    from gradiend.evaluation.encoder import EncoderEvaluator
    from gradiend.plots.encoder import plot_encoder_distributions
    from gradiend.util.io import write_json, write_parquet

    table, neutral_table = tables
    training_config = config["training"]
    mwg = with_checkpoint(config, base, model)
    parts = evaluation_parts(config, mwg, table, neutral_table,
                             encoder_max_size=training_config["encoder_eval_max_size"])
    evaluator = EncoderEvaluator(parts)
    result = evaluator.evaluate("test", return_df=True)
    frame = result.pop("encoder_df")
    validation_correlation, n_validation = evaluator.validation_correlation(
        training_config["seed_selection_eval_max_size"])
    neutral_rows = frame[frame["type"].isin(NEUTRAL_TYPES)]
    by_label = result.get("mean_by_class", {})  # label +1 rows are c0's, -1 rows c1's
    result.update({
        "seed": int(seed),
        "validation_correlation": validation_correlation,
        "n_validation": n_validation,
        "mean_by_target_class": dict(zip(target_classes(config), (by_label.get("1"), by_label.get("-1")))),
        "neutral_mean": float(neutral_rows["encoded"].mean()) if len(neutral_rows) else None,
        "n_by_type": result["sample_counts"]["by_type"],
    })
    write_parquet(frame, encoded)
    write_json(metrics, result)
    plot_encoder_distributions(frame, distributions, correlation=result["correlation"], experiment=config["name"],
                               seed=int(seed))
    logger.info("seed %s: test correlation %.4f, validation correlation %.4f", seed, result["correlation"],
                result["validation_correlation"])


def _seed_runs(seeds: Sequence[int], models: Sequence[str], metrics: Sequence[str]):
    from gradiend.training.history import load_training_stats
    from gradiend.training.seeds import SeedRun
    from gradiend.util.io import read_json

    if not len(seeds) == len(models) == len(metrics):
        raise ValueError(f"select_seed needs one model and one metrics file per seed: {len(seeds)} seeds, "
                         f"{len(models)} models, {len(metrics)} metrics files")
    runs, scores = [], {}
    for seed, model_dir, metrics_file in zip(seeds, models, metrics):
        stats = load_training_stats(model_dir)
        if stats is None:
            raise FileNotFoundError(f"seed {seed}: {model_dir} has no training.json")
        info = stats["convergence_info"]
        encoder = read_json(metrics_file)
        runs.append(SeedRun(int(seed), bool(info["converged"]), info.get("best_correlation"),
                            eval_score=encoder["validation_correlation"], model_dir=str(model_dir),
                            reason=info.get("reason", "")))
        scores[str(seed)] = {
            "converged": bool(info["converged"]), "convergence_reason": info.get("reason", ""),
            "training_score": info.get("best_correlation"), "best_step": info.get("best_step"),
            "validation_correlation": encoder["validation_correlation"],
            "test_correlation": encoder["correlation"],
        }
    return runs, scores


def select_seed(config: dict, *, seeds: Sequence[int], models: Sequence[str], metrics: Sequence[str],
                choice: str, best_model: str) -> None:
    """Pick the best seed among the convergent ones and copy its checkpoint.

    Config: ``seeds, training.{min_convergent_seeds, convergent_score_threshold,
    convergent_mean_by_class_threshold, fail_on_non_convergence}``.
    Reads: for each seed (same order as ``seeds``) its ``models[i]/training.json`` (converged or
    not) and ``metrics[i]`` (its ``validation_correlation`` ranks the seeds: largest absolute value
    wins, ties go to the earlier seed).
    Writes:
      - ``choice``: JSON ``{"seed": s, "reason": text, "converged": bool, "convergent_seeds": [...],
        "scores": {seed: {converged, convergence_reason, training_score, best_step,
        validation_correlation, test_correlation}}, "report": {...}}`` (``report`` is
        ``gradiend.training.seeds.build_seed_report``);
      - ``best_model``: a copy of the chosen seed's checkpoint folder.
    Raises when fewer than ``min_convergent_seeds`` converged and ``fail_on_non_convergence`` is
    set; otherwise falls back to the best score and says so in ``reason``.
    """
    from gradiend.training.seeds import build_seed_report, check_enough_convergent, select_best_seed
    from gradiend.util.io import atomic_dir, write_json

    settings = config["training"]
    runs, scores = _seed_runs(seeds, models, metrics)
    check_enough_convergent(runs, settings["min_convergent_seeds"], settings["fail_on_non_convergence"])
    best, strategy = select_best_seed(runs)
    convergent = [r.seed for r in runs if r.converged]
    needed = settings["min_convergent_seeds"]
    if strategy == "best_convergent":
        reason = (f"seed {best.seed} has the largest |validation correlation| "
                  f"({best.selection_score:.4f}) of the {len(convergent)} convergent seed(s) {convergent}")
        if len(convergent) < needed:
            reason += f"; fewer than min_convergent_seeds={needed} converged"
    else:
        reason = (f"no seed converged (of {[r.seed for r in runs]}); seed {best.seed} has the largest "
                  f"|validation correlation| ({best.selection_score:.4f}) and is used anyway")
    report = build_seed_report(
        runs, max_seeds=len(runs), min_convergent_seeds=needed,
        score_threshold=settings["convergent_score_threshold"],
        mean_by_class_threshold=settings["convergent_mean_by_class_threshold"], early_stop_reason=None)
    report["runs"] = [{k: v for k, v in run.items() if k != "model_dir"} for run in report["runs"]]
    write_json(choice, {"seed": best.seed, "reason": reason, "strategy": strategy, "converged": best.converged,
                        "convergent_seeds": convergent, "scores": scores, "report": report})
    with atomic_dir(best_model) as tmp:
        shutil.copytree(Path(best.model_dir), tmp, dirs_exist_ok=True)
    logger.info("chose seed %d: %s", best.seed, reason)
