"""Language modelling score (LMS): how much a rewrite hurts the model on feature-neutral text.

Masked LM: accuracy on 15 % of the *non-special* tokens of each text, masked at positions drawn
with the scorer's own ``random.Random(seed)``. The reference compares a tensor with a Python list,
so [CLS] / [SEP] end up masked and counted; here special tokens and padding are never candidates.

Causal LM: ``1 / (1 + mean next-token NLL)``, predicting token t+1 from tokens ≤ t (the
reference scores unshifted logits, i.e. each token from itself). Padding is never scored.

A scorer tokenizes and plans its masks once, then scores any number of models (one per decoder
cell), so every cell sees exactly the same inputs.
"""
from __future__ import annotations

import math
import random
from typing import Iterable, Iterator, Sequence

import torch

from gradiend.evaluation.batching import (chunks, forward_logits, length_order, max_input_length,
                                          model_device, pad_id, pad_right)
from gradiend.evaluation.tokens import mask_id
from gradiend.objectives.heads import scored_hidden_logits
from gradiend.util.eval_mode import eval_mode

MASKED = "masked"
CAUSAL = "causal"
DEFAULT_MASK_RATIO = 0.15
DEFAULT_SEED = 42


def lm_kind(model, tokenizer) -> str:
    """``"causal"`` for decoder-only models (or tokenizers without a mask token), else ``"masked"``."""
    config, name = getattr(model, "config", None), type(model).__name__
    decoder_only = getattr(config, "is_decoder", False) or "CausalLM" in name or "LMHead" in name
    return CAUSAL if decoder_only or getattr(tokenizer, "mask_token_id", None) is None else MASKED


def _tokenize(tokenizer, texts: Sequence[str], max_length: int) -> list[dict]:
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length,
                        return_special_tokens_mask=True)
    special_ids = set(tokenizer.all_special_ids)
    return [{"ids": list(ids), "special": [bool(s) or t in special_ids for t, s in zip(ids, special)]}
            for ids, special in zip(encoded["input_ids"], encoded["special_tokens_mask"])]


def _canonical_forms(tokenizer) -> torch.Tensor:
    """Vocabulary id → id of its lower-cased form, so "She" predicted for "she" counts as right."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    index: dict[str, int] = {}
    return torch.tensor([index.setdefault(str(t).lower(), len(index)) for t in tokens], dtype=torch.long)


def masked_position_logits(model, ids, attention, row_index, col_index) -> torch.Tensor:
    """Float32 CPU logits at the masked positions only (the output head runs only there)."""
    device = model_device(model)
    inputs = {"input_ids": ids.to(device), "attention_mask": attention.to(device)}
    with torch.no_grad():
        logits = scored_hidden_logits(model, inputs, row_index.to(device), col_index.to(device))
    return logits.float().cpu()


def single_mask_logits(model, rows: Sequence[Sequence[int]], jobs: Sequence[tuple[int, int]], mask: int, pad: int,
                       batch_size: int) -> Iterator[tuple[Sequence[tuple[int, int]], torch.Tensor]]:
    """``(jobs of a batch, logits at their masked positions)``, batch by batch, for ``(row, position)``
    jobs: each input is row ``rows[row]`` with the one token at ``position`` masked (the pseudo-likelihood
    pass; jobs sorted by row length keep the padding small)."""
    for batch in chunks(jobs, batch_size):
        ids, attention = pad_right([rows[i][:p] + [mask] + rows[i][p + 1:] for i, p in batch], pad)
        yield batch, masked_position_logits(model, ids, attention, torch.arange(len(batch)),
                                            torch.tensor([p for _, p in batch]))


class MaskedLMS:
    """Accuracy of a masked LM on seeded random masks over the non-special tokens of neutral texts."""

    def __init__(self, tokenizer, texts: Iterable[str], *, max_length: int = 512,
                 mask_ratio: float = DEFAULT_MASK_RATIO, seed: int = DEFAULT_SEED, ignore_token_ids: Iterable[int] = (),
                 batch_size: int = 32):
        if not 0 < mask_ratio <= 1:
            raise ValueError(f"mask_ratio must be in (0, 1], got {mask_ratio}")
        self.batch_size = batch_size
        self.mask_id = mask_id(tokenizer)
        self.pad_id = pad_id(tokenizer)
        self.canonical = _canonical_forms(tokenizer)
        ignored = set(int(i) for i in ignore_token_ids)
        rng = random.Random(seed)
        self.rows: list[list[int]] = []
        self.positions: list[list[int]] = []
        for row in _tokenize(tokenizer, list(texts), max_length):
            candidates = [i for i, (t, s) in enumerate(zip(row["ids"], row["special"])) if not s and t not in ignored]
            if not candidates:
                continue
            k = max(1, int(mask_ratio * len(candidates)))
            self.rows.append(row["ids"])
            self.positions.append(sorted(rng.sample(candidates, k)))
        if not self.rows:
            raise ValueError("no neutral text has a maskable (non-special, non-ignored) token for the LMS")

    @property
    def n_masked(self) -> int:
        return sum(len(p) for p in self.positions)

    def masked_inputs(self, index: int) -> list[int]:
        ids = list(self.rows[index])
        for position in self.positions[index]:
            ids[position] = self.mask_id
        return ids

    def correct_per_text(self, model) -> list[int] | None:
        """Correct predictions per text (in the order of ``rows``); None when a score is not finite."""
        correct = [0] * len(self.rows)
        vocab = len(self.canonical)
        with eval_mode(model):
            for batch in chunks(length_order(self.rows), self.batch_size):
                ids, attention = pad_right([self.masked_inputs(i) for i in batch], self.pad_id)
                row_index = torch.tensor([r for r, i in enumerate(batch) for _ in self.positions[i]])
                col_index = torch.tensor([p for i in batch for p in self.positions[i]])
                originals = torch.tensor([self.rows[i][p] for i in batch for p in self.positions[i]])
                scores = masked_position_logits(model, ids, attention, row_index, col_index)
                if not torch.isfinite(scores).all():
                    return None
                predicted = scores.argmax(dim=-1)
                in_vocab = predicted < vocab
                same = self.canonical[predicted.clamp(max=vocab - 1)] == self.canonical[originals]
                for r, hit in zip(row_index.tolist(), (same & in_vocab).tolist()):
                    correct[batch[r]] += int(hit)
        return correct

    def summary(self, correct: Sequence[int] | None) -> dict:
        """The LMS of :meth:`correct_per_text`'s counts."""
        if correct is None:
            return {"lms": math.nan, "accuracy": math.nan, "n_masked": self.n_masked}
        accuracy = sum(correct) / self.n_masked
        return {"lms": accuracy, "accuracy": accuracy, "n_masked": self.n_masked}

    def __call__(self, model) -> dict:
        return self.summary(self.correct_per_text(model))


