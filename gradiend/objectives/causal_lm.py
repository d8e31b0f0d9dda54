"""Causal LM objective: score the factual / alternative token as the next token after the prefix.

Rules:
- the input is the text before the row's first mask, with its trailing whitespace removed; the
  target is what the model would really predict next: for byte-level BPE (GPT-2) a target after a
  space is the token *with* its leading space (" she"), see :mod:`.tokens` (the reference scores
  the bare string and gets "s" of "s"+"he" there, DESIGN §6);
- the scored position is the last real token of the prefix; a target of several sub-tokens is
  scored by its first sub-token (the next-token prediction the model makes);
- rows are right-padded (pad = EOS when the tokenizer has no pad token) with an attention mask;
- a row with no text before its mask is a ValueError naming the row (a causal LM needs context);
- a prefix longer than ``max_length`` (by default min(tokenizer limit, model positions)) keeps its
  *last* ``max_length`` tokens: left truncation never cuts the predicted position.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from gradiend.objectives.base import (
    DEFAULT_MASK,
    Objective,
    TargetBatch,
    _check_lengths,
    mask_contexts,
    row_error,
)
from gradiend.objectives.tokens import ensure_pad_token, target_ids


@dataclass
class CausalLMObjective(Objective):
    name = "causal_lm"

    def prepare(
        self,
        tokenizer,
        masked: Sequence[str],
        factual: Sequence[str],
        alternative: Sequence[str] | None = None,
        max_length: int | None = None,
        mask: str = DEFAULT_MASK,
    ) -> TargetBatch:
        _check_lengths(masked, factual, alternative)
        ensure_pad_token(tokenizer)
        contexts = mask_contexts(masked, mask)
        empty = [i for i, c in enumerate(contexts) if not c.strip()]
        if empty:
            raise row_error(
                empty[0], masked[empty[0]],
                "has no text before its mask; a causal LM predicts the target from its left context",
                len(empty) - 1,
            )
        factual_ids = _first_ids(target_ids(tokenizer, contexts, factual, masked, "factual"))
        alternative_ids = (
            None if alternative is None else _first_ids(target_ids(tokenizer, contexts, alternative, masked, "alternative"))
        )

        limit = self.max_length_for(tokenizer, max_length)
        rows = tokenizer([c.rstrip() for c in contexts], add_special_tokens=True)["input_ids"]
        if limit is not None:
            rows = [ids[-limit:] for ids in rows]
        lengths = torch.tensor([len(ids) for ids in rows])
        width = int(lengths.max())
        input_ids = torch.full((len(rows), width), int(tokenizer.pad_token_id), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long()
        return TargetBatch(
            inputs={"input_ids": input_ids, "attention_mask": attention_mask},
            row_index=torch.arange(len(rows)),
            position=lengths - 1,
            factual_ids=factual_ids,
            alternative_ids=alternative_ids,
            n_rows=len(rows),
        )


def _first_ids(ids: list[list[int]]) -> torch.LongTensor:
    return torch.tensor([row[0] for row in ids], dtype=torch.long)
