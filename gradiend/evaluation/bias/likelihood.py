"""Sentence (pseudo-)log-likelihoods, batched, for scoring bias benchmarks.

Masked LM (Salazar et al., 2020): the pseudo-log-likelihood ``PLL(s) = Σ_i log P(s_i | s with
s_i masked)`` over the sentence's tokens: one masked copy per token, batched, with the output head
evaluated only at the masked position. Special tokens ([CLS], [SEP], padding, and [UNK], which is
one of the tokenizer's special tokens) are never scored, by either kind of model.

Causal LM: the log-likelihood ``Σ_i log P(s_i | s_<i)``; a beginning-of-text token (BOS, or EOS
as GPT-2 uses it) is put in front so that the first token is scored too.

With a ``context`` (StereoSet intersentence) the context's tokens come first and only the
sentence's tokens are scored: the sentence given the context. A masked LM reads
``"<context> <sentence>"`` with its special tokens; a causal LM reads the context's tokens followed
by the sentence tokenised after a space, so byte-level BPE sees the word boundary.
"""
from __future__ import annotations

from typing import Sequence

import torch

from gradiend.evaluation.batching import (chunks, forward_logits, length_order, max_input_length, pad_id,
                                          pad_right)
from gradiend.evaluation.lms import CAUSAL, MASKED, lm_kind, single_mask_logits
from gradiend.evaluation.tokens import mask_id
from gradiend.util.eval_mode import eval_mode

PSEUDO_LOG_LIKELIHOOD = "pseudo-log-likelihood"
LOG_LIKELIHOOD = "log-likelihood"


class SentenceScorer:
    """``scorer(sentences, contexts=None)`` → one (pseudo-)log-likelihood per sentence (float64 sums).

    ``batch_size`` counts model rows: masked copies for a masked LM, sentences for a causal LM.
    Results are cached per (context, sentence), so a sentence shared by two items is scored once.
    """

    def __init__(self, model, tokenizer, *, kind: str | None = None, batch_size: int = 32):
        self.model, self.tokenizer = model, tokenizer
        self.kind = kind or lm_kind(model, tokenizer)
        if self.kind not in (MASKED, CAUSAL):
            raise ValueError(f"unknown LM kind {self.kind!r}; expected {MASKED!r} or {CAUSAL!r}")
        self.batch_size = batch_size
        self.max_length = max_input_length(model, tokenizer)
        self.pad_id = pad_id(tokenizer)
        self.special_ids = set(int(i) for i in tokenizer.all_special_ids)
        self._cache: dict[tuple[str | None, str], float] = {}

    @property
    def method(self) -> str:
        return PSEUDO_LOG_LIKELIHOOD if self.kind == MASKED else LOG_LIKELIHOOD

    # ------------------------------------------------------------------ inputs
    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, sentence: str, context: str | None = None) -> tuple[list[int], list[int]]:
        """``(input ids, scored positions)``: the sentence's token positions in the model input."""
        context_ids = self._ids(context) if context else []
        sentence_ids = self._ids((" " + sentence) if context else sentence)
        if self.kind == MASKED:
            text = f"{context} {sentence}" if context else sentence
            encoded = self.tokenizer(text, add_special_tokens=True, return_special_tokens_mask=True)
            ids = list(encoded["input_ids"])
            content = [i for i, (t, s) in enumerate(zip(ids, encoded["special_tokens_mask"]))
                       if not s and t not in self.special_ids]
            n_context, n_sentence = (sum(t not in self.special_ids for t in part) for part in (context_ids, sentence_ids))
            if len(content) != n_context + n_sentence:
                raise ValueError(f"cannot locate the tokens of {sentence!r} after its context in the model input")
            positions = content[n_context:]
        else:
            starts = (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id)
            prefix = [int(t) for t in starts if t is not None][:1]
            ids = prefix + context_ids + sentence_ids
            first = len(prefix) + len(context_ids)
            positions = [i for i in range(max(first, 1), len(ids)) if ids[i] not in self.special_ids]
        if not positions:
            raise ValueError(f"sentence {sentence!r} has no token to score (only special or unknown tokens)")
        if len(ids) > self.max_length:
            raise ValueError(f"sentence {sentence!r} (with its context) has {len(ids)} tokens, more than the "
                             f"model's limit of {self.max_length}")
        return ids, positions

    # ------------------------------------------------------------------ scoring
    def _masked(self, encoded: Sequence[tuple[list[int], list[int]]]) -> list[float]:
        mask = mask_id(self.tokenizer)
        jobs = [(s, p) for s, (_, positions) in enumerate(encoded) for p in positions]
        jobs.sort(key=lambda job: len(encoded[job[0]][0]))
        totals = [0.0] * len(encoded)
        rows = [ids for ids, _ in encoded]
        for batch, logits in single_mask_logits(self.model, rows, jobs, mask, self.pad_id, self.batch_size):
            originals = torch.tensor([rows[s][p] for s, p in batch])
            logp = torch.log_softmax(logits.double(), dim=-1)[torch.arange(len(batch)), originals]
            for (s, _), value in zip(batch, logp.tolist()):
                totals[s] += value
        return totals

    def _causal(self, encoded: Sequence[tuple[list[int], list[int]]]) -> list[float]:
        totals = [0.0] * len(encoded)
        for batch in chunks(length_order([ids for ids, _ in encoded]), self.batch_size):
            ids, attention = pad_right([encoded[s][0] for s in batch], self.pad_id)
            logits = forward_logits(self.model, ids, attention).cpu()
            for r, s in enumerate(batch):
                positions = torch.tensor(encoded[s][1])
                # only the predicting positions, in float64 (never the whole (B, L, V) block)
                logp = torch.log_softmax(logits[r, positions - 1].double(), dim=-1)
                totals[s] = float(logp[torch.arange(len(positions)), ids[r, positions]].sum())
        return totals

    def __call__(self, sentences: Sequence[str], contexts: Sequence[str | None] | None = None) -> list[float]:
        contexts = [None] * len(sentences) if contexts is None else list(contexts)
        if len(contexts) != len(sentences):
            raise ValueError(f"{len(sentences)} sentences but {len(contexts)} contexts")
        keys = list(zip(contexts, sentences))
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if todo:
            encoded = [self.encode(sentence, context) for context, sentence in todo]
            with eval_mode(self.model):
                values = self._masked(encoded) if self.kind == MASKED else self._causal(encoded)
            self._cache.update(zip(todo, values))
        return [self._cache[k] for k in keys]
