"""From the unified data table to the rows a run trains and evaluates on.

``feature_class_id`` names a row's transition (0 for c0→c1, 1 for c1→c0, 2… for identity rows of
further classes); ``label`` is +1 when the encoder reads the gradient of a c0 token, −1 for c1, 0 for
identity rows: it follows the factual class, negated for ``source="alternative"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from gradiend.data.tables import ALTERNATIVE, ALTERNATIVE_CLASS, FACTUAL, FACTUAL_CLASS, MASKED, SPLIT

FEATURE_CLASS_ID = "feature_class_id"
TRAINING_LABEL = "label"
EVAL_SPLITS = ("validation", "test")
_REQUIRED = (MASKED, SPLIT, FACTUAL, ALTERNATIVE, FACTUAL_CLASS, ALTERNATIVE_CLASS)


@dataclass(frozen=True)
class Rows:
    """Rows of one split and the readable name of each transition id."""

    frame: pd.DataFrame
    transition_names: dict[int, str]
    split: str

    def __len__(self) -> int:
        return len(self.frame)


def check_table(table: pd.DataFrame, target_classes: Sequence[str]) -> None:
    """The table has the unified columns and rows of both target classes in both directions."""
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"training data lacks column {missing[0]!r}; found {list(table.columns)}")
    if len(target_classes) != 2 or target_classes[0] == target_classes[1]:
        raise ValueError(f"target_classes must be two different classes, got {list(target_classes)}")
    present = sorted(set(table[FACTUAL_CLASS].astype(str)))
    for cls in target_classes:
        if cls not in present:
            raise ValueError(f"target class {cls!r} has no rows in the training data; classes present: {present}")


def check_class_rows(data, target_classes=None) -> None:
    """Refuse in-memory data (per-class frames or one table) where a target class (``target_classes``,
    else every class) has no rows: data creation only warns about empty classes, training names them."""
    if isinstance(data, dict) and data and all(isinstance(f, pd.DataFrame) for f in data.values()):
        counts = {str(c): len(f) for c, f in data.items()}
    elif isinstance(data, pd.DataFrame) and "factual_class" in data.columns:
        if data.empty:
            raise ValueError("the training data has no rows (data creation warned why: too few sentences with "
                             "the targets of two classes); add base data")
        counts = {str(c): int(n) for c, n in data["factual_class"].astype(str).value_counts().items()}
    else:
        return
    wanted = [str(c) for c in target_classes] if target_classes else list(counts)
    empty = [c for c in wanted if counts.get(c, 0) == 0]
    if empty:
        raise ValueError(f"class {empty[0]!r} has no training rows (rows per class: {counts}); training needs rows "
                         "of both target classes: add base data containing its targets")


def _pair_rows(frame: pd.DataFrame, c0: str, c1: str) -> pd.DataFrame:
    forward = (frame[FACTUAL_CLASS] == c0) & (frame[ALTERNATIVE_CLASS] == c1)
    backward = (frame[FACTUAL_CLASS] == c1) & (frame[ALTERNATIVE_CLASS] == c0)
    rows = frame[forward | backward].copy()
    rows[FEATURE_CLASS_ID] = (rows[FACTUAL_CLASS] == c1).astype("int64")
    rows[TRAINING_LABEL] = rows[FEATURE_CLASS_ID].map({0: 1, 1: -1}).astype("int64")
    return rows


def _identity_rows(frame: pd.DataFrame, target_classes: Sequence[str]) -> tuple[pd.DataFrame, dict[int, str]]:
    """One row per masked text of every further class, with factual == alternative and label 0."""
    others = sorted(set(frame[FACTUAL_CLASS]) - set(target_classes))
    parts, names = [], {}
    for offset, cls in enumerate(others):
        rows = frame[frame[FACTUAL_CLASS] == cls].drop_duplicates([MASKED, FACTUAL])
        parts.append(rows.assign(**{ALTERNATIVE: rows[FACTUAL], ALTERNATIVE_CLASS: cls,
                                    FEATURE_CLASS_ID: 2 + offset, TRAINING_LABEL: 0}))
        names[2 + offset] = f"{cls}\u2192{cls}"
    return (pd.concat(parts) if parts else frame.iloc[:0]), names


def _cap_per_group(rows: pd.DataFrame, max_size: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_size`` rows per transition, drawn with the seed, in table order."""
    if max_size is None:
        return rows
    parts = [g if len(g) <= max_size else g.sample(n=max_size, random_state=seed).sort_index()
             for _, g in rows.groupby(FEATURE_CLASS_ID, sort=True)]
    return pd.concat(parts).sort_index() if parts else rows


def select_rows(table: pd.DataFrame, target_classes: Sequence[str], split: str, source: str, *,
                add_identity: bool = False, max_size: int | None = None, seed: int = 0) -> Rows:
    """Rows of ``split`` for the pair ``target_classes`` (see module docstring for the columns)."""
    check_table(table, target_classes)
    c0, c1 = target_classes
    frame = table[table[SPLIT] == split]
    rows = _pair_rows(frame, c0, c1)
    names = {0: f"{c0}\u2192{c1}", 1: f"{c1}\u2192{c0}"}
    if add_identity:
        identity, extra = _identity_rows(frame, target_classes)
        rows = pd.concat([rows, identity])
        names.update(extra)
    rows = _cap_per_group(rows, max_size, seed)
    if source == "alternative":
        rows[TRAINING_LABEL] = -rows[TRAINING_LABEL]
    return Rows(rows.reset_index(drop=True), names, split)


def training_rows(table: pd.DataFrame, target_classes: Sequence[str], source: str, *, add_identity: bool,
                  max_size: int | None, seed: int) -> Rows:
    """The ``train`` split; both transitions must be present."""
    rows = select_rows(table, target_classes, "train", source, add_identity=add_identity, max_size=max_size,
                       seed=seed)
    for fid in (0, 1):
        if not (rows.frame[FEATURE_CLASS_ID] == fid).any():
            raise ValueError(f"the train split has no rows of transition {rows.transition_names[fid]}")
    return rows


def evaluation_rows(table: pd.DataFrame, target_classes: Sequence[str], source: str, *, max_size: int | None,
                    seed: int) -> Rows:
    """Rows for in-training encoder evaluation: the validation split, else the test split."""
    for split in EVAL_SPLITS:
        rows = select_rows(table, target_classes, split, source, max_size=max_size, seed=seed)
        if set(rows.frame[FEATURE_CLASS_ID]) >= {0, 1}:
            return rows
    raise ValueError("encoder evaluation during training needs a 'validation' or 'test' split with rows of both "
                     f"transitions of {list(target_classes)}; set do_eval=False to train without it")
