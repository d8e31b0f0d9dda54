"""Choosing input dimensions by importance: the keep-set rule shared by pruning and top-k queries.

Keep-set = ``mask`` ∧ ``importance ≥ threshold``, then the ``topk`` most important survivors
(an int is a count, a float in (0, 1] a fraction of the survivors, rounded up). Ties go to the
lower index, so a selection is deterministic; a NaN importance is never ranked.

:func:`keep_indices` applies the rule to the concatenation of many tensors (pre-pruning: one per
base-model parameter) without concatenating them: the ``k``-th largest value is found by a radix
select over order-preserving 32-bit keys (a histogram of the upper 16 bits, then of the lower 16
among the entries whose upper bits are the k-th's), each pass streaming over chunks of
``CHUNK`` entries, so no temporary is larger than a chunk and the answer is exactly that of a sort.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch

CHUNK = 1 << 22
"""Entries per streamed chunk: bounds every temporary of :func:`keep_indices` (about 40 MB)."""
_DIGITS = 1 << 16


def resolve_topk(topk: int | float, available: int) -> int:
    """Number of entries to keep: an int is a count (clipped), a float in (0, 1] a fraction (ceil)."""
    if isinstance(topk, bool) or not isinstance(topk, (int, float)):
        raise ValueError(f"topk must be an int count or a float fraction in (0, 1], got {topk!r}")
    if isinstance(topk, float):
        if not 0.0 < topk <= 1.0:
            raise ValueError(f"a float topk is a fraction in (0, 1], got {topk}")
        return min(available, math.ceil(topk * available))
    if topk < 1:
        raise ValueError(f"an int topk must be at least 1, got {topk}")
    return min(available, topk)


def top_indices(importance: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest values, largest first; ties go to the lower index."""
    return torch.sort(importance, descending=True, stable=True).indices[:k]


def _keys(values: torch.Tensor) -> torch.Tensor:
    """int32 keys ordered like the float32 values (−0.0 and 0.0 get one key; NaN keys are meaningless)."""
    bits = (values + 0.0).view(torch.int32)  # + 0.0 turns −0.0 into 0.0
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _chunks(parts, masks, threshold, finite_only) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """``(part, start, float32 values, survivors)`` for each chunk of each flattened part, in order."""
    for i, part in enumerate(parts):
        flat, mask = part.detach().reshape(-1), None if masks[i] is None else masks[i].reshape(-1)
        for start in range(0, flat.numel(), CHUNK):
            values = flat[start:start + CHUNK].float()
            survivors = torch.isfinite(values) if finite_only else ~torch.isnan(values)
            if mask is not None:
                survivors &= mask[start:start + CHUNK].to(values.device)
            if threshold is not None:
                survivors &= values >= float(threshold)
            yield i, start, values, survivors


def _digit_histogram(parts, masks, threshold, finite_only, high: int | None) -> torch.Tensor:
    """Counts of the survivors' upper key halves (``high`` None), or of the lower halves of those whose
    upper half is ``high``; everything else is counted in one extra bin, dropped at the end."""
    counts = torch.zeros(_DIGITS + 1, dtype=torch.int64)
    for _, _, values, survivors in _chunks(parts, masks, threshold, finite_only):
        keys = _keys(values)
        upper = (keys >> 16) + _DIGITS // 2
        if high is None:
            digits = torch.where(survivors, upper, _DIGITS)
        else:
            digits = torch.where(survivors & (upper == high), keys & (_DIGITS - 1), _DIGITS)
        counts += torch.bincount(digits.cpu(), minlength=_DIGITS + 1)
    return counts[:_DIGITS]


def _kth_digit(counts: torch.Tensor, k: int) -> tuple[int, int]:
    """``(digit of the k-th largest entry, entries with a larger digit)``."""
    at_least = counts.flip(0).cumsum(0).flip(0)  # at_least[d] = entries with digit >= d
    digit = int((at_least >= k).nonzero().max())
    return digit, int(at_least[digit] - counts[digit])


def keep_indices(parts: Sequence[torch.Tensor], topk=None, threshold=None,
                 masks: Sequence[torch.Tensor | None] | None = None, finite_only: bool = False) -> list[torch.Tensor]:
    """The keep-set (module docstring) over the concatenation of ``parts``, as sorted flat indices
    into each part; ``masks`` (one bool tensor or None per part) restricts the survivors, and
    ``finite_only`` drops infinite values too. Keeping nothing is an error. Memory: the result plus
    one chunk's temporaries."""
    masks = list(masks) if masks is not None else [None] * len(parts)
    high_counts = _digit_histogram(parts, masks, threshold, finite_only, None)
    available = int(high_counts.sum())
    k = available if topk is None else resolve_topk(topk, available) if available else 0
    if k == 0:
        raise ValueError("pruning would keep no input dimension")
    cut, ties = None, 0  # keep survivors with key > cut, plus the first `ties` with key == cut
    if k < available:
        high, above = _kth_digit(high_counts, k)
        low, above_low = _kth_digit(_digit_histogram(parts, masks, threshold, finite_only, high), k - above)
        cut, ties = (high - _DIGITS // 2) * _DIGITS + low, k - above - above_low
    # one output allocated up front: no long-lived piece lands between the chunks' temporaries, which
    # would keep the allocator from reusing their memory
    kept, filled, bounds = torch.empty(k, dtype=torch.long), 0, [0] * (len(parts) + 1)
    for i, start, values, survivors in _chunks(parts, masks, threshold, finite_only):
        if cut is not None:
            keys = _keys(values)
            tied = (survivors & (keys == cut)).nonzero().reshape(-1)[:ties]
            ties -= tied.numel()
            survivors &= keys > cut
            survivors[tied] = True
        chosen = survivors.nonzero().reshape(-1)
        kept[filled:filled + chosen.numel()] = chosen.cpu() + start
        filled += chosen.numel()
        bounds[i + 1] = filled
    for i in range(1, len(bounds)):  # a part without chunks (no entries) ends where the previous one did
        bounds[i] = max(bounds[i], bounds[i - 1])
    return [kept[bounds[i]:bounds[i + 1]] for i in range(len(parts))]


def keep_mask(importance, size: int, topk=None, threshold=None, mask=None) -> torch.Tensor:
    """Boolean keep-set over ``size`` dimensions (see module docstring); keeping nothing is an error."""
    if topk is None and threshold is None and mask is None:
        raise ValueError("prune needs at least one of topk, threshold or mask")
    importance = torch.as_tensor(importance).detach().float().cpu().reshape(-1)
    if importance.numel() != size:
        raise ValueError(f"importance: expected {size} entries, got {importance.numel()}")
    if mask is not None:
        mask = torch.as_tensor(mask).cpu().reshape(-1)
        if mask.dtype != torch.bool or mask.numel() != size:
            raise ValueError(f"mask must be a bool tensor with {size} entries, got {mask.dtype} with {mask.numel()}")
        if topk is None and threshold is None:  # the mask alone: exactly its entries
            if not mask.any():
                raise ValueError("pruning would keep no input dimension")
            return mask.clone()
    keep = torch.zeros(size, dtype=torch.bool)
    keep[keep_indices([importance], topk, threshold, [mask])[0]] = True
    return keep
