"""P(class tokens) on held-out rows: the probability score of a decoder cell.

For each row (a masked text of one factual class, the row's *dataset*) and each class ``C``:
``P(C | row) = Σ_variants P(variant at the mask)``, where the variants are the class's target words
(every token seen as factual of C or as alternative toward C) plus their casing variants that are a
single token. The dataset score is the mean over its rows.

* Masked LM: a single-mask row is expanded to ``k`` masks for a ``k``-sub-token variant and scored by
  the product of the sub-token probabilities at those masks (docs/design.md §4); a row with several
  masks (all occurrences masked) scores each mask with the variant's first sub-token and averages them.
* Causal LM: the variant as the continuation of the text before the first mask, with the tokens the
  model would really predict there (" she" after a space, docs/design.md §5); a ``k``-sub-token variant
  scores the product of its conditional next-token probabilities (the chain rule: the input is the
  prefix plus the variant's first ``k - 1`` pieces).

Inputs come from the objective's own ``prepare`` (same tokenization, mask handling and truncation
checks as training) and are built once; :meth:`ClassProbabilityScorer.__call__` then scores any
number of models (one per decoder cell).
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd
import torch

from gradiend.data.tables import FACTUAL_CLASS, MASKED, target_words_by_class
from gradiend.evaluation.batching import chunks, model_device
from gradiend.evaluation.tokens import MASK_PLACEHOLDER, casing_variants
from gradiend.objectives.base import TargetBatch, mask_contexts
from gradiend.objectives.tokens import continuation_ids
from gradiend.util.eval_mode import eval_mode
from gradiend.util.logging import get_logger

logger = get_logger(__name__)


def class_target_words(table: pd.DataFrame, classes: Sequence[str]) -> dict[str, list[str]]:
    """Per class: every token seen as factual of it or as alternative toward it (first-seen order)."""
    by_class = target_words_by_class(table)
    words = {c: by_class.get(c, []) for c in classes}
    empty = [c for c, w in words.items() if not w]
    if empty:
        raise ValueError(f"class {empty[0]!r} has no target token in the data; classes: {list(classes)}")
    lowered = {c: {w.lower() for w in ws} for c, ws in words.items()}
    for a, b in itertools.combinations(classes, 2):
        shared = sorted(lowered[a] & lowered[b])
        if shared:
            logger.warning("classes %r and %r share target token(s) %s; their probabilities overlap", a, b, shared)
    return words


@dataclass
class _Chunk:
    """One prepared batch plus, per scored term, where to read and whom it counts for."""

    batch: TargetBatch
    dataset: str
    term_positions: torch.Tensor  # (T, k) indexes into the batch's scored positions
    term_tokens: torch.Tensor  # (T, k) token ids
    term_row: torch.Tensor  # (T,) row within the chunk
    term_class: torch.Tensor  # (T,) class index
    term_weight: torch.Tensor  # (T,) 1 / number of masks averaged over
    row_ids: list[int]  # global row index of each chunk row


class ClassProbabilityScorer:
    """Mean P(class tokens) per dataset (factual class of the rows) for any model, inputs built once."""

    def __init__(self, objective, tokenizer, rows: pd.DataFrame, class_words: Mapping[str, Sequence[str]],
                 batch_size: int = 32, max_length: int | None = None):
        self.objective = objective
        self.classes = list(class_words)
        self.causal = getattr(objective, "name", "") == "causal_lm"
        frame = rows.drop_duplicates([MASKED, FACTUAL_CLASS]).reset_index(drop=True)
        if self.causal:  # a causal LM predicts the mask from the text before it: there must be some
            keep = [bool(c.strip()) for c in mask_contexts(list(frame[MASKED]), MASK_PLACEHOLDER)]
            if not all(keep):
                logger.warning("%d row(s) have no text before the mask and are not scored by the causal LM",
                               keep.count(False))
            frame = frame[keep].reset_index(drop=True)
        if frame.empty:
            raise ValueError("no rows to score class probabilities on")
        self.rows = frame
        self.datasets = sorted(set(frame[FACTUAL_CLASS].astype(str)))
        self.members = {d: [i for i, c in enumerate(frame[FACTUAL_CLASS].astype(str)) if c == d] for d in self.datasets}
        self.chunks: list[_Chunk] = []
        terms = self._terms(tokenizer, list(frame[MASKED]), class_words)
        for dataset in self.datasets:
            members = self.members[dataset]
            by_layout: dict[tuple, list[int]] = defaultdict(list)
            for i in members:
                for layout in sorted({t["layout"] for t in terms[i]}):
                    by_layout[layout].append(i)
            for layout, indices in sorted(by_layout.items()):
                for chunk_rows in chunks(indices, batch_size):
                    self.chunks.append(self._chunk(tokenizer, frame, terms, chunk_rows, layout, dataset, max_length))

    def _terms(self, tokenizer, masked: list[str], class_words) -> list[list[dict]]:
        """Per row: the scored terms ``{class, ids, layout, variant}`` after de-duplication. Terms of one
        ``layout`` share one input: a masked LM's with as many masks as pieces, a causal LM's with the
        same leading pieces after the prefix."""
        contexts = mask_contexts(masked, MASK_PLACEHOLDER)
        variants = [(c, word, variant) for c, words in enumerate(class_words.values())
                    for word in words for variant in casing_variants(word)]
        variant_ids = {variant: continuation_ids(tokenizer, contexts, [variant] * len(masked))
                       for variant in dict.fromkeys(variant for _, _, variant in variants)}
        unknown = getattr(tokenizer, "unk_token_id", None)
        terms = []
        for r, text in enumerate(masked):
            every_piece = self.causal or text.count(MASK_PLACEHOLDER) == 1
            row_terms, seen = [], set()
            for c, word, variant in variants:
                ids = variant_ids[variant][r]
                if not ids or (variant != word and (len(ids) != 1 or ids[0] == unknown)):
                    continue
                ids = tuple(ids) if every_piece else tuple(ids[:1])
                if (c, ids) not in seen:
                    seen.add((c, ids))
                    layout = (len(ids), ids[:-1] if self.causal else ())
                    row_terms.append({"class": c, "ids": ids, "layout": layout, "variant": variant})
            terms.append(row_terms)
        return terms

    def _chunk(self, tokenizer, frame, terms, chunk_rows, layout, dataset, max_length) -> _Chunk:
        masked = [frame[MASKED].iloc[i] for i in chunk_rows]
        representative = [next(t["variant"] for t in terms[i] if t["layout"] == layout) for i in chunk_rows]
        batch = self.objective.prepare(tokenizer, masked, representative, max_length=max_length)
        counts = batch.positions_per_row().tolist()
        offsets = [sum(counts[:j]) for j in range(len(counts))]
        length = layout[0]
        positions, tokens, term_row, term_class, weight = [], [], [], [], []
        for j, i in enumerate(chunk_rows):
            n_masks = counts[j] // length
            for term in (t for t in terms[i] if t["layout"] == layout):
                for m in range(n_masks):  # one piece with several masks: one term per mask, averaged
                    positions.append([offsets[j] + m * length + s for s in range(length)])
                    tokens.append(list(term["ids"]))
                    term_row.append(j)
                    term_class.append(term["class"])
                    weight.append(1.0 / n_masks)
        return _Chunk(batch, dataset, torch.tensor(positions), torch.tensor(tokens),
                      torch.tensor(term_row), torch.tensor(term_class), torch.tensor(weight, dtype=torch.float64),
                      list(chunk_rows))

    def row_probabilities(self, model, datasets: Sequence[str] | None = None) -> torch.Tensor:
        """``(n_rows, n_classes)`` float64 P(class | row); rows outside ``datasets`` are NaN."""
        wanted = set(self.datasets if datasets is None else datasets)
        unknown = wanted - set(self.datasets)
        if unknown:
            raise ValueError(f"no rows of dataset(s) {sorted(unknown)}; datasets: {self.datasets}")
        probs = torch.zeros((len(self.rows), len(self.classes)), dtype=torch.float64)
        touched = torch.zeros(len(self.rows), dtype=torch.bool)
        device = model_device(model)
        with eval_mode(model), torch.no_grad():
            for chunk in self.chunks:
                if chunk.dataset not in wanted:
                    continue
                logits = self.objective.scored_logits(model, chunk.batch.to(device))
                log_probs = torch.log_softmax(logits.double(), dim=-1).cpu()
                term_log_probs = log_probs[chunk.term_positions, chunk.term_tokens].sum(dim=1)
                term_probs = term_log_probs.exp() * chunk.term_weight
                row_ids = torch.tensor(chunk.row_ids)
                sums = torch.zeros(len(chunk.row_ids), len(self.classes), dtype=torch.float64)
                sums.index_put_((chunk.term_row, chunk.term_class), term_probs, accumulate=True)
                probs[row_ids] += sums
                touched[row_ids] = True
        probs[~touched] = float("nan")
        return probs

    def __call__(self, model, datasets: Sequence[str] | None = None, bootstrap: int = 0, seed: int = 0) -> dict:
        """``{"probs_by_dataset": {dataset: {class: mean P}}, "n_rows_by_dataset": {dataset: n}}``; with
        ``bootstrap`` > 0 also ``"probs_ci_by_dataset"`` (``{dataset: {class: [low, high]}}``, the
        percentile interval over that many resamples of the dataset's rows, seeded)."""
        from gradiend.evaluation.bias.scores import bootstrap_ci

        probs = self.row_probabilities(model, datasets)
        members = {d: torch.tensor(self.members[d]) for d in (self.datasets if datasets is None else sorted(datasets))}
        result = {"probs_by_dataset": {d: {cls: float(probs[rows, c].mean()) for c, cls in enumerate(self.classes)}
                                       for d, rows in members.items()},
                  "n_rows_by_dataset": {d: len(rows) for d, rows in members.items()}}
        if bootstrap > 0:
            result["probs_ci_by_dataset"] = {
                d: {cls: bootstrap_ci(lambda idx, v=probs[rows, c].numpy(): v[idx].mean(axis=-1), len(rows), bootstrap,
                                      seed) if bool(torch.isfinite(probs[rows, c]).all()) else None
                    for c, cls in enumerate(self.classes)}
                for d, rows in members.items()}
        return result
