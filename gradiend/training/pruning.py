"""Pre-pruning: keep the base-model entries whose mean source gradient over a few training rows is
largest, so the GRADIEND, its optimiser and every step scale with the kept entries. The mean of the
per-row gradients is the gradient of the mean per-row loss: one forward and backward per chunk.
"""
from __future__ import annotations

import math
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from gradiend.model.topk import keep_indices
from gradiend.util.devices import input_device
from gradiend.util.eval_mode import eval_mode
from gradiend.util.io import iter_safetensors, load_safetensors, save_safetensors, write_json
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
    """Kept entries per mapped base parameter (sorted flat indices; ``shapes`` holds each parameter's
    shape) and, while it is held, the importance (each tensor shaped like its parameter).

    Training needs only the kept indices (a few per cent of the base model); the importance and the
    boolean masks are base-model sized, so :meth:`without_importance` drops the one and :attr:`mask`
    builds the other on demand.
    """

    kept: dict[str, torch.Tensor]
    shapes: dict[str, tuple[int, ...]]
    importance: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_masks(cls, mask: dict[str, torch.Tensor], importance: dict[str, torch.Tensor] | None = None):
        """From boolean masks shaped like the parameters."""
        return cls({n: m.reshape(-1).nonzero().reshape(-1) for n, m in mask.items()},
                   {n: tuple(m.shape) for n, m in mask.items()}, importance)

    @property
    def mask(self) -> dict[str, torch.Tensor]:
        """Boolean masks shaped like the parameters (True = kept), built now (one byte per entry)."""
        masks = {}
        for name, kept in self.kept.items():
            mask = torch.zeros(math.prod(self.shapes[name]), dtype=torch.bool)
            mask[kept] = True
            masks[name] = mask.reshape(self.shapes[name])
        return masks

    @property
    def n_total(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes.values())

    @property
    def n_kept(self) -> int:
        return sum(int(k.numel()) for k in self.kept.values())

    def kept_per_parameter(self) -> dict[str, int]:
        return {name: int(k.numel()) for name, k in self.kept.items()}

    def flat_mask(self) -> torch.Tensor:
        return torch.cat([m.reshape(-1) for m in self.mask.values()])

    def without_importance(self) -> "PrePruneResult":
        """The same kept entries without the (base-model sized) importance."""
        return PrePruneResult(self.kept, self.shapes)

    def save(self, folder: str | Path) -> Path:
        """``importance.safetensors`` (when held), ``mask.safetensors`` and ``summary.json`` in ``folder``."""
        folder = Path(folder)
        if self.importance is not None:
            save_safetensors(self.importance, folder / IMPORTANCE_FILE)
        save_safetensors(self.mask, folder / MASK_FILE)
        write_json(folder / SUMMARY_FILE, {"n_total": self.n_total, "n_kept": self.n_kept,
                                           "kept_per_parameter": self.kept_per_parameter()})
        return folder

    @classmethod
    def load(cls, folder: str | Path, importance: bool = True) -> "PrePruneResult":
        """Read a folder written by :meth:`save` (or the ``pre_prune`` stage); ``importance=False`` reads
        only the mask, one parameter at a time (what training needs)."""
        folder = Path(folder)
        kept, shapes = {}, {}
        for name, mask in iter_safetensors(folder / MASK_FILE):
            kept[name], shapes[name] = mask.reshape(-1).nonzero().reshape(-1), tuple(mask.shape)
        if not importance:
            return cls(kept, shapes)
        values = load_safetensors(folder / IMPORTANCE_FILE)
        if list(values) != list(kept):
            # safetensors stores keys sorted; both files hold the same names
            raise ValueError(f"{folder}: importance and mask name different parameters")
        return cls(kept, shapes, values)

    def ordered_as(self, names: Sequence[str]) -> "PrePruneResult":
        """Same result with parameters in ``names`` order (the GRADIEND's input order)."""
        missing = [n for n in names if n not in self.kept]
        extra = [n for n in self.kept if n not in set(names)]
        if missing or extra:
            raise ValueError(f"pre-prune mask does not match the model's parameters: missing {missing[:5]}, "
                             f"unknown {extra[:5]}")
        importance = None if self.importance is None else {n: self.importance[n] for n in names}
        return PrePruneResult({n: self.kept[n] for n in names}, {n: self.shapes[n] for n in names}, importance)


