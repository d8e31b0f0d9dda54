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

The metric is read on the test rows (``probs_by_dataset``), or with ``split="validation"`` on the
cell's ``"validation"`` block (an adaptive search selects there); the entry's ``value`` is always
the test-split number, so the reported shift comes from rows the choice never saw.
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
    kl: float | None = None


class BoundNotMet(ValueError):
    """No candidate meets the damage bound of a policy that allows no fallback."""


@dataclass(frozen=True)
class Selection:
    candidate: Candidate
    fallback: bool = False
    reason: str = ""


class SelectionPolicy(Protocol):
    name: str

    def admits(self, candidate: Candidate, base_lms: float) -> bool: ...

    def select(self, candidates: Sequence[Candidate], base_lms: float) -> Selection: ...


def _by_learning_rate(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Ascending |lr|, so that among equal metrics the gentlest rewrite wins."""
    return sorted(candidates, key=lambda c: (abs(c.learning_rate), c.learning_rate))


@dataclass(frozen=True)
class LMSThresholdPolicy:
    """Best metric among cells that keep ``lms ≥ ratio · base_lms`` (and ``kl ≤ max_kl`` when set).

    No cell passing: without ``max_kl`` and not ``strict``, the smallest non-zero |lr| (flagged as a
    fallback); otherwise :class:`BoundNotMet`, naming the least damaging cell and its damage.
    """

    ratio: float = 0.99
    max_kl: float | None = None
    strict: bool = False
    name: str = "lms_threshold"

    def admits(self, candidate: Candidate, base_lms: float) -> bool:
        """Whether the candidate keeps the bound (a missing or non-finite KL never keeps a KL bound)."""
        if not candidate.lms >= self.ratio * base_lms:
            return False
        return self.max_kl is None or (candidate.kl is not None and candidate.kl <= self.max_kl)

    def bound(self, base_lms: float) -> str:
        text = f"lms >= {self.ratio} * base_lms ({self.ratio * base_lms:.4g})"
        return text if self.max_kl is None else f"{text} and kl <= {self.max_kl:g}"

    def excess(self, candidate: Candidate, base_lms: float) -> float:
        """How far the candidate is outside the bound: its worst relative violation (≤ 0 inside)."""
        threshold = self.ratio * base_lms
        excess = (threshold - candidate.lms) / threshold if threshold > 0 else -candidate.lms
        if self.max_kl is not None:
            kl = candidate.kl if candidate.kl is not None and math.isfinite(candidate.kl) else math.inf
            excess = max(excess, (kl - self.max_kl) / self.max_kl)
        return excess

    def select(self, candidates: Sequence[Candidate], base_lms: float) -> Selection:
        ordered = _by_learning_rate(candidates)
        passing = [c for c in ordered if self.admits(c, base_lms)]
        if passing:
            best = max(passing, key=lambda c: c.metric)  # max keeps the first (smallest |lr|) on ties
            return Selection(best, reason=f"best metric with {self.bound(base_lms)}")
        if self.strict or self.max_kl is not None:
            closest = min(ordered, key=lambda c: self.excess(c, base_lms))
            kl = "n/a" if closest.kl is None else f"{closest.kl:.4g}"
            raise BoundNotMet(f"none of the {len(ordered)} cell(s) meets {self.bound(base_lms)}; the least damaging "
                              f"is {closest.key} (lms {closest.lms:.4g}, kl {kl}, metric {closest.metric:.4g})")
        nonzero = [c for c in ordered if c.learning_rate != 0] or ordered
        return Selection(
            nonzero[0], fallback=True,
            reason=f"no cell kept lms >= {self.ratio} * base_lms ({base_lms:.4g}); took the smallest |lr|",
        )


@dataclass(frozen=True)
class LMSTimesMetricPolicy:
    """Cell with the largest ``metric · lms``."""

    name: str = "lms_times_metric"

    def admits(self, candidate: Candidate, base_lms: float) -> bool:
        """Every cell: this policy trades metric against LMS and has no bound."""
        return True

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


def metric_interval(cell: Mapping, target_class: str, other_classes: Sequence[str], strengthen: bool) -> list | None:
    """The bootstrap interval of a cell's test metric (``probs_ci_by_dataset``), if the cell has one
    (a strengthen metric over several other classes has none)."""
    intervals = cell.get("probs_ci_by_dataset") or {}
    if strengthen:
        ci = (intervals.get(other_classes[0]) or {}).get(target_class) if len(other_classes) == 1 else None
        return None if ci is None else list(ci)
    ci = (intervals.get(target_class) or {}).get(target_class)
    return None if ci is None else [1.0 - ci[1], 1.0 - ci[0]]


def on_split(cell: Mapping, split: str) -> Mapping:
    """The cell with the class probabilities of ``split`` (``test``: as stored; ``validation``: its
    ``"validation"`` block, which cells scored for an adaptive search have)."""
    if split == "test":
        return cell
    if split != "validation":
        raise ValueError(f"unknown selection split {split!r}; expected 'test' or 'validation'")
    block = cell.get("validation")
    if not isinstance(block, Mapping):
        raise ValueError(f"decoder cell {_cell_id(cell)!r} has no validation scores: cells an adaptive search "
                         f"selects on are scored with DecoderEvaluator(validation=True) "
                         f"(the workflow's `decoder.search: adaptive`)")
    return {**cell, **block}


def _cell_id(cell: Mapping) -> str:
    return cell.get("id") or cell_name(cell["learning_rate"], cell["feature_factor"])


def as_candidate(cell: Mapping, metric) -> Candidate:
    """A cell as a candidate, its metric read by ``metric(cell)``."""
    return Candidate(_cell_id(cell), float(cell["learning_rate"]), float(cell["feature_factor"]), float(cell["lms"]),
                     float(metric(cell)), None if cell.get("kl") is None else float(cell["kl"]))


def admissible(policy: SelectionPolicy, cell: Mapping, metric, base_lms: float) -> bool:
    """Whether a cell is finite and keeps the policy's damage bound, its metric read by ``metric(cell)``."""
    return is_finite_cell(cell) and policy.admits(as_candidate(cell, metric), base_lms)


def objective(target: str, direction: str, class_feature_factors: Mapping[str, float]):
    """``(feature factors, metric)`` of rewriting ``target`` in ``direction``: the factors whose cells
    serve it and the metric of a cell (:func:`strengthen_metric` / :func:`weaken_metric`)."""
    others = [c for c in class_feature_factors if c != target]
    if direction == "strengthen":
        return [class_feature_factors[target]], lambda cell: strengthen_metric(cell, target, others)
    if direction == "weaken":
        return sorted({class_feature_factors[o] for o in others}), lambda cell: weaken_metric(cell, target)
    raise ValueError(f"unknown direction {direction!r}; expected 'strengthen' or 'weaken'")


def _candidates(cells: Sequence[Mapping], factors: Sequence[float], metric) -> tuple[list[Candidate], int]:
    """The finite cells of ``factors`` (in that order) as candidates, and how many were not finite."""
    matching = [c for f in factors for c in cells
                if not c.get("is_base") and float(c["feature_factor"]) == float(f)]
    finite = [c for c in matching if is_finite_cell(c)]
    return [as_candidate(c, metric) for c in finite], len(matching) - len(finite)


def summarize_cells(
    cells: Mapping[str, Mapping] | Sequence[Mapping],
    base: Mapping,
    class_feature_factors: Mapping[str, float],
    target_classes: Sequence[str] | None = None,
    directions: Sequence[str] = ("strengthen", "weaken"),
    selector: SelectionPolicy | None = None,
    split: str = "test",
) -> dict:
    """Chosen cell per target class and direction, plus the cells left out as non-finite.

    ``class_feature_factors`` maps every class of the pair to the feature factor that strengthens
    it; weakening C uses the factors of the other classes. ``split``: where the metric is read for
    the choice (``value`` is the test-split metric either way; ``selection_value`` the chosen one's).
    A :class:`BoundNotMet` of the selector is raised again naming the class and direction.
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
    by_id = {_cell_id(c): c for c in cell_list}
    summary: dict = {}
    for target in targets:
        others = [c for c in classes if c != target]
        for direction in directions:
            factors, metric = objective(target, direction, class_feature_factors)
            candidates, excluded = _candidates(cell_list, factors, lambda cell, m=metric: m(on_split(cell, split)))
            if not candidates:
                problem = (f"its {excluded} cell(s) are all non-finite" if excluded
                           else "the grid has no cell with that feature factor")
                raise ValueError(f"no finite decoder cell to {direction} class {target!r} "
                                 f"(feature factor(s) {factors}): {problem}")
            try:
                chosen = selector.select(candidates, base_lms)
            except BoundNotMet as error:
                raise BoundNotMet(f"no decoder cell to {direction} class {target!r} can be chosen: {error}") from None
            cell = by_id[chosen.candidate.key]
            summary[rewrite_key(target, weaken=direction == "weaken")] = {
                "value": metric(cell),
                "base_value": metric(base),
                "value_ci": metric_interval(cell, target, others, direction == "strengthen"),
                "selection_split": split,
                "selection_value": chosen.candidate.metric,
                "base_selection_value": metric(on_split(base, split)),
                "feature_factor": chosen.candidate.feature_factor,
                "learning_rate": chosen.candidate.learning_rate,
                "id": chosen.candidate.key,
                "lms": chosen.candidate.lms,
                "base_lms": base_lms,
                "kl": cell.get("kl"),
                "perplexity": cell.get("perplexity"),
                "base_perplexity": base.get("perplexity"),
                "damage": cell.get("damage"),
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
