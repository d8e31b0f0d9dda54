"""The on-disk data contract: the unified training table (:data:`UNIFIED_COLUMNS`, described in
docs/internals.md), the neutral table, and their summary. Readers check the columns, so a wrong file
fails when it is read, naming the file and the column.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

from gradiend.util.io import PathLike, read_parquet, write_json, write_parquet

MASKED, SPLIT, FACTUAL, ALTERNATIVE = "masked", "split", "factual", "alternative"
FACTUAL_CLASS, ALTERNATIVE_CLASS, LABEL = "factual_class", "alternative_class", "label"
TEXT, TOKEN_COUNT = "text", "token_count"
RAW_FACTUAL_CLASS, RAW_ALTERNATIVE_CLASS = "raw_factual_class", "raw_alternative_class"
"""Base classes of a row when ``class_merge_map`` merged them."""

UNIFIED_COLUMNS = (MASKED, SPLIT, FACTUAL, ALTERNATIVE, FACTUAL_CLASS, ALTERNATIVE_CLASS, LABEL)
"""Required columns of a training table, in the order they are written."""
NEUTRAL_COLUMNS = (TEXT,)
# The encoded table (``encoded.parquet`` of the encoder evaluation): its required columns and the
# ``type`` of a row: a training-like row, or one of the two kinds of neutral row.
ENCODED_COLUMNS = ("encoded", LABEL, "type", "source_id")
TRAINING_TYPE, NEUTRAL_TRAINING_MASKED, NEUTRAL_DATASET = "training", "neutral_training_masked", "neutral_dataset"
NEUTRAL_TYPES = (NEUTRAL_TRAINING_MASKED, NEUTRAL_DATASET)


def resolve_target_classes(classes: Iterable[str], target_classes: Optional[Sequence[str]] = None) -> Optional[list[str]]:
    """The explicit ``target_classes`` (checked against ``classes``), else the two classes sorted
    alphabetically when there are exactly two, else None."""
    present = list(dict.fromkeys(classes))
    if target_classes is not None:
        target_classes = list(target_classes)
        if len(target_classes) != 2 or target_classes[0] == target_classes[1]:
            raise ValueError(f"target_classes must be two different class ids, got {target_classes}")
        missing = [c for c in target_classes if c not in present]
        if missing:
            raise ValueError(f"target class(es) {missing} not in the data; classes present: {sorted(present)}")
        return target_classes
    return sorted(present) if len(present) == 2 else None


def assign_labels(frame, target_classes: Optional[Sequence[str]]):
    """``frame`` with ``label`` = +1 for target_classes[0], -1 for target_classes[1], 0 otherwise."""
    out = frame.copy()
    values = {target_classes[0]: 1, target_classes[1]: -1} if target_classes else {}
    out[LABEL] = out[FACTUAL_CLASS].map(values).fillna(0).astype("int64")
    return out


def ordered(frame, required: Sequence[str], where: str):
    """``frame`` with the ``required`` columns first (a missing one is an error naming ``where``)."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing required column {missing[0]!r}; found {list(frame.columns)}")
    return frame[list(required) + [c for c in frame.columns if c not in required]].reset_index(drop=True)


def write_training_data(frame, path: PathLike, summary_path: Optional[PathLike] = None) -> Path:
    """Write the unified table as Parquet (deterministic bytes) and, if asked, its ``summary.json``."""
    table = ordered(frame, UNIFIED_COLUMNS, f"training data for {path}")
    table[LABEL] = table[LABEL].astype("int64")
    write_parquet(table, path)
    if summary_path is not None:
        write_json(summary_path, data_summary(table))
    return Path(path)


def read_training_data(path: PathLike):
    """The unified table from ``path``; a missing column or an empty table is one error naming the file."""
    table = ordered(read_parquet(path), UNIFIED_COLUMNS, f"training data file {path}")
    if table.empty:
        raise ValueError(f"training data file {path} has no rows")
    return table


def write_neutral_data(frame_or_texts, path: PathLike) -> Path:
    import pandas as pd

    if not isinstance(frame_or_texts, pd.DataFrame):
        frame_or_texts = pd.DataFrame({TEXT: list(frame_or_texts)})
    return write_parquet(ordered(frame_or_texts, NEUTRAL_COLUMNS, f"neutral data for {path}"), path)


def read_neutral_data(path: PathLike):
    return ordered(read_parquet(path), NEUTRAL_COLUMNS, f"neutral data file {path}")


def _counts(values) -> dict[str, int]:
    return {str(k): int(n) for k, n in values.value_counts().sort_index().items()}


def data_summary(frame) -> dict:
    """Rows per class and split, rows per split, the target classes, and each class's factual tokens
    (case-folded, with counts): what a person checks before training on a table."""
    by_class = frame.groupby(FACTUAL_CLASS, sort=True)
    summary = {
        "rows": int(len(frame)),
        "rows_per_split": _counts(frame[SPLIT]),
        "rows_per_class": _counts(frame[FACTUAL_CLASS]),
        "rows_per_class_and_split": {str(c): _counts(rows[SPLIT]) for c, rows in by_class},
        "factual_tokens_per_class": {str(c): _counts(rows[FACTUAL].str.casefold()) for c, rows in by_class},
    }
    if LABEL in frame.columns:
        labels = frame.drop_duplicates(FACTUAL_CLASS).set_index(FACTUAL_CLASS)[LABEL]
        plus, minus = ([str(c) for c, v in labels.items() if v == sign] for sign in (1, -1))
        summary["target_classes"] = plus + minus if plus and minus else None
    return summary


def target_words_by_class(table) -> dict[str, list[str]]:
    """Class id -> the distinct factual and alternative tokens of that class in a unified table."""
    words: dict[str, list[str]] = {}
    for word_col, class_col in ((FACTUAL, FACTUAL_CLASS), (ALTERNATIVE, ALTERNATIVE_CLASS)):
        for cls, word in zip(table[class_col].astype(str), table[word_col].astype(str)):
            words.setdefault(cls, []).append(word)
    return {cls: list(dict.fromkeys(ws)) for cls, ws in words.items()}
