"""Which training rows form the batch of each optimiser step.

Every batch holds rows of one transition (``feature_class_id``) and one ``label``, so its gradient
speaks for one class. Each (transition, label) subgroup is shuffled with the seed and cut into full
batches (the remainder is dropped); a transition's batches are shuffled together, and steps take
transitions in turn (round robin), whatever their sizes. Unlike the original package the schedule
is one endless sequence over the global step: a large transition's later batches are reached in
later "epochs" instead of never, and ``max_steps`` is not capped by the epochs.
"""
from __future__ import annotations

import random
from typing import Mapping, Sequence

import numpy as np


class BatchScheduler:
    """Deterministic round-robin batches of row positions (indices into ``feature_class_ids`` and
    ``labels``); ``group_names`` names transition ids (e.g. ``"she→he"``) in error messages."""

    def __init__(self, feature_class_ids: Sequence[int], labels: Sequence[float], batch_size: int,
                 seed: int, group_names: Mapping[int, str] | None = None):
        ids, labs = np.asarray(feature_class_ids), np.asarray(labels)  # batch_size >= 1: TrainingArguments checks it
        if ids.size == 0:
            raise ValueError("no training rows to schedule")
        names = dict(group_names or {})
        rng = np.random.default_rng(seed)
        groups = []
        for fid in sorted(np.unique(ids).tolist()):
            batches: list[np.ndarray] = []
            for label in sorted(np.unique(labs[ids == fid]).tolist()):
                rows = np.flatnonzero((ids == fid) & (labs == label))
                if rows.size < batch_size:
                    name = names.get(fid, f"feature_class_id={fid}")
                    raise ValueError(
                        f"transition {name} (label {label:+g}) has {rows.size} training rows, fewer than "
                        f"train_batch_size={batch_size}: reduce train_batch_size or add data")
                if batch_size > 1:
                    rows = rng.permutation(rows)
                n_full = rows.size // batch_size
                batches.extend(rows[i * batch_size:(i + 1) * batch_size] for i in range(n_full))
            if batch_size > 1:
                random.Random(seed + fid).shuffle(batches)
            groups.append(tuple(batches))
        self._groups = tuple(groups)  # per transition (sorted ids): its batches

    @property
    def batches_per_epoch(self) -> int:
        """Number of full batches over all transitions: one pass's worth of steps."""
        return sum(len(g) for g in self._groups)

    def key(self, step: int) -> tuple[int, int]:
        """``(group, batch)`` index of the batch used at 0-based ``step``: equal keys, equal rows."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        group = step % len(self._groups)
        return group, (step // len(self._groups)) % len(self._groups[group])

    def batch(self, step: int) -> np.ndarray:
        """Row positions of the batch used at 0-based ``step`` (any step >= 0 is valid)."""
        return self.rows_of(self.key(step))

    def keys_used(self, n_steps: int) -> list[tuple[int, int]]:
        """Distinct batch keys of steps ``0 … n_steps-1``, in first-use order."""
        period = len(self._groups) * max(len(g) for g in self._groups)
        return list(dict.fromkeys(self.key(s) for s in range(min(n_steps, period))))

    def rows_of(self, key: tuple[int, int]) -> np.ndarray:
        group, index = key
        return self._groups[group][index]
