"""Masked LM objective: score the factual / alternative token at every mask of a row.

Rules (they match the original package's labelling, docs/design.md §4):
- the placeholder (``"[MASK]"`` by default) becomes ``tokenizer.mask_token``; every mask of a row is
  scored, all with the target's token id;
- a row with exactly one mask and a target of ``k > 1`` sub-tokens gets ``k`` consecutive masks,
  scored by the ``k`` sub-tokens in order (the target's probability is the product of theirs); a
  row with several masks scores each with the first sub-token;
- the factual and alternative targets share one input when they need the same number of masks;
  otherwise (a single mask, ``k_f != k_a`` sub-tokens) the row gets a second input: the factual
  target is scored on the text with ``k_f`` masks, the alternative on the text with ``k_a`` masks,
  as the original package prepares the two separately (:class:`~gradiend.objectives.base.TargetBatch`);
- target ids are the tokens the target adds after its left context (:mod:`.tokens`), so byte-level
  BPE masked LMs (RoBERTa) score " she", not "she";
- truncation (to ``max_length``, by default min(tokenizer limit, model positions)) that would cut a
  mask is a ValueError naming the row; inputs are right-padded to the batch's longest row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from gradiend.objectives.base import IGNORE_ID, Objective, TargetBatch, row_error


def _masked_input(text: str, mask: str, mask_token: str, ids: list[int], n_masks: int) -> tuple[str, list[int]]:
    """The text with each placeholder widened for ``ids`` (all of them for a single mask, else the
    first) and the ids its masks score, in order."""
    width = len(ids) if n_masks == 1 else 1
    return text.replace(mask, mask_token * width), ids[:width] * n_masks


@dataclass
class MaskedLMObjective(Objective):
    name = "masked_lm"

    def _check_rows(self, tokenizer, masked: Sequence[str], contexts: list[str]) -> None:
        if getattr(tokenizer, "mask_token", None) is None:
            raise ValueError(
                f"the masked LM objective needs a tokenizer with a mask token; "
                f"{getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)!r} has none"
            )

    def _batch(self, tokenizer, masked, contexts, targets, ids, limit, mask) -> TargetBatch:
        with_alternative = ids["alternative"] is not None
        inputs, second = [], []  # (text, factual ids, alternative ids, row) per input row
        for i, text in enumerate(masked):
            n_masks = text.count(mask)
            f_text, f_ids = _masked_input(text, mask, tokenizer.mask_token, ids["factual"][i], n_masks)
            if not with_alternative:
                inputs.append((f_text, f_ids, [], i))
                continue
            a_text, a_ids = _masked_input(text, mask, tokenizer.mask_token, ids["alternative"][i], n_masks)
            if len(a_ids) == len(f_ids):
                inputs.append((f_text, f_ids, a_ids, i))
            else:  # different sub-token counts: each target on its own input
                inputs.append((f_text, f_ids, [IGNORE_ID] * len(f_ids), i))
                second.append((a_text, [IGNORE_ID] * len(a_ids), a_ids, i))
        inputs += second

        encoded = tokenizer(
            [text for text, *_ in inputs],
            padding="longest",
            padding_side="right",
            truncation=limit is not None,
            max_length=limit,
            return_tensors="pt",
        )
        is_mask = encoded["input_ids"] == tokenizer.mask_token_id
        owners = [row for *_, row in inputs]
        _check_mask_counts(is_mask, [len(f) for _, f, _, _ in inputs], [masked[r] for r in owners], owners, limit, mask)
        input_row, position = torch.nonzero(is_mask, as_tuple=True)  # row-major: the masks of each input in order
        return TargetBatch(
            inputs=dict(encoded),
            row_index=torch.tensor(owners, dtype=torch.long)[input_row],
            position=position,
            factual_ids=torch.tensor([t for _, f, _, _ in inputs for t in f], dtype=torch.long),
            alternative_ids=torch.tensor([t for _, _, a, _ in inputs for t in a], dtype=torch.long) if with_alternative else None,
            n_rows=len(masked),
            input_row=input_row if second else None,
        )


def _check_mask_counts(is_mask, expected, texts, owners, limit, mask) -> None:
    """Every expected mask of each input (``texts[i]``, the text of row ``owners[i]``) must survive
    tokenization and truncation, and no unexpected one appear."""
    expected = torch.tensor(expected)
    found = is_mask.sum(dim=1)
    cut = torch.nonzero(found < expected).flatten().tolist()
    if cut:
        i = cut[0]
        raise row_error(
            owners[i], texts[i],
            f"loses {int(expected[i] - found[i])} of its {int(expected[i])} mask(s) to truncation at "
            f"max_length={limit} tokens; shorten the text or raise max_length",
            len({owners[j] for j in cut}) - 1,
        )
    extra = torch.nonzero(found > expected).flatten().tolist()
    if extra:
        i = extra[0]
        raise row_error(
            owners[i], texts[i],
            f"has {int(found[i])} mask tokens after tokenization but {int(expected[i])} {mask!r} "
            "placeholder(s): the text must not contain the tokenizer's own mask token",
        )
