"""``FeatureLearningDefinition``: which two classes a GRADIEND's feature separates, and the others.

``ModelWithGradiend.from_pretrained(..., feature_definition=...)`` accepts this or any object with the
same ``pair`` / ``classes`` attributes and sets ``feature_class_encoding_direction`` from it:
``pair[0]`` → +1, ``pair[1]`` → −1, every other class of ``classes`` → 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class FeatureLearningDefinition:
    """``pair``: the +1 and the −1 class; ``classes``: every class of the data (optional)."""

    pair: tuple[str, str]
    classes: Sequence[str] | None = None


def directions_from_definition(definition: Any) -> dict[str, int]:
    """``{pair[0]: +1, pair[1]: −1, every other class of definition.classes: 0}``."""
    pair = getattr(definition, "pair", None)
    if pair is None or isinstance(pair, str) or len(tuple(pair)) != 2:
        raise ValueError(f"feature_definition must have a `pair` of two classes, got {pair!r}")
    positive, negative = (str(c) for c in pair)
    if positive == negative:
        raise ValueError(f"feature_definition.pair names one class twice: {pair!r}")
    classes = getattr(definition, "classes", None) or ()
    return {**{str(c): 0 for c in classes}, positive: 1, negative: -1}
