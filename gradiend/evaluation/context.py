"""What an evaluation needs, gathered in one object that a trainer or a workflow stage can fill.

The evaluators never reach into a trainer: they read :class:`EvaluationParts`. A trainer provides
them through ``evaluation_parts()``; a workflow stage builds them from files (a loaded
:class:`~gradiend.model.with_gradiend.ModelWithGradiend`, the unified table, the neutral texts).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from gradiend.data.tables import ALTERNATIVE, FACTUAL, FACTUAL_CLASS, MASKED, SPLIT, TEXT
from gradiend.evaluation.tokens import MASK_PLACEHOLDER

# Every evaluation draws its row samples with this seed, never with a training seed: all seeds of an
# experiment are scored on the same rows, and the library and the workflow sample the same rows.
EVALUATION_SEED = 0


@dataclass
class EvaluationParts:
    """A model with its GRADIEND, the unified data table, neutral texts, and evaluation settings.

    ``target_classes`` default to the classes of the model's encoding direction (+1 class first).
    ``excluded_words`` are never chosen as neutral mask targets; ``ignore_tokens`` are skipped by
    the LMS (and excluded from neutral masks too).
    """

    model_with_gradiend: Any
    data: pd.DataFrame
    neutral_data: pd.DataFrame | Sequence[str] | None = None
    target_classes: Sequence[str] | None = None
    seed: int = EVALUATION_SEED
    batch_size: int = 32
    excluded_words: Sequence[str] = ()
    ignore_tokens: Sequence[str] | None = None
    output_dir: str | Path | None = None
    encoder_max_size: int | None = None
    decoder_max_size_training_like: int | None = None
    decoder_max_size_neutral: int | None = None
    decoder_lrs: Sequence[float] | None = None
    decoder_feature_factors: Sequence[float] | None = None
    img_format: str = "png"

    def __post_init__(self) -> None:
        if self.target_classes is None:
            self.target_classes = classes_of(self.model_with_gradiend)
        self.target_classes = [str(c) for c in self.target_classes]
        if len(self.target_classes) != 2:
            raise ValueError(f"evaluation needs exactly two target classes, got {self.target_classes}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def neutral_texts(self) -> list[str] | None:
        """The neutral texts (column ``text``), or None when there is no neutral data."""
        data = self.neutral_data
        if isinstance(data, pd.DataFrame):
            if TEXT not in data.columns:
                raise ValueError(f"neutral data needs a column {TEXT!r}; found {list(data.columns)}")
            data = data[TEXT].tolist()
        texts = [str(t) for t in (() if data is None else data) if isinstance(t, str) and t.strip()]
        return texts or None

    def target_words(self) -> set[str]:
        """Every factual and alternative token of the data, lower-cased."""
        words = set(self.data[FACTUAL].astype(str)) | set(self.data[ALTERNATIVE].astype(str))
        return {w.lower() for w in words}

    def unmasked_test_texts(self) -> list[str]:
        """The distinct test templates of the pair, every mask filled with the row's factual token."""
        test = self.data[(self.data[SPLIT] == "test") & self.data[FACTUAL_CLASS].isin(self.target_classes)]
        return list(dict.fromkeys(m.replace(MASK_PLACEHOLDER, str(f)) for m, f in zip(test[MASKED], test[FACTUAL])))

    def neutral_exclusions(self) -> set[str]:
        """Words never masked in neutral rows: target tokens, excluded words and ignored tokens."""
        return self.target_words() | {w.lower() for w in self.excluded_words} | {
            w.lower() for w in (self.ignore_tokens or ())}


def classes_of(model_with_gradiend) -> list[str]:
    """The +1 and −1 classes of a model's encoding direction, in that order."""
    directions = getattr(model_with_gradiend, "feature_class_encoding_direction", None) or {}
    positive = [c for c, d in directions.items() if d == 1]
    negative = [c for c, d in directions.items() if d == -1]
    if len(positive) != 1 or len(negative) != 1:
        raise ValueError(
            "cannot infer the target classes: the model's feature_class_encoding_direction is "
            f"{directions!r}; pass target_classes"
        )
    return [positive[0], negative[0]]


def sample_at_most(items: list, max_size: int | None, seed: int) -> list:
    """At most ``max_size`` items drawn with ``seed``, kept in their original order."""
    if max_size is None or len(items) <= max_size:
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), max_size))
    return [items[i] for i in chosen]

