"""Causal LM objective: score the factual / alternative token as the next token after the prefix.

Rules:
- the input is the text before the row's first mask, with its trailing whitespace removed; the
  target is what the model would really predict next: for byte-level BPE (GPT-2) a target after a
  space is the token *with* its leading space (" she"), see :mod:`.tokens` (the reference scores
  the bare string and gets "s" of "s"+"he" there, docs/design.md §5);
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
from torch.nn.utils.rnn import pad_sequence

from gradiend.objectives.base import Objective, TargetBatch, row_error
from gradiend.objectives.tokens import ensure_pad_token


@dataclass
class CausalLMObjective(Objective):
    name = "causal_lm"

    def _check_rows(self, tokenizer, masked: Sequence[str], contexts: list[str]) -> None:
        ensure_pad_token(tokenizer)
        empty = [i for i, c in enumerate(contexts) if not c.strip()]
        if empty:
            raise row_error(
                empty[0], masked[empty[0]],
                "has no text before its mask; a causal LM predicts the target from its left context",
                len(empty) - 1,
            )

    def _batch(self, tokenizer, masked, contexts, targets, ids, limit, mask) -> TargetBatch:
        rows = tokenizer([c.rstrip() for c in contexts], add_special_tokens=True)["input_ids"]
        if limit is not None:
            rows = [row[-limit:] for row in rows]
        lengths = torch.tensor([len(row) for row in rows])
        input_ids = pad_sequence([torch.tensor(row, dtype=torch.long) for row in rows], batch_first=True,
                                 padding_value=int(tokenizer.pad_token_id))
        attention_mask = (torch.arange(input_ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).long()
        return TargetBatch(
            inputs={"input_ids": input_ids, "attention_mask": attention_mask},
            row_index=torch.arange(len(rows)),
            position=lengths - 1,
            factual_ids=_first_ids(ids["factual"]),
            alternative_ids=None if ids["alternative"] is None else _first_ids(ids["alternative"]),
            n_rows=len(rows),
        )


def _first_ids(ids: list[list[int]]) -> torch.LongTensor:
    return torch.tensor([row[0] for row in ids], dtype=torch.long)
