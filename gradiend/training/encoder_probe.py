"""In-training encoder evaluation: how well the encoded value separates the two classes.

Every held-out row is encoded with batched forward-mode differentiation
(:meth:`ModelWithGradiend.encode_batch`: one JVP pass per batch, no backward), and scored by the
Pearson correlation of encoded value and label plus the mean encoded value per class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from gradiend.training.rows import TRAINING_LABEL, Rows


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0.0 with fewer than two rows or no variance (nothing to correlate)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denominator) if denominator > 0 else 0.0


@dataclass(frozen=True)
class ProbeResult:
    correlation: float
    mean_by_class: dict[str, float]
    n_by_class: dict[str, int]
    encoded: np.ndarray


class EncoderProbe:
    """Encodes a fixed set of labelled rows; ``target_classes[0]`` is label +1, ``[1]`` label −1."""

    def __init__(self, rows: Rows, target_classes: Sequence[str], kind: str, batch_size: int,
                 progress: bool = True):
        frame = rows.frame
        self.masked = frame["masked"].tolist()
        self.factual = frame["factual"].tolist()
        self.alternative = frame["alternative"].tolist()
        self.labels = frame[TRAINING_LABEL].to_numpy(dtype=np.float64)
        self.classes = {1.0: target_classes[0], -1.0: target_classes[1]}
        self.kind = kind
        self.batch_size = batch_size
        self.progress = progress

    def __len__(self) -> int:
        return len(self.masked)

    @torch.no_grad()
    def encode(self, model_with_gradiend) -> np.ndarray:
        values = []
        starts = range(0, len(self), self.batch_size)
        for start in tqdm(starts, desc="encoder eval", leave=False, disable=not self.progress or len(starts) < 2):
            stop = start + self.batch_size
            encoded = model_with_gradiend.encode_batch(self.masked[start:stop], self.factual[start:stop],
                                                       self.alternative[start:stop], kind=self.kind)
            values.append(encoded.reshape(encoded.shape[0], -1)[:, 0].detach().double().cpu().numpy())
        return np.concatenate(values)

    def evaluate(self, model_with_gradiend) -> ProbeResult:
        encoded = self.encode(model_with_gradiend)
        means, counts = {}, {}
        for label, cls in self.classes.items():
            selected = encoded[self.labels == label]
            counts[cls] = int(selected.size)
            means[cls] = float(selected.mean()) if selected.size else float("nan")
        return ProbeResult(pearson(encoded, self.labels), means, counts, encoded)
