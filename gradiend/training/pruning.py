"""Pre-pruning: keep the base-model entries whose mean source gradient over a few training rows is
largest, so the GRADIEND, its optimiser and every step scale with the kept entries. The mean of the
per-row gradients is the gradient of the mean per-row loss: one forward and backward per chunk.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gradiend.model.topk import keep_mask
from gradiend.util.devices import input_device
from gradiend.util.eval_mode import eval_mode
from gradiend.util.io import load_safetensors, save_safetensors, write_json
from gradiend.util.logging import get_logger

logger = get_logger(__name__)

IMPORTANCE_FILE = "importance.safetensors"
MASK_FILE = "mask.safetensors"
SUMMARY_FILE = "summary.json"


def stratified_sample(feature_class_ids: Sequence[int], n_samples: int, seed: int) -> list[int]:
    """Row positions spread evenly over the two target transitions (``feature_class_id`` 0 and 1; an odd
    remainder to 0); a transition with fewer rows than its share is sampled with replacement."""
    ids = np.asarray(feature_class_ids)
    rng = random.Random(seed)
    chosen: list[int] = []
    for tid in (0, 1):
        share = n_samples // 2 + (1 if tid < n_samples % 2 else 0)
        rows = np.flatnonzero(ids == tid).tolist()
        if not rows:
            raise ValueError(f"pre-pruning: no training rows for feature_class_id={tid}")
        chosen.extend(rng.sample(rows, share) if share <= len(rows) else rng.choices(rows, k=share))
    rng.shuffle(chosen)
    return chosen


@dataclass
class PrePruneResult:
    """Importance and kept entries per mapped base parameter (each shaped like the parameter)."""

    importance: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]

    @property
    def n_total(self) -> int:
        return sum(m.numel() for m in self.mask.values())

    @property
    def n_kept(self) -> int:
        return int(sum(int(m.sum()) for m in self.mask.values()))

    def flat_mask(self) -> torch.Tensor:
        return torch.cat([m.reshape(-1) for m in self.mask.values()])

    def save(self, folder: str | Path) -> Path:
        """``importance.safetensors``, ``mask.safetensors`` and ``summary.json`` in ``folder``."""
        folder = Path(folder)
        save_safetensors(self.importance, folder / IMPORTANCE_FILE)
        save_safetensors(self.mask, folder / MASK_FILE)
        per_param = {name: int(m.sum()) for name, m in self.mask.items()}
        write_json(folder / SUMMARY_FILE, {"n_total": self.n_total, "n_kept": self.n_kept,
                                           "kept_per_parameter": per_param})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "PrePruneResult":
        folder = Path(folder)
        importance = load_safetensors(folder / IMPORTANCE_FILE)
        mask = load_safetensors(folder / MASK_FILE)
        if list(importance) != list(mask):
            # safetensors stores keys sorted; both files hold the same names
            raise ValueError(f"{folder}: importance and mask name different parameters")
        return cls(importance=importance, mask={k: v.bool() for k, v in mask.items()})

    def ordered_as(self, names: Sequence[str]) -> "PrePruneResult":
        """Same result with parameters in ``names`` order (the GRADIEND's input order)."""
        missing = [n for n in names if n not in self.mask]
        extra = [n for n in self.mask if n not in set(names)]
        if missing or extra:
            raise ValueError(f"pre-prune mask does not match the model's parameters: missing {missing[:5]}, "
                             f"unknown {extra[:5]}")
        return PrePruneResult({n: self.importance[n] for n in names}, {n: self.mask[n] for n in names})


def split_flat(flat: torch.Tensor, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Cut a flat vector (map order) back into per-parameter tensors."""
    sizes = [math.prod(shape) for shape in shapes.values()]
    if sum(sizes) != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} entries, the parameters {sum(sizes)}")
    return {name: part.reshape(shape) for (name, shape), part in zip(shapes.items(), flat.split(sizes))}


def mean_source_gradient(model, tokenizer, objective, params, rows, kind: str, batch_size: int,
                         max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Mean over ``rows`` of the per-row gradients of loss ``kind``, per mapped parameter: the
    gradient of the mean per-row loss, one backward per ``batch_size`` rows."""
    from gradiend.objectives.gradients import parameter_gradients

    total = len(rows)
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, total, batch_size):
        chunk = rows.iloc[start:start + batch_size]
        batch = objective.prepare(tokenizer, chunk["masked"].tolist(), chunk["factual"].tolist(),
                                  chunk["alternative"].tolist(), max_length=max_length)
        batch = batch.to(input_device(model))
        grads = parameter_gradients(model, params, objective, batch, [kind], reduction="rows")[kind]
        weight = len(chunk) / total
        for name, grad in grads.items():
            scaled = grad * weight
            sums[name] = scaled if name not in sums else sums[name] + scaled
    return sums


def compute_pre_prune_mask(model, tokenizer, objective, params, rows, config, seed: int,
                           max_length: int | None = None) -> PrePruneResult:
    """Importance ``|mean source gradient|`` over a stratified sample of training ``rows`` and the
    entries kept over all mapped ``params`` (GRADIEND input order) together."""
    sample_seed = config.seed if config.seed is not None else seed
    picked = stratified_sample(rows["feature_class_id"].tolist(), config.n_samples, sample_seed)
    sample = rows.iloc[picked]
    with eval_mode(model):
        mean = mean_source_gradient(model, tokenizer, objective, params, sample, config.source,
                                    config.batch_size, max_length)
    importance = {name: mean[name].abs().float().cpu() for name in params}
    flat = torch.cat([t.reshape(-1) for t in importance.values()])
    try:  # the keep-set rule of post-pruning; a non-finite importance is never kept
        keep = keep_mask(flat, flat.numel(), config.topk, config.threshold, mask=torch.isfinite(flat))
    except ValueError as error:
        raise ValueError(f"pre-pruning keeps no entry (topk={config.topk}, "
                         f"threshold={config.threshold})") from error
    mask = {n: m.clone() for n, m in split_flat(keep, {n: t.shape for n, t in importance.items()}).items()}
    logger.info("pre-pruning kept %d of %d entries (%d rows, source %s)", int(keep.sum()), keep.numel(),
                len(sample), config.source)
    return PrePruneResult(importance=importance, mask=mask)
