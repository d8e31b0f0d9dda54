"""When a run has learned the feature: best checkpoint, sign normalisation, convergence rule.

A run converged when, at its best step (largest |correlation| of encoded value and ±1 label, after
step 0), |correlation| and each target class's |mean encoded value| reach their thresholds and
the two class means have opposite signs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from gradiend.model.activations import ODD_ACTIVATIONS

#: correlation below which the GRADIEND is flipped so that the first target class encodes to +1
NORMALISE_BELOW = -0.6


def should_normalise(correlation: float, enabled: bool = True, latent_dim: int = 1,
                     activation_encoder: str = "tanh") -> bool:
    """Invert the encoding when a 1-d GRADIEND with an odd encoder activation has learned the
    feature with the sign reversed (other activations cannot be flipped without changing it)."""
    return (enabled and latent_dim == 1 and activation_encoder in ODD_ACTIVATIONS
            and math.isfinite(correlation) and correlation < NORMALISE_BELOW)


class BestCheckpoint:
    """Tracks the evaluation with the largest |correlation| at a step > 0 (ties keep the earlier)."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.correlation: float | None = None

    def update(self, step: int, correlation: float) -> bool:
        """Record one evaluation; True when it is a new best (the caller then saves the model)."""
        better = step > 0 and math.isfinite(correlation) and (
            self.correlation is None or abs(correlation) > abs(self.correlation))
        if better:
            self.step, self.correlation = step, correlation
        return better


@dataclass(frozen=True)
class ConvergenceInfo:
    converged: bool
    reason: str
    best_step: int | None
    best_correlation: float | None
    mean_by_class: dict
    score_threshold: float
    mean_by_class_threshold: float

    def to_dict(self) -> dict:
        return asdict(self)


def assess_convergence(best_step: int | None, best_correlation: float | None,
                       mean_by_class: Mapping[str, float], target_classes: Sequence[str],
                       score_threshold: float = 0.5, mean_by_class_threshold: float = 0.5) -> ConvergenceInfo:
    """The convergence rule on a run's best evaluation (only the two ``target_classes`` are judged)."""
    means = {c: mean_by_class.get(c) for c in target_classes}

    def info(converged: bool, reason: str) -> ConvergenceInfo:
        return ConvergenceInfo(converged, reason, best_step, best_correlation, dict(means),
                               score_threshold, mean_by_class_threshold)

    if best_step is None or best_step <= 0 or best_correlation is None:
        return info(False, "no evaluation after step 0")
    if abs(best_correlation) < score_threshold:
        return info(False, f"|correlation| {abs(best_correlation):.4f} < {score_threshold}")
    missing = [c for c, m in means.items() if m is None or not math.isfinite(m)]
    if missing:
        return info(False, f"no mean encoded value for class(es) {missing}")
    weakest = min(means, key=lambda c: abs(means[c]))
    if abs(means[weakest]) < mean_by_class_threshold:
        return info(False, f"|mean| of class {weakest!r} {abs(means[weakest]):.4f} < {mean_by_class_threshold}")
    first, second = (means[c] for c in target_classes[:2])
    if first * second >= 0:
        return info(False, "the class means do not have opposite signs")
    return info(True, "converged")
