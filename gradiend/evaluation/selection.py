"""Choosing a decoder cell: selection policies and per-class summaries.

A *cell* is one rewrite ``θ + lr·dec(ff)`` scored by the decoder evaluator: a dict with at least
``learning_rate``, ``feature_factor``, ``lms`` and ``probs_by_dataset`` (``{dataset class: {class:
P(class tokens)}}``, dataset = the factual class of the rows). For target class ``C``:

* strengthen (key ``"C"``): cells with C's strengthening feature factor, metric = P(C) on the rows
  of the other class (docs/design.md §4);
* weaken (key ``"C_weaken"``): cells with the other class's feature factor, metric = 1 − P(C) on C's
  own rows.

A cell whose probability or LMS is NaN/inf stays in the grid with ``finite: False`` and is never a
candidate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

from gradiend.cells import cell_name, rewrite_key


def is_finite_cell(cell: Mapping) -> bool:
    """True when the cell's LMS and every probability are finite numbers."""
    values = [cell.get("lms"), *(p for probs in cell.get("probs_by_dataset", {}).values() for p in probs.values())]
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


@dataclass(frozen=True)
class Candidate:
    key: str
    learning_rate: float
    feature_factor: float
    lms: float
    metric: float


@dataclass(frozen=True)
class Selection:
    candidate: Candidate
    fallback: bool = False
    reason: str = ""


class SelectionPolicy(Protocol):
    name: str

    def select(self, candidates: Sequence[Candidate], base_lms: float) -> Selection: ...


