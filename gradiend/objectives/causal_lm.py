"""Causal LM objective: score the factual / alternative token as the next token after the prefix.

Rules:
- the input is the text before the row's first mask, with its trailing whitespace removed; the
  target is what the model would really predict next: for byte-level BPE (GPT-2) a target after a
  space is the token *with* its leading space (" she"), see :mod:`.tokens` (the reference scores
  the bare string and gets "s" of "s"+"he" there, docs/design.md §5);
- a target of ``k`` sub-tokens is scored by the chain rule: the input is the prefix followed by
  the target's first ``k - 1`` pieces, and the positions from the prefix's last token on score the
  pieces in order, so the target's probability is the product of the conditional next-token
  probabilities ``P(t_1 | prefix) · P(t_2 | prefix, t_1) · …`` (the original package scores only
  ``t_1``). The factual and alternative targets share one input when one's first pieces continue
  the other's (always for single-token targets), else the alternative gets its own input row
  (:class:`~gradiend.objectives.base.TargetBatch`);
- rows are right-padded (pad = EOS when the tokenizer has no pad token) with an attention mask;
- a row with no text before its mask is a ValueError naming the row (a causal LM needs context);
- an input longer than ``max_length`` (by default min(tokenizer limit, model positions)) keeps its
  *last* ``max_length`` tokens: left truncation never cuts a predicted position (a target with more
  pieces than ``max_length`` is a ValueError naming the row).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from gradiend.objectives.base import IGNORE_ID, Objective, TargetBatch, row_error
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
        prefixes = tokenizer([c.rstrip() for c in contexts], add_special_tokens=True)["input_ids"]
        inputs, second = [], []  # (input ids, factual ids, alternative ids, row) per input row
        for i, prefix in enumerate(prefixes):
            f_ids = ids["factual"][i]
            a_ids = None if ids["alternative"] is None else ids["alternative"][i]
            if a_ids is None:
                inputs.append((prefix + f_ids[:-1], f_ids, [], i))
            elif _one_input_fits_both(f_ids, a_ids):
                longer = max(f_ids, a_ids, key=len)
                inputs.append((prefix + longer[:-1], _padded(f_ids, len(longer)), _padded(a_ids, len(longer)), i))
            else:
                inputs.append((prefix + f_ids[:-1], f_ids, [IGNORE_ID] * len(f_ids), i))
                second.append((prefix + a_ids[:-1], [IGNORE_ID] * len(a_ids), a_ids, i))
        inputs += second
        rows, starts = [], []
        for tokens, f_ids, _, row in inputs:
            cut = 0 if limit is None else max(0, len(tokens) - limit)
            if len(f_ids) > len(tokens) - cut:
                raise row_error(row, masked[row], f"has a target of {len(f_ids)} sub-tokens, more than "
                                                  f"max_length={limit} positions can predict")
            rows.append(tokens[cut:])
            starts.append(len(tokens) - cut - len(f_ids))  # the prefix's last token
        lengths = torch.tensor([len(row) for row in rows])
        input_ids = pad_sequence([torch.tensor(row, dtype=torch.long) for row in rows], batch_first=True,
                                 padding_value=int(tokenizer.pad_token_id))
        attention_mask = (torch.arange(input_ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).long()
        input_row = torch.tensor([r for r, (_, f_ids, _, _) in enumerate(inputs) for _ in f_ids], dtype=torch.long)
        return TargetBatch(
            inputs={"input_ids": input_ids, "attention_mask": attention_mask},
            row_index=torch.tensor([row for *_, row in inputs], dtype=torch.long)[input_row],
            position=torch.tensor([start + s for start, (_, f_ids, _, _) in zip(starts, inputs) for s in range(len(f_ids))],
                                  dtype=torch.long),
            factual_ids=torch.tensor([t for _, f_ids, _, _ in inputs for t in f_ids], dtype=torch.long),
            alternative_ids=(torch.tensor([t for _, _, a_ids, _ in inputs for t in a_ids], dtype=torch.long)
                             if ids["alternative"] is not None else None),
            n_rows=len(prefixes),
            input_row=input_row if second else None,
        )


def _one_input_fits_both(f_ids: list[int], a_ids: list[int]) -> bool:
    """Whether the shorter target's input (prefix + its pieces but the last) starts the longer's."""
    short, long = sorted((f_ids, a_ids), key=len)
    return short[:-1] == long[: len(short) - 1]


def _padded(ids: list[int], length: int) -> list[int]:
    return ids + [IGNORE_ID] * (length - len(ids))
