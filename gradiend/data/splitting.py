"""Seeded train/validation/test assignment: by row, or by vocabulary (whole factual tokens held out).
Sizes are ``round(n * ratio)`` for train and validation (half to even), the rest test: 25 → 20/2/3.
"""
from __future__ import annotations

from functools import reduce
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation", "eval": "validation"}

KeyFunctions = Union[Callable[[str], str], Sequence[Callable[[str], str]], None]


def validate_ratios(train_ratio: float, val_ratio: float, test_ratio: float) -> tuple[float, float, float]:
    ratios = (float(train_ratio), float(val_ratio), float(test_ratio))
    if any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"split ratios must be >= 0 and sum to 1, got train/val/test = {ratios}")
    return ratios


def split_sizes(n: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    n_train = min(n, round(n * ratios[0]))
    n_val = min(n - n_train, round(n * ratios[1]))
    return n_train, n_val, n - n_train - n_val


def _labels(order: np.ndarray, sizes: tuple[int, int, int]) -> np.ndarray:
    labels = np.empty(len(order), dtype=object)
    labels[order] = np.repeat(np.array(SPLITS, dtype=object), sizes)
    return labels


def assign_row_splits(n: int, ratios: tuple[float, float, float], seed: int) -> np.ndarray:
    """Split name per row: rows are shuffled with ``seed`` and cut by :func:`split_sizes`."""
    return _labels(np.random.default_rng(seed).permutation(n), split_sizes(n, ratios))


def group_keys(values: Iterable[str], key_functions: KeyFunctions = None) -> list[str]:
    """Normalised group keys (default: strip, then casefold), so "He" and "he" share a group."""
    if key_functions is None:
        key_functions = (str.strip, str.casefold)
    elif callable(key_functions):
        key_functions = (key_functions,)
    return [reduce(lambda value, fn: fn(value), key_functions, value) for value in values]


def _group_sizes(n_groups: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """Like :func:`split_sizes`, but every split with a ratio > 0 gets a group when there are enough."""
    sizes = list(split_sizes(n_groups, ratios))
    wanted = [i for i, r in enumerate(ratios) if r > 0]
    if n_groups >= len(wanted):
        for i in wanted:
            if sizes[i] == 0:
                donor = max(range(3), key=lambda j: sizes[j])
                sizes[donor] -= 1
                sizes[i] += 1
    return sizes[0], sizes[1], sizes[2]


def assign_group_splits(
    values: Sequence[str], ratios: tuple[float, float, float], seed: int, key_functions: KeyFunctions = None
) -> np.ndarray:
    """Split name per row, assigning whole groups (e.g. all rows of one factual token) to one split."""
    keys = group_keys(values, key_functions)
    distinct = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(distinct))
    key_split = dict(zip(distinct, _labels(order, _group_sizes(len(distinct), ratios))))
    return np.array([key_split[k] for k in keys], dtype=object)


def normalise_split_name(value: str) -> str:
    name = str(value).strip().lower()
    return SPLIT_ALIASES.get(name, name)


def split_frame(
    frame,
    ratios: tuple[float, float, float],
    seed: int,
    group_col: Optional[str] = None,
    key_functions: KeyFunctions = None,
):
    """A copy of ``frame`` (fresh index) with a ``split`` column (by row, or by ``group_col`` when given)."""
    out = frame.copy()
    if group_col is None:
        out["split"] = assign_row_splits(len(out), ratios, seed)
    else:
        if group_col not in out.columns:
            raise ValueError(f"split_group_col {group_col!r} is not a column; found {list(out.columns)}")
        out["split"] = assign_group_splits(out[group_col].astype(str).tolist(), ratios, seed, key_functions)
    return out.reset_index(drop=True)