def _by_learning_rate(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Ascending |lr|, so that among equal metrics the gentlest rewrite wins."""
    return sorted(candidates, key=lambda c: (abs(c.learning_rate), c.learning_rate))


@dataclass(frozen=True)
class LMSThresholdPolicy:
    """Best metric among cells that keep ``lms ≥ ratio · base_lms``; none → smallest non-zero |lr|."""

    ratio: float = 0.99
    name: str = "lms_threshold"

    def select(self, candidates: Sequence[Candidate], base_lms: float) -> Selection:
        ordered = _by_learning_rate(candidates)
        passing = [c for c in ordered if c.lms >= self.ratio * base_lms]
        if passing:
            best = max(passing, key=lambda c: c.metric)  # max keeps the first (smallest |lr|) on ties
            return Selection(best, reason=f"best metric with lms >= {self.ratio} * base_lms")
        nonzero = [c for c in ordered if c.learning_rate != 0] or ordered
        return Selection(
            nonzero[0], fallback=True,
            reason=f"no cell kept lms >= {self.ratio} * base_lms ({base_lms:.4g}); took the smallest |lr|",
        )


@dataclass(frozen=True)
class LMSTimesMetricPolicy:
    """Cell with the largest ``metric · lms``."""

    name: str = "lms_times_metric"

    def select(self, candidates: Sequence[Candidate], base_lms: float) -> Selection:
        best = max(_by_learning_rate(candidates), key=lambda c: c.metric * c.lms)
        return Selection(best, reason="largest metric * lms")


def strengthen_metric(cell: Mapping, target_class: str, other_classes: Sequence[str]) -> float:
    """Mean P(target class) on the rows of the other class(es)."""
    probs = cell["probs_by_dataset"]
    return sum(probs[o][target_class] for o in other_classes) / len(other_classes)


def weaken_metric(cell: Mapping, target_class: str) -> float:
    """1 − P(target class) on the target class's own rows."""
    return 1.0 - cell["probs_by_dataset"][target_class][target_class]


def _cell_id(cell: Mapping) -> str:
    return cell.get("id") or cell_name(cell["learning_rate"], cell["feature_factor"])


def _candidates(cells: Sequence[Mapping], factors: Sequence[float], metric) -> tuple[list[Candidate], int]:
    """The finite cells of ``factors`` (in that order) as candidates, and how many were not finite."""
    matching = [c for f in factors for c in cells
                if not c.get("is_base") and float(c["feature_factor"]) == float(f)]
    finite = [c for c in matching if is_finite_cell(c)]
    candidates = [Candidate(_cell_id(c), float(c["learning_rate"]), float(c["feature_factor"]),
                            float(c["lms"]), float(metric(c))) for c in finite]
    return candidates, len(matching) - len(finite)


def summarize_cells(
    cells: Mapping[str, Mapping] | Sequence[Mapping],
    base: Mapping,
    class_feature_factors: Mapping[str, float],
    target_classes: Sequence[str] | None = None,
    directions: Sequence[str] = ("strengthen", "weaken"),
    selector: SelectionPolicy | None = None,
) -> dict:
    """Chosen cell per target class and direction, plus the cells left out as non-finite.

    ``class_feature_factors`` maps every class of the pair to the feature factor that strengthens
    it; weakening C uses the factors of the other classes.
    """
    selector = selector or LMSThresholdPolicy()
    cell_list = list(cells.values()) if isinstance(cells, Mapping) else list(cells)
    classes = list(class_feature_factors)
    targets = list(target_classes) if target_classes is not None else classes
    unknown = [c for c in targets if c not in class_feature_factors]
    if unknown:
        raise ValueError(f"unknown target class {unknown[0]!r}; the model's classes are {classes}")
    bad = [d for d in directions if d not in ("strengthen", "weaken")]
    if bad:
        raise ValueError(f"unknown direction {bad[0]!r}; expected 'strengthen' or 'weaken'")
    if not is_finite_cell(base):
        raise ValueError(f"the base cell is not finite (lms={base.get('lms')}); the unmodified model cannot be scored")
    base_lms = float(base["lms"])
    summary: dict = {}
    for target in targets:
        others = [c for c in classes if c != target]
        for direction in directions:
            if direction == "strengthen":
                factors = [class_feature_factors[target]]
                metric = lambda cell, t=target, o=others: strengthen_metric(cell, t, o)  # noqa: E731
            else:
                factors = sorted({class_feature_factors[o] for o in others})
                metric = lambda cell, t=target: weaken_metric(cell, t)  # noqa: E731
            candidates, excluded = _candidates(cell_list, factors, metric)
            if not candidates:
                problem = (f"its {excluded} cell(s) are all non-finite" if excluded
                           else "the grid has no cell with that feature factor")
                raise ValueError(f"no finite decoder cell to {direction} class {target!r} "
                                 f"(feature factor(s) {factors}): {problem}")
            chosen = selector.select(candidates, base_lms)
            summary[rewrite_key(target, weaken=direction == "weaken")] = {
                "value": chosen.candidate.metric,
                "base_value": metric(base),
                "feature_factor": chosen.candidate.feature_factor,
                "learning_rate": chosen.candidate.learning_rate,
                "id": chosen.candidate.key,
                "lms": chosen.candidate.lms,
                "base_lms": base_lms,
                "strengthen": direction == "strengthen",
                "target_class": target,
                "fallback": chosen.fallback,
                "policy": selector.name,
                "reason": chosen.reason,
                "n_candidates": len(candidates),
                "n_non_finite": excluded,
                "part": base.get("part", "decoder"),
            }
    summary["non_finite_cells"] = sorted(_cell_id(c) for c in cell_list
                                         if not c.get("is_base") and not is_finite_cell(c))
    return summary


def summary_entry(decoder_results: Mapping, target_class: str, increase_target_probabilities: bool = True) -> dict:
    """The summary of ``target_class`` (strengthen) or ``target_class + "_weaken"``, with a clear error."""
    key = rewrite_key(target_class, weaken=not increase_target_probabilities)
    if key not in decoder_results:
        have = sorted(k for k, v in decoder_results.items() if isinstance(v, Mapping) and "learning_rate" in v)
        hint = "" if increase_target_probabilities else (
            " (run evaluate_decoder(increase_target_probabilities=False) for weaken results)")
        raise KeyError(f"decoder results have no entry {key!r}; available: {have}{hint}")
    return dict(decoder_results[key])