def split_flat(flat: torch.Tensor, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Cut a flat vector (map order) back into per-parameter tensors."""
    sizes = [math.prod(shape) for shape in shapes.values()]
    if sum(sizes) != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} entries, the parameters {sum(sizes)}")
    return {name: part.reshape(shape) for (name, shape), part in zip(shapes.items(), flat.split(sizes))}


def accumulator_dtype(dtype: torch.dtype, n_chunks: int) -> torch.dtype:
    """The dtype the mean gradient of a parameter of ``dtype`` is summed in: float32 (the exact sum of
    the float32-cast per-chunk gradients), except for one chunk of a float32 / bfloat16 / float16
    parameter, whose gradient in its own dtype already is that value exactly."""
    return dtype if n_chunks == 1 and dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32


@contextmanager
def _gradients_reach_only(model: torch.nn.Module, params: Mapping[str, torch.nn.Parameter]):
    """Autograd computes gradients for ``params`` alone (no ``.grad`` anywhere else); the model's
    ``requires_grad`` flags and existing ``.grad`` tensors come back afterwards."""
    mapped = {id(p) for p in params.values()}
    saved = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        for param, _, _ in saved:
            param.grad = None
            param.requires_grad_(id(param) in mapped)
        yield
    finally:
        for param, flag, grad in saved:
            param.grad = grad
            param.requires_grad_(flag)


def mean_source_gradient(model, tokenizer, objective, params, rows, kind: str, batch_size: int,
                         max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Mean over ``rows`` of the per-row gradients of loss ``kind``, per mapped parameter: the
    gradient of the mean per-row loss, one backward per ``batch_size`` rows.

    Streamed: each parameter's gradient is added to its running sum (:func:`accumulator_dtype`, in
    place) as soon as the backward pass produces it and released, so memory holds the sums, the
    activations and the gradients still in flight, never a second base-model sized copy. The sums
    are allocated before the first backward, so the backward's short-lived tensors never sit below
    a long-lived one (the allocator keeps freed memory it cannot return: 1.9 GiB on a 1B model in
    bfloat16). The numbers are those of summing ``parameter_gradients(...) * weight`` per chunk
    (``0 + x`` is ``x`` exactly)."""
    from gradiend.objectives.losses import batch_loss

    total = len(rows)
    n_chunks = math.ceil(total / batch_size)
    names: dict[int, list[str]] = {}
    for name, param in params.items():
        names.setdefault(id(param), []).append(name)
    # a parameter the loss does not reach keeps a zero gradient
    sums = {name: torch.zeros(p.shape, dtype=accumulator_dtype(p.dtype, n_chunks), device=p.device)
            for name, p in params.items()}
    weight = 1.0

    def consume(param: torch.Tensor) -> None:
        grad, param.grad = param.grad, None
        for name in names[id(param)]:
            value = grad.to(sums[name].dtype)
            sums[name].add_(value if weight == 1.0 else value * weight)

    unique = {id(p): p for p in params.values()}.values()
    hooks = [param.register_post_accumulate_grad_hook(consume) for param in unique]
    try:
        with _gradients_reach_only(model, params), torch.enable_grad():
            for start in range(0, total, batch_size):
                chunk = rows.iloc[start:start + batch_size]
                batch = objective.prepare(tokenizer, chunk["masked"].tolist(), chunk["factual"].tolist(),
                                          chunk["alternative"].tolist(), max_length=max_length)
                batch = batch.to(input_device(model))
                weight = len(chunk) / total
                batch_loss(objective.scored_logits(model, batch), batch, kind, "rows").backward()
    finally:
        for hook in hooks:
            hook.remove()
    return sums


def compute_pre_prune_mask(model, tokenizer, objective, params, rows, config, seed: int,
                           max_length: int | None = None) -> PrePruneResult:
    """Importance ``|mean source gradient|`` over a stratified sample of training ``rows`` and the
    entries kept over all mapped ``params`` (GRADIEND input order) together.

    Memory: the base model, one running sum per parameter (turned into the importance in place) and
    the kept indices; the top-k over all entries streams over the parameters
    (:func:`gradiend.model.topk.keep_indices`), so no flat copy of the base model is made."""
    sample_seed = config.seed if config.seed is not None else seed
    picked = stratified_sample(rows["feature_class_id"].tolist(), config.n_samples, sample_seed)
    sample = rows.iloc[picked]
    with eval_mode(model):
        importance = mean_source_gradient(model, tokenizer, objective, params, sample, config.source,
                                          config.batch_size, max_length)
    for name, values in importance.items():
        importance[name] = values.abs_().cpu()
    parts = list(importance.values())
    try:  # the keep-set rule of post-pruning; a non-finite importance is never kept
        kept = keep_indices(parts, config.topk, config.threshold, finite_only=True)
    except ValueError as error:
        raise ValueError(f"pre-pruning keeps no entry (topk={config.topk}, "
                         f"threshold={config.threshold})") from error
    result = PrePruneResult(dict(zip(importance, kept)), {n: tuple(t.shape) for n, t in importance.items()},
                            importance)
    logger.info("pre-pruning kept %d of %d entries (%d rows, source %s)", result.n_kept, result.n_total,
                len(sample), config.source)
    return result
