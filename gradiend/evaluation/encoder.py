"""Encoder evaluation: encode held-out feature rows and neutral rows, then compute the metrics.

Rows (docs/design.md §4):
- ``training``: the pair transitions of the split; ``label`` ±1 after source inversion
  (:func:`gradiend.data.rows.select_rows`), encoded from the model's ``source`` gradient;
- ``neutral_training_masked`` (split ``test`` only): each test template un-masked with its factual
  token, then one random non-target word masked (factual gradient of that word, label 0);
- ``neutral_dataset``: the same masking on the neutral texts (label 0).
Every row is encoded by the batched JVP path (:meth:`ModelWithGradiend.encode_batch`): the
directional derivative ``w·∇θL`` of each row in forward mode, no backward pass, and nothing that the
metrics do not read (the reference computes extra gradients here).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from gradiend.data.rows import FEATURE_CLASS_ID, select_rows
from gradiend.data.tables import (ALTERNATIVE, ALTERNATIVE_CLASS, FACTUAL, FACTUAL_CLASS, MASKED, NEUTRAL_DATASET,
                                  NEUTRAL_TRAINING_MASKED, TRAINING_TYPE)
from gradiend.evaluation.context import EvaluationParts, sample_at_most
from gradiend.evaluation.encoder_metrics import encoder_metrics
from gradiend.evaluation.neutral_rows import neutral_masked_rows
from gradiend.util.io import write_json, write_parquet
from gradiend.util.logging import get_logger
from gradiend.util.stats import pearson

logger = get_logger(__name__)

NEUTRAL = "neutral"
METRICS_FILE, ENCODED_FILE, PLOT_FILE = "metrics.json", "encoded.parquet", "distributions"
COLUMNS = ["type", "split", MASKED, FACTUAL, ALTERNATIVE, FACTUAL_CLASS, ALTERNATIVE_CLASS, "transition",
           "source_id", "source_token", "label", "encoded"]


def encode_rows(model_with_gradiend, frame: pd.DataFrame, batch_size: int, kind: str | None = None,
                with_alternative: bool = True, desc: str = "encoding") -> list[float]:
    """Encoded value of each row (``kind`` None: the model's source gradient), ``batch_size`` rows at a time."""
    values: list[float] = []
    starts = range(0, len(frame), batch_size)
    for start in tqdm(starts, desc=desc, leave=False, disable=len(starts) < 2):
        chunk = frame.iloc[start:start + batch_size]
        alternative = list(chunk[ALTERNATIVE]) if with_alternative else None
        encoded = model_with_gradiend.encode_batch(list(chunk[MASKED]), list(chunk[FACTUAL]), alternative, kind=kind)
        values.extend(encoded.detach().to("cpu", torch.float64).reshape(len(chunk), -1)[:, 0].tolist())
    return values


class EncoderEvaluator:
    """Encodes the rows of a split and neutral rows, and scores how the encoder separates them."""

    def __init__(self, parts: EvaluationParts):
        self.parts = parts

    @property
    def model(self):
        return self.parts.model_with_gradiend

    # ------------------------------------------------------------------ rows
    def training_rows(self, split: str, max_size: int | None) -> pd.DataFrame:
        source = self.model.source
        rows = select_rows(self.parts.data, self.parts.target_classes, split, source, max_size=max_size,
                           seed=self.parts.seed)
        frame = rows.frame
        if frame.empty:
            raise ValueError(f"split {split!r} has no rows of the pair {self.parts.target_classes}")
        transition = frame[FEATURE_CLASS_ID].map(rows.transition_names)
        by_source = {"alternative": (frame[ALTERNATIVE_CLASS], frame[ALTERNATIVE]),
                     "factual": (frame[FACTUAL_CLASS], frame[FACTUAL]),
                     "diff": (transition, frame[FACTUAL])}
        source_id, source_token = by_source[source]
        return frame[[MASKED, FACTUAL, ALTERNATIVE, FACTUAL_CLASS, ALTERNATIVE_CLASS]].assign(
            type=TRAINING_TYPE, split=split, transition=transition, source_id=source_id.astype(str),
            source_token=source_token.astype(str), label=frame["label"].astype("int64"))

    def _neutral_frame(self, kind: str, split: str, texts: list[str], max_size: int | None) -> pd.DataFrame:
        texts = sample_at_most(texts, max_size, self.parts.seed)
        rows = neutral_masked_rows(self.model.tokenizer, texts, self.parts.neutral_exclusions(),
                                   seed=f"{self.parts.seed}-{kind}",
                                   causal=getattr(self.model.objective, "name", "") == "causal_lm")
        if len(rows) < len(texts):
            logger.info("%s: %d of %d texts have no maskable neutral word", kind, len(texts) - len(rows), len(texts))
        masked, words = [m for m, _ in rows], [w for _, w in rows]
        return pd.DataFrame({
            "type": kind, "split": split, MASKED: masked, FACTUAL: words, ALTERNATIVE: words,
            FACTUAL_CLASS: NEUTRAL, ALTERNATIVE_CLASS: NEUTRAL, "transition": NEUTRAL, "source_id": NEUTRAL,
            "source_token": words, "label": pd.Series([0] * len(rows), dtype="int64"),
        })

    def encode(self, frame: pd.DataFrame, kind: str | None) -> list[float]:
        """Encoded value per row, in batches (``kind`` None = the model's source gradient)."""
        needs_alternative = (kind or self.model.source) in ("alternative", "diff")
        return encode_rows(self.model, frame, self.parts.batch_size, kind, needs_alternative,
                           f"encoding {frame['type'].iloc[0] if len(frame) else ''}")

    def encoded_frame(self, split: str = "test", max_size: int | None = None) -> pd.DataFrame:
        """All encoded rows of the split plus the neutral variants, as one table (:data:`COLUMNS`)."""
        max_size = self.parts.encoder_max_size if max_size is None else max_size
        parts = [self.training_rows(split, max_size)]
        parts[0]["encoded"] = self.encode(parts[0], kind=None)
        neutral = []
        if split == "test":
            neutral.append(self._neutral_frame(NEUTRAL_TRAINING_MASKED, "test", self.parts.unmasked_test_texts(),
                                               max_size))
        if self.parts.neutral_texts:
            neutral.append(self._neutral_frame(NEUTRAL_DATASET, "neutral", self.parts.neutral_texts, max_size))
        for frame in neutral:
            if len(frame):
                frame["encoded"] = self.encode(frame, kind="factual")
                parts.append(frame)
        return pd.concat(parts, ignore_index=True)[COLUMNS]

    # ------------------------------------------------------------------ evaluation
    def validation_correlation(self, max_size: int | None) -> tuple[float, int]:
        """Pearson(encoded, label) over the ``validation`` rows (at most ``max_size`` per transition)
        and their count: the score seed selection ranks by, in the library's multi-seed loop and in
        the workflow's ``select_seed`` alike."""
        rows = self.training_rows("validation", max_size)
        return pearson(self.encode(rows, kind=None), rows["label"]), len(rows)

    def evaluate(self, split: str = "test", max_size: int | None = None, plot: bool = False,
                 output_dir: str | Path | None = None, return_df: bool = False) -> dict:
        """Metrics of the split; with ``output_dir`` writes metrics.json, encoded.parquet (+ the plot)."""
        frame = self.encoded_frame(split, max_size)
        metrics = encoder_metrics(frame)
        metrics["split"] = split
        if output_dir is not None:
            output_dir = Path(output_dir)
            write_parquet(frame, output_dir / ENCODED_FILE)
            write_json(output_dir / METRICS_FILE, metrics)
        if plot:
            from gradiend.plots.encoder import plot_encoder_distributions

            path = None if output_dir is None else output_dir / f"{PLOT_FILE}.{self.parts.img_format}"
            metrics["figure"] = plot_encoder_distributions(frame, path, correlation=metrics["correlation"])
            if path is not None:
                metrics["plot_path"] = str(path)
        if return_df:
            metrics["encoder_df"] = frame
        return metrics
