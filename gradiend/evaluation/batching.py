"""Small input helpers shared by the scorers: padding to the batch, length limits, devices."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from gradiend.objectives.base import length_limit, model_max_positions
from gradiend.util.devices import input_device


def model_device(model) -> torch.device:
    """Where a model's inputs go (its first device when it is split over several)."""
    return input_device(model)


def max_input_length(model, tokenizer) -> int:
    """The model's own position limit and the tokenizer's limit, whichever is smaller.

    Models with fewer than 256 positions must work (docs/design.md §5), so nothing here assumes 256.
    """
    return length_limit(model_max_positions(model), tokenizer) or 512


def pad_id(tokenizer) -> int:
    """Padding id; decoder-only tokenizers without one pad with end-of-sequence (never scored)."""
    return next((int(v) for v in (tokenizer.pad_token_id, tokenizer.eos_token_id) if v is not None), 0)


def pad_right(rows: Sequence[Sequence[int]], padding: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to the longest row: ``(input_ids, attention_mask)``, both ``long``."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), padding, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
        attention[i, : len(row)] = 1
    return ids, attention


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    if size < 1:
        raise ValueError(f"batch size must be ≥ 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def forward_logits(model, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Logits of one padded batch, as float32, on the model's device, without gradients."""
    device = model_device(model)
    with torch.no_grad():
        out = model(input_ids=ids.to(device), attention_mask=attention.to(device))
    return out.logits.float()


def length_order(rows: Sequence[Sequence[int]]) -> list[int]:
    """Row indices sorted by length (stable), so batches of similar rows pad little."""
    return sorted(range(len(rows)), key=lambda i: len(rows[i]))
