"""Comparing features learned on one base model: shared important parameters, cross-encoding.

- Top-k overlap: each GRADIEND's ``topk`` most important input dimensions (importance from
  ``part``, e.g. ``|decoder weight|``) as *base-global* indices (positions in the unpruned
  concatenation of the base model's mapped parameters), so that differently pre-pruned GRADIENDs of
  one model are comparable; per pair ``shared = |A ∩ B|`` and ``overlap = shared / min(|A|, |B|)``.
- Cross-encoding: every experiment's encoder applied to every experiment's test rows (its own
  gradient ``source``); per (encoder, data experiment, factual class) the number of rows and the
  mean and standard deviation of the encoded values.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

TOPK_COLUMNS = ["experiment_a", "experiment_b", "k_a", "k_b", "shared", "overlap"]
CROSS_COLUMNS = ["encoder_experiment", "data_experiment", "factual_class", "n", "mean_encoded", "std_encoded"]


def topk_sets(gradiends: Mapping[str, object], topk: int | float, part: str = "decoder-weight") -> dict[str, set]:
    """Experiment -> base-global indices of its ``topk`` most important input dimensions."""
    return {name: set(gradiend.base_global_indices()[gradiend.get_topk_weights(part, topk)].tolist())
            for name, gradiend in gradiends.items()}


def topk_overlap(sets: Mapping[str, set]) -> pd.DataFrame:
    """Every ordered pair (including a set with itself): sizes, shared count and overlap fraction."""
    rows = []
    for a, first in sets.items():
        for b, second in sets.items():
            shared = len(first & second)
            smaller = min(len(first), len(second))
            rows.append({"experiment_a": a, "experiment_b": b, "k_a": len(first), "k_b": len(second),
                         "shared": shared, "overlap": shared / smaller if smaller else 0.0})
    return pd.DataFrame(rows, columns=TOPK_COLUMNS)


def comparison_rows(table: pd.DataFrame, target_classes: Sequence[str], max_size: int | None, seed: int) -> pd.DataFrame:
    """The test rows of the pair ``target_classes``, at most ``max_size`` per transition (seeded)."""
    from gradiend.data.rows import select_rows

    return select_rows(table, list(target_classes), "test", "factual", max_size=max_size, seed=seed).frame


def cross_encoding(encoders: Mapping[str, object], datasets: Mapping[str, pd.DataFrame],
                   batch_size: int = 32) -> pd.DataFrame:
    """Mean encoded value per (encoder experiment, data experiment, factual class).

    ``encoders``: experiment -> :class:`ModelWithGradiend` (all over one base model);
    ``datasets``: experiment -> its rows (:func:`comparison_rows`).
    """
    from gradiend.data.tables import FACTUAL_CLASS
    from gradiend.evaluation.encoder import encode_rows

    out = []
    for encoder_name, model in encoders.items():
        for data_name, rows in datasets.items():
            frame = rows.assign(encoded=encode_rows(model, rows, batch_size))
            for cls, group in frame.groupby(FACTUAL_CLASS, sort=True):
                out.append({"encoder_experiment": encoder_name, "data_experiment": data_name,
                            "factual_class": str(cls), "n": len(group),
                            "mean_encoded": float(group["encoded"].mean()),
                            "std_encoded": float(group["encoded"].std(ddof=0))})
    return pd.DataFrame(out, columns=CROSS_COLUMNS)
