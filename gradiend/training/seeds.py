"""Several seeds, one GRADIEND: a run can miss the feature from an unlucky start, so seeds
``seed, seed+1, …`` (at most ``max_seeds``) run until ``min_convergent_seeds`` converged. The best
seed is the convergent one with the largest |selection score| (encoder correlation on held-out
rows); when none converged, the largest score overall, and the report says so.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from gradiend.util.io import atomic_dir, write_json
from gradiend.util.logging import get_logger

logger = get_logger(__name__)

SEED_REPORT_FILE = "seed_report.json"


@dataclass(frozen=True)
class SeedRun:
    """Outcome of one seed: ``training_score`` is the best in-training correlation; ``eval_score``, when
    present, a later encoder evaluation that selection uses instead."""

    seed: int
    converged: bool
    training_score: float | None
    eval_score: float | None = None
    model_dir: str | None = None
    reason: str = ""

    @property
    def selection_score(self) -> float | None:
        return self.eval_score if self.eval_score is not None else self.training_score

    def sort_key(self) -> float:
        score = self.selection_score
        return -math.inf if score is None or not math.isfinite(score) else abs(score)


def select_best_seed(runs: Sequence[SeedRun]) -> tuple[SeedRun, str]:
    """The best run and how it was chosen (``"best_convergent"`` or ``"best_non_convergent"``); ties
    go to the earlier seed."""
    if not runs:
        raise ValueError("no seed runs to select from")
    convergent = [r for r in runs if r.converged]
    pool, strategy = (convergent, "best_convergent") if convergent else (list(runs), "best_non_convergent")
    best = max(pool, key=lambda r: (r.sort_key(), -r.seed))
    return best, strategy


def build_seed_report(runs: Sequence[SeedRun], *, max_seeds: int, min_convergent_seeds: int | None,
                      score_threshold: float, mean_by_class_threshold: float,
                      early_stop_reason: str | None) -> dict:
    """The content of ``seed_report.json``: every run, which won and why."""
    best, strategy = select_best_seed(runs)
    convergent = [r.seed for r in runs if r.converged]
    return {
        "convergence_metric": "correlation",  # the only one (TrainingArguments.convergent_metric)
        "threshold": score_threshold,
        "convergent_mean_by_class_threshold": mean_by_class_threshold,
        "min_convergent_seeds": min_convergent_seeds,
        "max_seeds": max_seeds,
        "seeds_tried": [r.seed for r in runs],
        "convergent_count": len(convergent),
        "convergent_seeds": convergent,
        "best_seed": best.seed,
        "best_selection_score": best.selection_score,
        "best_seed_selection_strategy": strategy,
        "early_stop_reason": early_stop_reason,
        "runs": [{**asdict(r), "selection_score": r.selection_score} for r in runs],
    }


def run_seeds(train_one: Callable[[int], SeedRun], seeds: Iterable[int],
              min_convergent_seeds: int | None) -> tuple[list[SeedRun], str | None]:
    """Train seeds in order until ``min_convergent_seeds`` converged (None: all); returns the runs and
    why the loop stopped early (None when every seed ran)."""
    seeds = list(seeds)
    runs: list[SeedRun] = []
    for seed in seeds:
        run = train_one(seed)
        runs.append(run)
        logger.info("seed %d: converged=%s score=%s %s", seed, run.converged, run.selection_score, run.reason)
        count = sum(r.converged for r in runs)
        if min_convergent_seeds is not None and count >= min_convergent_seeds and len(runs) < len(seeds):
            return runs, f"{count} convergent seed(s) reached min_convergent_seeds={min_convergent_seeds}"
    return runs, None


def train_seeds(train_one: Callable[[int, Path], SeedRun], args, seeds_dir: Path,
                final_dir: Path | None) -> tuple[list[SeedRun], dict, SeedRun, Path]:
    """``train_one(seed, folder)`` into ``seeds_dir/seed_<s>`` until enough converged; writes
    ``seed_report.json`` and copies the best checkpoint to ``final_dir`` (when given).

    Returns the runs, the report, the best run and the folder holding the best checkpoint.
    """
    runs, early = run_seeds(lambda seed: train_one(seed, seeds_dir / f"seed_{seed}"),
                            range(args.seed, args.seed + args.max_seeds), args.min_convergent_seeds)
    report = build_seed_report(
        runs, max_seeds=args.max_seeds, min_convergent_seeds=args.min_convergent_seeds,
        score_threshold=args.convergent_score_threshold,
        mean_by_class_threshold=args.convergent_mean_by_class_threshold, early_stop_reason=early)
    write_json(seeds_dir / SEED_REPORT_FILE, {**report, "runs": [
        {**r, "model_dir": Path(r["model_dir"]).name} for r in report["runs"]]})
    best, _ = select_best_seed(runs)
    best_dir = Path(best.model_dir)
    if final_dir is not None:
        with atomic_dir(final_dir) as tmp:
            shutil.copytree(best_dir, tmp, dirs_exist_ok=True)
    return runs, report, best, final_dir or best_dir


def check_enough_convergent(runs: Sequence[SeedRun], min_convergent_seeds: int | None, fail: bool) -> None:
    """Fail loudly (when asked) if too few seeds converged; otherwise warn."""
    needed = min_convergent_seeds or 1
    count = sum(r.converged for r in runs)
    if count >= needed:
        return
    message = (f"only {count} of {len(runs)} seed(s) converged (seeds {[r.seed for r in runs]}); "
               f"{needed} required")
    if fail:
        raise RuntimeError(message + " (fail_on_non_convergence=True)")
    logger.warning(message + "; continuing with the best non-convergent seed")
