"""Masked LM objective: score the factual / alternative token at every mask of a row.

Rules (they match the original package's labelling, docs/design.md §4):
- the placeholder (``"[MASK]"`` by default) becomes ``tokenizer.mask_token``; every mask of a row is
  scored, all with the target's token id;
- a row with exactly one mask and a target of ``k > 1`` sub-tokens gets ``k`` consecutive masks,
  scored by the ``k`` sub-tokens in order; a row with several masks scores each with the first
  sub-token;
- the factual and alternative targets share one input, so they must be scored at the same
  positions: a single-mask row whose factual and alternative tokens have different sub-token counts
  is a ValueError (prepare such rows separately, once with ``factual`` and once with the
  alternative as ``factual``, and compute the two losses on their own inputs);
- target ids are the tokens the target adds after its left context (:mod:`.tokens`), so byte-level
  BPE masked LMs (RoBERTa) score " she", not "she";
- truncation (to ``max_length``, by default min(tokenizer limit, model positions)) that would cut a
  mask is a ValueError naming the row; inputs are right-padded to the batch's longest row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from gradiend.objectives.base import Objective, TargetBatch, row_error


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
        texts, expected, labels_f, labels_a = [], [], [], []
        for i, text in enumerate(masked):
            n_masks = text.count(mask)
            f_ids = ids["factual"][i]
            a_ids = None if ids["alternative"] is None else ids["alternative"][i]
            # masks per placeholder: a single mask widens to a multi-token target, several score its first
            width = max(len(f_ids), len(a_ids or [])) if n_masks == 1 else 1
            if width > 1 and a_ids is not None and len(a_ids) != len(f_ids):
                raise row_error(
                    i, text,
                    f"has factual {targets['factual'][i]!r} ({len(f_ids)} sub-tokens) and alternative "
                    f"{targets['alternative'][i]!r} ({len(a_ids)} sub-tokens): both must be scored at "
                    "the same mask positions; prepare the two targets as separate batches",
                )
            texts.append(text.replace(mask, tokenizer.mask_token * width))
            expected.append(width * n_masks)
            labels_f.extend(f_ids[:width] * n_masks)
            labels_a.extend(a_ids[:width] * n_masks if a_ids is not None else [])

        encoded = tokenizer(
            texts,
            padding="longest",
            padding_side="right",
            truncation=limit is not None,
            max_length=limit,
            return_tensors="pt",
        )
        is_mask = encoded["input_ids"] == tokenizer.mask_token_id
        _check_mask_counts(is_mask, expected, masked, limit, mask)
        row_index, position = torch.nonzero(is_mask, as_tuple=True)
        return TargetBatch(
            inputs=dict(encoded),
            row_index=row_index,
            position=position,
            factual_ids=torch.tensor(labels_f, dtype=torch.long),
            alternative_ids=None if ids["alternative"] is None else torch.tensor(labels_a, dtype=torch.long),
            n_rows=len(masked),
        )


def _check_mask_counts(is_mask, expected, masked, limit, mask) -> None:
    """Every expected mask must survive tokenization and truncation, and no unexpected one appear."""
    expected = torch.tensor(expected)
    found = is_mask.sum(dim=1)
    cut = torch.nonzero(found < expected).flatten().tolist()
    if cut:
        i = cut[0]
        raise row_error(
            i, masked[i],
            f"loses {int(expected[i] - found[i])} of its {int(expected[i])} mask(s) to truncation at "
            f"max_length={limit} tokens; shorten the text or raise max_length",
            len(cut) - 1,
        )
    extra = torch.nonzero(found > expected).flatten().tolist()
    if extra:
        i = extra[0]
        raise row_error(
            i, masked[i],
            f"has {int(found[i])} mask tokens after tokenization but {int(expected[i])} {mask!r} "
            "placeholder(s): the text must not contain the tokenizer's own mask token",
        )
