"""``training.json`` next to every GRADIEND checkpoint: only what the seed determines, so two CPU
runs with one seed write identical files; wall-clock timings go to ``timing.json`` beside it."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gradiend.util.io import read_json

TRAINING_FILE = "training.json"
TIMING_FILE = "timing.json"
FORMAT_VERSION = 1


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass
class EvalRecord:
    """One in-training encoder evaluation."""

    step: int
    correlation: float
    mean_by_class: dict[str, float]
    n_by_class: dict[str, int]
    train_loss: float | None
    encoder_norm: float
    decoder_norm: float
    normalised: bool = False

    def negate(self) -> None:
        """The GRADIEND was inverted right after this evaluation: report it in the new sign."""
        self.correlation = -self.correlation
        self.mean_by_class = {c: -m for c, m in self.mean_by_class.items()}
        self.normalised = True

    def to_dict(self) -> dict:
        """JSON-ready, in field order; NaN and infinity written as null."""
        return {**asdict(self), "correlation": _finite_or_none(self.correlation),
                "mean_by_class": {c: _finite_or_none(m) for c, m in self.mean_by_class.items()},
                "train_loss": _finite_or_none(self.train_loss), "encoder_norm": float(self.encoder_norm),
                "decoder_norm": float(self.decoder_norm)}


@dataclass
class TrainingHistory:
    """Per-step losses and per-evaluation records of one run."""

    target_classes: tuple[str, str]
    losses: list[float] = field(default_factory=list)
    evaluations: list[EvalRecord] = field(default_factory=list)

    def mean_loss_since_last_eval(self) -> float | None:
        last = self.evaluations[-1].step if self.evaluations else 0
        window = self.losses[last:]
        return sum(window) / len(window) if window else None

    def record_at(self, step: int | None) -> EvalRecord | None:
        return next((record for record in self.evaluations if record.step == step), None)

    def to_dict(self, best_step: int | None, **fields: Any) -> dict:
        """The run's evaluations, losses and best step, plus ``fields`` (convergence, arguments, …)."""
        best = self.record_at(best_step)
        return {
            "format_version": FORMAT_VERSION,
            "target_classes": list(self.target_classes),
            "history": [r.to_dict() for r in self.evaluations],
            "losses": [_finite_or_none(x) for x in self.losses],
            "best": best.to_dict() if best is not None else None,
            "best_step": best_step,
            **fields,
        }


def load_training_stats(model_dir: str | Path) -> dict | None:
    """``training.json`` of a checkpoint folder, or None when the folder has none."""
    path = Path(model_dir) / TRAINING_FILE
    return read_json(path) if path.is_file() else None
