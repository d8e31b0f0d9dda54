"""In-training encoder evaluation: held-out rows tokenised once per model, encoded in batches and
scored by the Pearson correlation of encoded value and label plus the mean per class."""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from gradiend.data.rows import TRAINING_LABEL, Rows
from gradiend.util.stats import pearson


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
        self.frame = rows.frame
        self.labels = rows.frame[TRAINING_LABEL].to_numpy(dtype=np.float64)
        self.classes = {1.0: target_classes[0], -1.0: target_classes[1]}
        self.kind = kind
        self.batch_size = batch_size
        self.progress = progress
        self._batches: list = []
        self._prepared_for: weakref.ref | None = None  # the model the batches were prepared with

    def _prepared_batches(self, model_with_gradiend) -> list:
        """The rows tokenised into batches once per model (a run evaluates the same rows many times)."""
        owner = self._prepared_for() if self._prepared_for is not None else None
        if owner is not model_with_gradiend:
            chunks = (self.frame.iloc[start:start + self.batch_size]
                      for start in range(0, len(self.frame), self.batch_size))
            self._batches = [model_with_gradiend.prepare(chunk["masked"].tolist(), chunk["factual"].tolist(),
                                                         chunk["alternative"].tolist()) for chunk in chunks]
            self._prepared_for = weakref.ref(model_with_gradiend)
        return self._batches

    @torch.no_grad()
    def encode(self, model_with_gradiend) -> np.ndarray:
        batches = self._prepared_batches(model_with_gradiend)
        values = []
        for batch in tqdm(batches, desc="encoder eval", leave=False, disable=not self.progress or len(batches) < 2):
            encoded = model_with_gradiend.encode_batch(batch, kind=self.kind)
            values.append(encoded.reshape(encoded.shape[0], -1)[:, 0].detach().double().cpu().numpy())
        return np.concatenate(values)

    def evaluate(self, model_with_gradiend) -> ProbeResult:
        encoded = self.encode(model_with_gradiend)
        by_class = {cls: encoded[self.labels == label] for label, cls in self.classes.items()}
        means = {cls: float(values.mean()) if values.size else float("nan") for cls, values in by_class.items()}
        counts = {cls: int(values.size) for cls, values in by_class.items()}
        return ProbeResult(pearson(encoded, self.labels), means, counts, encoded)
