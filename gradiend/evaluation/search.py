"""Adaptive decoder search: refine the rewrite strength around the best grid cell, under a damage bound.

A rewrite is ``θ + lr·dec(ff)`` with ``dec(ff) = ff·w + b``, so the learning rate scales the whole
update and the feature factor's size sets how much of it is the feature direction ``w``. The search
walks *rays*: one per configured feature-factor scale ``s`` (``ff = s · sign``, the sign that
strengthens or weakens the target), the learning rate free along each. On a ray it keeps the best
admissible point (largest metric among points within the bound, ties to the smaller learning rate)
and proposes

* the geometric midpoint between that point and the next larger learning rate tried on the ray
  (the bound, or the metric's peak, lies in between: a bisection);
* twice the learning rate when nothing larger was tried (expand);
* half the smallest learning rate when nothing on the ray is admissible (contract);
* nothing once the bracket is narrower than :data:`RELATIVE_TOLERANCE` (the ray has converged).

Each ray starts from the grid's cells at its feature factor (a grid point is never scored again); a
ray with none starts at ``best learning rate of the scale-1 ray / s`` (the same size of ``w``'s share). Trials go to the rays in turn.
Every proposal depends only on the trials before it, never on the budget: the first ``n`` trials of
a budget of ``m > n`` are the ``n`` trials of budget ``n``, so a rerun with more trials reuses them.
Learning rates are rounded to 4 significant digits (readable cell names, exact reuse).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

RELATIVE_TOLERANCE = 0.01
SIGNIFICANT_DIGITS = 4


def rounded(learning_rate: float) -> float:
    """A learning rate with :data:`SIGNIFICANT_DIGITS` significant digits."""
    return float(f"{learning_rate:.{SIGNIFICANT_DIGITS}g}")


@dataclass
class Ray:
    """The points tried at one feature factor: learning rate → (admissible, metric)."""

    feature_factor: float
    start: float
    points: dict[float, tuple[bool, float]] = field(default_factory=dict)

    def best(self) -> float | None:
        """The admissible learning rate with the largest metric (ties: the smaller rate)."""
        admissible = sorted(lr for lr, (ok, _) in self.points.items() if ok)
        return max(admissible, key=lambda lr: self.points[lr][1], default=None)

    def proposal(self) -> float | None:
        """The next learning rate to try on this ray, or None when it has converged."""
        if not self.points:
            return rounded(self.start)
        best = self.best()
        if best is None:
            return self._new(min(self.points) / 2)
        above = [lr for lr in self.points if lr > best]
        if not above:
            return self._new(best * 2)
        upper = min(above)
        if upper / best <= 1 + RELATIVE_TOLERANCE:
            return None
        return self._new(math.sqrt(best * upper))

    def _new(self, learning_rate: float) -> float | None:
        value = rounded(learning_rate)
        return None if value in self.points or value <= 0 else value


def search(grid: Sequence[Mapping], *, sign: float, scales: Sequence[float], trials: int,
           admits: Callable[[Mapping], bool], metric: Callable[[Mapping], float],
           score: Callable[[float, float], Mapping]) -> list[Mapping]:
    """Run at most ``trials`` trials for one target and direction; the trial cells in the order run.

    ``grid``: the grid's cells (finite or not; those at a ray's feature factor seed it); ``admits(cell)``: whether a
    cell keeps the damage bound (a non-finite cell never does); ``metric(cell)``: what to maximise (on
    the selection split); ``score(lr, ff)``: a cell for that rewrite (computed or cached).
    """
    if trials < 1:
        raise ValueError(f"the trial budget must be at least 1, got {trials}")
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"feature-factor scales must be positive, got {list(scales)}")
    def seeds(feature_factor: float) -> dict[float, tuple[bool, float]]:
        return {float(c["learning_rate"]): (bool(admits(c)), float(metric(c))) for c in grid
                if float(c["feature_factor"]) == feature_factor}

    unit = Ray(float(sign), start=1.0, points=seeds(float(sign)))  # start: that of an empty grid
    origin = unit.best() or min(unit.points, default=unit.start)
    rays = [unit if float(s) == 1.0 else Ray(float(sign) * s, start=origin / s, points=seeds(float(sign) * s))
            for s in scales]
    run: list[Mapping] = []
    turn = 0
    while len(run) < trials:
        for offset in range(len(rays)):
            ray = rays[(turn + offset) % len(rays)]
            learning_rate = ray.proposal()
            if learning_rate is not None:
                break
        else:
            break  # every ray has converged
        cell = score(learning_rate, ray.feature_factor)
        ray.points[learning_rate] = (bool(admits(cell)), float(metric(cell)))
        run.append(cell)
        turn = (turn + offset + 1) % len(rays)
    return run