class CausalLMS:
    """``1 / (1 + mean NLL)`` of a causal LM's next-token predictions on neutral texts."""

    def __init__(self, tokenizer, texts: Iterable[str], *, max_length: int = 1024, ignore_token_ids: Iterable[int] = (),
                 batch_size: int = 32):
        self.batch_size = batch_size
        self.pad_id = pad_id(tokenizer)
        self.ignored = torch.tensor(sorted(set(int(i) for i in ignore_token_ids)), dtype=torch.long)
        self.rows = [row["ids"] for row in _tokenize(tokenizer, list(texts), max_length) if len(row["ids"]) > 1]
        if not self.rows:
            raise ValueError("no neutral text has two or more tokens for the causal LMS")

    def batches(self, model) -> Iterator[tuple[Sequence[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per batch: the text indices, the float32 logits that predict tokens 1 …, those tokens, and
        which of them are scored (not padding, not ignored)."""
        with eval_mode(model):
            for batch in chunks(length_order(self.rows), self.batch_size):
                ids, attention = pad_right([self.rows[i] for i in batch], self.pad_id)
                logits = forward_logits(model, ids, attention).cpu()
                targets = ids[:, 1:]
                scored = attention[:, 1:].bool()
                if len(self.ignored):
                    scored &= ~torch.isin(targets, self.ignored)
                yield batch, logits[:, :-1], targets, scored

    @staticmethod
    def token_nll(predicted_from: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        """``(B, L-1)`` float64 next-token NLL, 0 where a token is not scored."""
        nll = torch.nn.functional.cross_entropy(predicted_from.transpose(1, 2), targets, reduction="none")
        return torch.where(scored, nll.double(), torch.zeros((), dtype=torch.float64))

    def nll_per_text(self, model) -> tuple[list[float], list[int]]:
        """Summed next-token NLL and the number of scored tokens, per text (in the order of ``rows``)."""
        sums, counts = [0.0] * len(self.rows), [0] * len(self.rows)
        for batch, predicted_from, targets, scored in self.batches(model):
            nll = self.token_nll(predicted_from, targets, scored).sum(dim=1)
            for r, i in enumerate(batch):
                sums[i], counts[i] = float(nll[r]), int(scored[r].sum())
        return sums, counts

    def summary(self, nll_sums: Sequence[float], counts: Sequence[int]) -> dict:
        """The LMS of :meth:`nll_per_text`'s sums."""
        count = sum(counts)
        if count == 0:
            raise ValueError("every neutral token is in the LMS ignore list; nothing to score")
        mean_nll = math.fsum(nll_sums) / count
        lms = 1.0 / (1.0 + mean_nll) if math.isfinite(mean_nll) else math.nan
        return {"lms": lms, "mean_nll": mean_nll, "n_tokens": count}

    def __call__(self, model) -> dict:
        return self.summary(*self.nll_per_text(model))


def lms_scorer(model, tokenizer, texts: Iterable[str], *, kind: str | None = None, ignore_token_ids: Iterable[int] = (),
               batch_size: int = 32, seed: int = DEFAULT_SEED, mask_ratio: float = DEFAULT_MASK_RATIO):
    """The LMS scorer for this model family, prepared once for ``texts``."""
    kind = kind or lm_kind(model, tokenizer)
    common = dict(max_length=max_input_length(model, tokenizer), ignore_token_ids=ignore_token_ids,
                  batch_size=batch_size)
    if kind == MASKED:
        return MaskedLMS(tokenizer, texts, mask_ratio=mask_ratio, seed=seed, **common)
    if kind == CAUSAL:
        return CausalLMS(tokenizer, texts, **common)
    raise ValueError(f"unknown LM kind {kind!r}; expected {MASKED!r} or {CAUSAL!r}")


def language_model_score(model, tokenizer, texts: Iterable[str], **options) -> dict:
    """One-off LMS of ``model`` on ``texts`` (see :func:`lms_scorer` for the options)."""
    return lms_scorer(model, tokenizer, texts, **options)(model)
