"""Choosing input dimensions by importance: the keep-set rule shared by pruning and top-k queries.

Keep-set = ``mask`` ∧ ``importance ≥ threshold``, then the ``topk`` most important survivors
(an int is a count, a float in (0, 1] a fraction of the survivors, rounded up). Ties go to the
lower index, so a selection is deterministic.
"""
from __future__ import annotations

import math

import torch


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


def largest_k(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest values (ties to the lower index), unordered. A k-th value cut is
    O(n) where a sort is O(n log n): pre-pruning runs it over every base-model weight."""
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    cut = torch.kthvalue(values, values.numel() - k + 1).values
    above = (values > cut).nonzero().reshape(-1)
    ties = (values == cut).nonzero().reshape(-1)[: k - above.numel()]
    return torch.cat([above, ties])


def keep_mask(importance, size: int, topk=None, threshold=None, mask=None) -> torch.Tensor:
    """Boolean keep-set over ``size`` dimensions (see module docstring); keeping nothing is an error."""
    if topk is None and threshold is None and mask is None:
        raise ValueError("prune needs at least one of topk, threshold or mask")
    importance = torch.as_tensor(importance).detach().float().cpu().reshape(-1)
    if importance.numel() != size:
        raise ValueError(f"importance: expected {size} entries, got {importance.numel()}")
    keep = torch.ones(size, dtype=torch.bool)
    if mask is not None:
        mask = torch.as_tensor(mask).cpu().reshape(-1)
        if mask.dtype != torch.bool or mask.numel() != size:
            raise ValueError(f"mask must be a bool tensor with {size} entries, got {mask.dtype} with {mask.numel()}")
        keep &= mask
    if threshold is not None:
        keep &= importance >= float(threshold)
    if topk is not None:
        survivors = keep.nonzero().reshape(-1)
        k = resolve_topk(topk, int(survivors.numel())) if survivors.numel() else 0
        keep = torch.zeros_like(keep)
        keep[survivors[largest_k(importance[survivors], k)]] = True
    if not keep.any():
        raise ValueError("pruning would keep no input dimension")
    return keep
