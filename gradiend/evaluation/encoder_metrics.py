"""Encoder metrics from a table of encoded rows (docs/design.md §4).

Input: one row per encoded example with the columns ``encoded`` (float), ``label`` (+1 / −1 for
the two target classes after source inversion, 0 for neutral or other rows), ``type``
(``"training"``, ``"neutral_training_masked"``, ``"neutral_dataset"``), ``source_id`` (the class
whose gradient was encoded, ``"neutral"`` for neutral rows) and optionally ``source_token``.
Output: a JSON-ready dict; every key is a string, every value a plain float / int / dict.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradiend.data.tables import ENCODED_COLUMNS, NEUTRAL_TYPES, TRAINING_TYPE
from gradiend.util.stats import pearson  # noqa: F401  (re-exported: callers read it from here)

NEG_BOUNDARY, POS_BOUNDARY, NEUTRAL_BOUNDARY = -0.5, 0.5, 0.0
_STATISTICS = {"mean": np.mean, "min": np.min, "max": np.max, "q1": lambda v: np.quantile(v, 0.25),
               "q3": lambda v: np.quantile(v, 0.75), "std": lambda v: v.std(ddof=0)}


def ternary(values) -> np.ndarray:
    """−1 at or below −0.5, +1 at or above +0.5, 0 between."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values <= NEG_BOUNDARY, -1, np.where(values >= POS_BOUNDARY, 1, 0))


def _correlation_and_accuracy(frame: pd.DataFrame, predict=ternary) -> dict:
    if frame.empty:
        return {"correlation": 0.0, "accuracy": 0.0, "n": 0}
    accuracy = float((predict(frame["encoded"]) == ternary(frame["label"])).mean())
    return {"correlation": pearson(frame["encoded"], frame["label"]), "accuracy": accuracy, "n": int(len(frame))}


def _label_key(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def grouped_statistics(frame: pd.DataFrame, column: str, suffix: str, key=str) -> dict:
    """``mean_<suffix>``, ``min_…``, ``max_…``, ``q1_…``, ``q3_…``, ``std_…``, ``n_…`` of ``encoded`` by ``column``."""
    stats = {f"{name}_{suffix}": {} for name in (*_STATISTICS, "n")}
    for group, values in sorted(frame.groupby(column)["encoded"], key=lambda item: key(item[0])):
        v = values.to_numpy(dtype=np.float64)
        for name, statistic in _STATISTICS.items():
            stats[f"{name}_{suffix}"][key(group)] = float(statistic(v))
        stats[f"n_{suffix}"][key(group)] = len(v)
    return stats


def _label_names(training: pd.DataFrame) -> dict:
    names = {"0": "neutral"}
    for label, ids in training.groupby("label")["source_id"]:
        unique = sorted(set(map(str, ids)))
        names[_label_key(label)] = unique[0] if len(unique) == 1 else "/".join(unique)
    return names


def _mean_by_target(training: pd.DataFrame) -> dict:
    if "source_token" not in training.columns:
        return {}
    result: dict = {}
    for (cls, token), values in training.groupby(["source_id", "source_token"])["encoded"]:
        result.setdefault(str(cls), {})[str(token)] = float(values.mean())
    return result


def encoder_metrics(encoded: pd.DataFrame) -> dict:
    """All encoder metrics of an encoded table; ``correlation`` is Pearson over the training rows."""
    missing = [c for c in ENCODED_COLUMNS if c not in encoded.columns]
    if missing:
        raise ValueError(f"encoded table lacks column(s) {missing}; has {list(encoded.columns)}")
    frame = encoded.assign(encoded=encoded["encoded"].astype(float), label=encoded["label"].astype(float))
    training = frame[frame["type"] == TRAINING_TYPE]
    if training.empty:
        raise ValueError("encoder metrics need training rows; every encoded row is neutral")
    if training["label"].nunique() < 2:
        raise ValueError(
            f"encoder metrics need rows of both target classes; all training rows have label "
            f"{_label_key(training['label'].iloc[0])}"
        )
    neutral = frame[frame["type"].isin(NEUTRAL_TYPES)]
    training_only = _correlation_and_accuracy(training)
    all_data = _correlation_and_accuracy(frame)
    by_type = frame.groupby("type")["encoded"]
    return {
        "correlation": training_only["correlation"],
        "accuracy": all_data["accuracy"],
        "all_data": all_data,
        "training_only": training_only,
        "target_classes_only": _correlation_and_accuracy(training[training["label"] != 0],
                                                         predict=lambda v: np.where(v >= 0, 1, -1)),
        "boundaries": {"neg_boundary": NEG_BOUNDARY, "pos_boundary": POS_BOUNDARY, "neutral_boundary": NEUTRAL_BOUNDARY},
        **grouped_statistics(training, "label", "by_class", key=_label_key),
        **grouped_statistics(training, "source_id", "by_feature_class"),
        "mean_by_type": {str(k): float(v.mean()) for k, v in by_type},
        "abs_mean_by_type": {str(k): float(v.abs().mean()) for k, v in by_type},
        "neutral_mean_by_type": {str(k): float(v.mean()) for k, v in neutral.groupby("type")["encoded"]},
        "mean_by_target": _mean_by_target(training),
        "label_value_to_class_name": _label_names(training),
        "sample_counts": {
            "total": int(len(frame)),
            "by_type": {str(k): int(v) for k, v in frame["type"].value_counts().sort_index().items()},
            "by_label": {_label_key(k): int(v) for k, v in training["label"].value_counts().sort_index().items()},
        },
    }
