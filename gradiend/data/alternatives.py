"""Counterfactual tokens: per-class rows → unified rows with a seeded alternative from another class.

The alternative is drawn from the other class's factual tokens by (case-folded) frequency and given
the factual token's casing ("She" → "They"), so only the feature, not the capitalisation, differs.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from gradiend.data.tables import (
    ALTERNATIVE, ALTERNATIVE_CLASS, FACTUAL, FACTUAL_CLASS, MASKED, RAW_FACTUAL_CLASS, SPLIT, TEXT,
    TOKEN_COUNT, UNIFIED_COLUMNS,
)

CARRIED_COLUMNS = (TEXT, TOKEN_COUNT, RAW_FACTUAL_CLASS)
"""Optional per-class columns copied into the unified rows when present."""
RESERVED_COLUMNS = frozenset({*UNIFIED_COLUMNS, *CARRIED_COLUMNS})
"""Column names that never count as a per-row alternative, even when a class has that id."""


def apply_factual_casing(factual: str, alternative: str) -> str:
    """``alternative`` in the casing pattern of ``factual``: ALL UPPER (two or more letters), Title
    (first letter upper, also a lone "I"), or lower for everything else."""
    letters = [c for c in factual if c.isalpha()]
    lowered = alternative.lower()
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return alternative.upper()
    if letters and factual.lstrip()[:1].isupper():
        return lowered[:1].upper() + lowered[1:]
    return lowered


def token_distribution(tokens) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct case-folded tokens, their relative frequencies)."""
    import pandas as pd

    counts = pd.Series([str(t).casefold() for t in tokens]).value_counts().sort_index()
    return counts.index.to_numpy(dtype=object), (counts.to_numpy(dtype=float) / counts.sum())


def holds_strings(column) -> bool:
    return column.map(lambda v: isinstance(v, str)).all()


def factual_column(frame, class_id: str) -> str:
    """Which column of a per-class frame holds the factual token: ``factual``, else a string
    ``label`` column (the original package's name), else the column named like the class."""
    if FACTUAL in frame.columns:
        return FACTUAL
    if "label" in frame.columns and holds_strings(frame["label"]):
        return "label"
    if class_id in frame.columns:
        return class_id
    raise ValueError(f"class '{class_id}': no factual token column; expected 'factual', a string 'label' "
                     f"column or a column named '{class_id}'; found {list(frame.columns)}")


def _sample(n_rows: int, k: int, vocab: np.ndarray, probs: np.ndarray, rng) -> list[list[str]]:
    """``k`` distinct tokens per row (fewer if the vocabulary is smaller), weighted by ``probs``."""
    k = min(k, len(vocab))
    if k == 1:
        return [[vocab[i]] for i in rng.choice(len(vocab), size=n_rows, p=probs)]
    return [list(vocab[rng.choice(len(vocab), size=k, replace=False, p=probs)]) for _ in range(n_rows)]


def per_class_to_unified(per_class: Mapping[str, "object"], seed: int = 42,
                         max_counterfactuals_per_sentence: int = 1):
    """One unified table from per-class frames (``masked``, a factual column, optionally ``split``,
    ``text``, ``token_count``): for every ordered pair (S, T) of classes each row of S gets up to
    ``max_counterfactuals_per_sentence`` distinct seeded alternatives of T, or the value of S's column
    named T when it has one (rows with an empty cell are skipped).
    """
    import pandas as pd

    if max_counterfactuals_per_sentence < 1:
        raise ValueError(f"max_counterfactuals_per_sentence must be >= 1, got {max_counterfactuals_per_sentence}")
    classes = list(per_class)
    for cls, frame in per_class.items():
        if len(frame) == 0:
            raise ValueError(f"class '{cls}' has no rows")
    transitions = [(s, t) for s in classes for t in classes if s != t]
    if not transitions:
        raise ValueError(f"counterfactual rows need at least two classes, got {classes}")
    factual_cols = {cls: factual_column(per_class[cls], cls) for cls in classes}
    distributions = {cls: token_distribution(per_class[cls][factual_cols[cls]]) for cls in classes}
    rng = np.random.default_rng(seed)
    parts = []
    for source, other in transitions:
        frame = per_class[source]
        factual = frame[factual_cols[source]].astype(str).tolist()
        if other in frame.columns and other not in RESERVED_COLUMNS and other != factual_cols[source]:
            picks = [[g] if isinstance(g, str) and g else [] for g in frame[other].tolist()]
        else:
            picks = _sample(len(frame), max_counterfactuals_per_sentence, *distributions[other], rng)
        rows = np.repeat(np.arange(len(frame)), [len(p) for p in picks])
        part = {
            MASKED: frame[MASKED].to_numpy(dtype=object)[rows],
            SPLIT: (frame[SPLIT].to_numpy(dtype=object)[rows] if SPLIT in frame.columns else None),
            FACTUAL: np.asarray(factual, dtype=object)[rows],
            ALTERNATIVE: [apply_factual_casing(factual[r], a) for r, p in enumerate(picks) for a in p],
            FACTUAL_CLASS: source,
            ALTERNATIVE_CLASS: other,
            **{col: frame[col].to_numpy()[rows] for col in CARRIED_COLUMNS if col in frame.columns},
        }
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)
