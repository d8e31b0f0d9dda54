"""Decoder evaluation: score rewrites ``θ + lr·dec(ff)`` on a grid and choose one per class.

A *cell* is one (learning rate, feature factor) rewrite, scored by P(class tokens) on each class's
held-out test rows (:mod:`.probabilities`; with ``validation`` also on the validation rows, which an
adaptive search selects on) and by its damage on neutral text (:mod:`.damage`: the LMS of
:mod:`.lms`, the KL divergence to the base model and the (pseudo-)perplexity, each with a bootstrap
interval). The ``base`` cell is the unmodified model, scored once. One loaded model scores every cell: the update is
applied in place and restored bitwise afterwards (:mod:`gradiend.model.rewrite`), so cells
do not depend on their order and nothing is reloaded (docs/design.md §2.4).

``evaluate_cell`` / ``evaluate_base`` return JSON-ready dicts, so a workflow can fan the cells out
as jobs and :meth:`DecoderEvaluator.summarize` (or :func:`~.selection.summarize_cells`) can pick
cells from the files alone: every cell records the feature factor that strengthens each class.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
from tqdm.auto import tqdm

from gradiend.data.tables import FACTUAL_CLASS, MASKED
from gradiend.evaluation.context import EvaluationParts, sample_at_most
from gradiend.evaluation.damage import DEFAULT_BOOTSTRAP, DamageScorer
from gradiend.evaluation.lms import lms_scorer
from gradiend.evaluation.probabilities import ClassProbabilityScorer, class_target_words
from gradiend.cells import BASE, cell_name, default_learning_rates
from gradiend.evaluation.selection import LMSThresholdPolicy, SelectionPolicy, is_finite_cell, summarize_cells
from gradiend.evaluation.tokens import ignore_token_ids
from gradiend.model import rewrite
from gradiend.data.rows import select_rows
from gradiend.util.io import write_json
from gradiend.util.logging import get_logger

logger = get_logger(__name__)

SUMMARY_FILE, PLOT_FILE = "summary.json", "probability_shifts"
DIRECTIONS = {True: ("strengthen",), False: ("weaken",), None: ("strengthen", "weaken")}


class DecoderEvaluator:
    """Scores decoder cells for one model; inputs and the base model's references are prepared once.

    ``validation``: every cell also scores the class probabilities on the validation rows (its
    ``"validation"`` block), the split an adaptive search selects on.
    """

    def __init__(self, parts: EvaluationParts, part: str = "decoder", validation: bool = False):
        self.parts = parts
        self.part = part
        self.validation = validation
        self._probabilities: dict[str, ClassProbabilityScorer] = {}
        self._lms = None
        self._damage: DamageScorer | None = None
        self._base: dict | None = None
        self._grid_state: dict | None = None

    @property
    def model(self):
        return self.parts.model_with_gradiend

    @property
    def target_classes(self) -> list[str]:
        return list(self.parts.target_classes)

    # ------------------------------------------------------------------ classes and factors
    def check_target_classes(self, target_class: str | Sequence[str] | None) -> list[str]:
        """The requested classes (all target classes for None); an unknown one is a clear error."""
        if target_class is None:
            return self.target_classes
        wanted = [target_class] if isinstance(target_class, str) else list(target_class)
        for cls in wanted:
            if cls not in self.target_classes:
                raise ValueError(f"unknown target class {cls!r}; the model's classes are {self.target_classes}")
        return wanted

    def class_feature_factors(self) -> dict[str, float]:
        """The feature factor that strengthens each target class."""
        return {c: self.model.feature_factor(c, strengthen=True) for c in self.target_classes}

    # ------------------------------------------------------------------ scorers (built once)
    def split_rows(self, split: str) -> pd.DataFrame:
        """Pair rows of ``split``, one per masked text, capped per class with the seed."""
        rows = select_rows(self.parts.data, self.target_classes, split, self.model.source, seed=self.parts.seed).frame
        rows = rows.drop_duplicates([MASKED, FACTUAL_CLASS])
        cap = self.parts.decoder_max_size_training_like
        parts = [g.iloc[sample_at_most(list(range(len(g))), cap, self.parts.seed)] for _, g in rows.groupby(FACTUAL_CLASS)]
        return pd.concat(parts).sort_index()

    def probabilities_on(self, split: str) -> ClassProbabilityScorer:
        """The class-probability scorer of one split's rows (built once)."""
        if split not in self._probabilities:
            words = class_target_words(self.parts.data, self.target_classes)
            self._probabilities[split] = ClassProbabilityScorer(
                self.model.objective, self.model.tokenizer, self.split_rows(split), words,
                batch_size=self.parts.batch_size, max_length=self.model.max_length)
        return self._probabilities[split]

    @property
    def probabilities(self) -> ClassProbabilityScorer:
        return self.probabilities_on("test")

    def lms_texts(self) -> tuple[list[str], set[str]]:
        """Neutral texts and words to skip; without neutral data, the un-masked test rows with every
        target word skipped (docs/design.md §4)."""
        ignored = {w for w in (self.parts.ignore_tokens or ())}
        texts = self.parts.neutral_texts
        if texts is None:
            texts = self.parts.unmasked_test_texts()
            ignored |= self.parts.target_words()
        return sample_at_most(texts, self.parts.decoder_max_size_neutral, self.parts.seed), ignored

    @property
    def lms(self):
        if self._lms is None:
            texts, ignored = self.lms_texts()
            tokenizer = self.model.tokenizer
            self._lms = lms_scorer(self.model.base_model, tokenizer, texts,
                                   ignore_token_ids=ignore_token_ids(tokenizer, ignored),
                                   batch_size=self.parts.batch_size, seed=self.parts.seed)
        return self._lms

    @property
    def damage(self) -> DamageScorer:
        """LMS, KL and (pseudo-)perplexity: the scorer is built on first use from the model as it is
        then, whose logits are the KL reference (:meth:`grid_session` builds it before any update)."""
        if self._damage is None:
            self._damage = DamageScorer(self.lms, self.model.base_model, seed=self.parts.seed)
        return self._damage

    # ------------------------------------------------------------------ cells
    def _score(self, datasets: Sequence[str] | None, base: bool = False) -> dict:
        """Class probabilities (test rows with bootstrap intervals; with ``validation`` also the
        validation rows, which only selection reads) and the damage; ``base``: the damage scorer's own
        pass over the unmodified model, not a second one."""
        model = self.model.base_model
        scored = self.probabilities(model, datasets, bootstrap=DEFAULT_BOOTSTRAP, seed=self.parts.seed)
        if self.validation:
            scored["validation"] = self.probabilities_on("validation")(model, datasets)
        return {**scored, **(self.damage.base if base else self.damage(model))}

    def _finish(self, cell: dict) -> dict:
        cell["class_feature_factors"] = self.class_feature_factors()
        cell["part"] = self.part
        cell["finite"] = is_finite_cell(cell)
        if not cell["finite"]:
            logger.warning("decoder cell %s is not finite (lms=%s); it is kept but never selected",
                           cell["id"], cell["lms"])
        return cell

    def evaluate_base(self) -> dict:
        """The unmodified model on every dataset (computed once per evaluator)."""
        if self._base is None:
            cell = {"id": BASE, "is_base": True, "learning_rate": 0.0, "feature_factor": 0.0,
                    **self._score(None, base=True)}
            self._base = self._finish(cell)
        return self._base

    def evaluate_cell(self, learning_rate: float, feature_factor: float, datasets: Sequence[str] | None = None) -> dict:
        """One rewrite, applied in place and restored bitwise after scoring; ``datasets`` None = all
        classes' rows. Inside :meth:`grid_session` the update vector is reused across the learning
        rates of one feature factor."""
        learning_rate, feature_factor = float(learning_rate), float(feature_factor)
        if not math.isfinite(learning_rate) or not math.isfinite(feature_factor):
            raise ValueError(f"learning rate and feature factor must be finite, got {learning_rate}, {feature_factor}")
        with self.grid_session() if self._grid_state is None else contextlib.nullcontext():
            state = self._grid_state
            if state["factor"] != feature_factor:
                state["vector"], state["factor"] = None, None  # free the old vector before making the new one
                state["vector"] = self.model.update_vector(feature_factor, self.part)
                state["factor"] = feature_factor
            try:
                rewrite.add_update(state["params"], self.model.gradiend, state["vector"], learning_rate)
                scored = self._score(datasets)
            finally:
                rewrite.restore(state["params"], self.model.gradiend, state["saved"])
        cell = {"id": cell_name(learning_rate, feature_factor), "is_base": False, "learning_rate": learning_rate,
                "feature_factor": feature_factor, **scored}
        return self._finish(cell)

    @contextlib.contextmanager
    def grid_session(self):
        """Inside it, cells share one saved copy of the mapped parameters, the copy they are restored from
        (the damage scorer takes its reference from the unmodified model first)."""
        self.damage  # noqa: B018 (built from the unmodified model before any update)
        gradiend = self.model.gradiend
        params = rewrite.lookup_parameters(self.model.base_model, gradiend.param_map)
        self._grid_state = {"params": params, "saved": rewrite.snapshot(params, gradiend), "vector": None,
                            "factor": None}
        try:
            yield
        finally:
            self._grid_state = None

    def evaluate_grid(self, learning_rates: Sequence[float], feature_factors: Sequence[float],
                      datasets_by_factor: Mapping[float, Sequence[str] | None] | None = None) -> dict:
        """``{"base": base cell, cell id: cell}`` over learning rates × feature factors."""
        grid = {BASE: self.evaluate_base()}
        jobs = [(float(ff), lr) for ff in feature_factors for lr in learning_rates]
        with self.grid_session():
            for ff, lr in tqdm(jobs, desc="decoder cells", leave=False):
                datasets = None if datasets_by_factor is None else datasets_by_factor.get(ff)
                cell = self.evaluate_cell(lr, ff, datasets)
                grid[cell["id"]] = cell
        return grid

    # ------------------------------------------------------------------ selection
    def summarize(self, cells: Mapping[str, Mapping] | Sequence[Mapping], base: Mapping,
                  target_classes: str | Sequence[str] | None = None,
                  increase_target_probabilities: bool | None = True,
                  selector: SelectionPolicy | None = None) -> dict:
        """Chosen cell per class: keys ``"<C>"`` (strengthen) and/or ``"<C>_weaken"``."""
        return summarize_cells(cells, base, base.get("class_feature_factors") or self.class_feature_factors(),
                               self.check_target_classes(target_classes),
                               DIRECTIONS[increase_target_probabilities], selector)

    def needed_cells(self, targets: Sequence[str], increase_target_probabilities: bool | None,
                     all_datasets: bool) -> dict[float, list[str] | None]:
        """Feature factor → the datasets its cells must score for the requested classes and direction."""
        factors = self.class_feature_factors()
        needed: dict[float, set[str]] = {}
        for cls in targets:
            others = [c for c in self.target_classes if c != cls]
            if increase_target_probabilities in (True, None):
                needed.setdefault(factors[cls], set()).update(others)
            if increase_target_probabilities in (False, None):
                for other in others:
                    needed.setdefault(factors[other], set()).add(cls)
        return {ff: (None if all_datasets else sorted(ds)) for ff, ds in sorted(needed.items())}

    def evaluate_decoder(self, lrs: Sequence[float] | None = None, feature_factors: Sequence[float] | None = None,
                         target_class: str | Sequence[str] | None = None,
                         increase_target_probabilities: bool | None = True,
                         selector: SelectionPolicy | None = None, plot: bool = False,
                         output_dir: str | Path | None = None) -> dict:
        """Score the grid needed for the requested classes and direction, then choose the cells.

        Returns the summary (``"<C>"`` / ``"<C>_weaken"`` entries, ``non_finite_cells``) plus
        ``"grid"``. ``feature_factors`` None = the factors the direction needs; with ``plot`` every
        cell scores every dataset. ``output_dir`` receives summary.json (and the plot).
        """
        targets = self.check_target_classes(target_class)
        lrs = list(lrs or self.parts.decoder_lrs or default_learning_rates())
        needed = self.needed_cells(targets, increase_target_probabilities, all_datasets=plot)
        explicit = feature_factors or self.parts.decoder_feature_factors
        if explicit:
            needed = {float(ff): needed.get(float(ff)) if not plot else None for ff in explicit}
        grid = self.evaluate_grid(lrs, list(needed), needed)
        selector = selector or LMSThresholdPolicy()
        summary = self.summarize(grid, grid[BASE], targets, increase_target_probabilities, selector)
        result = {**summary, "grid": grid}
        if output_dir is not None:
            write_json(Path(output_dir) / SUMMARY_FILE, result)
        if plot:
            from gradiend.plots.decoder import plot_probability_shifts

            path = None if output_dir is None else Path(output_dir) / f"{PLOT_FILE}.{self.parts.img_format}"
            plot_probability_shifts(grid, summary, path, lms_ratio=getattr(selector, "ratio", None))
            if path is not None:
                result["plot_path"] = str(path)
        return result
