"""``TextPredictionConfig`` and ``load_training_table``: any training data → the unified table,
labelled from the target pair, with every data problem reported here, before a model is loaded.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from gradiend.data.alternatives import factual_column, holds_strings, per_class_to_unified
from gradiend.data.base_loader import resolve_base_data
from gradiend.data.splitting import SPLITS, assign_group_splits, normalise_split_name, validate_ratios
from gradiend.data.tables import (
    ALTERNATIVE, ALTERNATIVE_CLASS, FACTUAL, FACTUAL_CLASS, LABEL, MASKED, RAW_ALTERNATIVE_CLASS,
    RAW_FACTUAL_CLASS, SPLIT, TEXT, UNIFIED_COLUMNS, assign_labels, ordered, resolve_target_classes,
)
from gradiend.data.training_sources import read_training_source
from gradiend.util.logging import get_logger

logger = get_logger(__name__)

LEGACY_NAMES = {FACTUAL: "label", FACTUAL_CLASS: "label_class"}
"""The original package's merged-table names, used when the configured column is absent."""


@dataclass
class TextPredictionConfig:
    """Where the training data comes from and how to read it; plus the trainer's evaluation options.

    ``data`` is a DataFrame, ``{class: DataFrame}``, a path, a dataset folder or id (or use ``hf_dataset``).
    ``split_col=None`` re-splits, holding out whole factual tokens. ``target_classes`` is inferred
    alphabetically from exactly two classes (or two ``class_merge_map`` keys). Alternatives are always
    sampled with ``random_state``. ``decoder_eval_*``, ``img_*``, ``run_id`` and ``n_features`` are read
    by the trainer and evaluators, not by data loading.
    """

    data: Any = None
    hf_dataset: Optional[str] = None
    hf_subset: Optional[str] = None
    hf_splits: Optional[List[str]] = None
    target_classes: Optional[List[str]] = None
    all_classes: Optional[List[str]] = None
    masked_col: str = MASKED
    factual_col: str = FACTUAL
    factual_class_col: str = FACTUAL_CLASS
    alternative_col: str = ALTERNATIVE
    alternative_class_col: str = ALTERNATIVE_CLASS
    split_col: Optional[str] = SPLIT
    split_group_key: Optional[Union[Callable[[str], str], Sequence[Callable[[str], str]]]] = None
    split_train_ratio: float = 0.8
    split_val_ratio: float = 0.1
    split_test_ratio: float = 0.1
    max_counterfactuals_per_sentence: int = 1
    random_state: int = 42
    class_merge_map: Optional[Dict[str, List[str]]] = None
    eval_neutral_data: Any = None
    eval_neutral_additional_excluded_words: Optional[List[str]] = None
    eval_neutral_max_rows: Optional[int] = None
    run_id: Optional[str] = None
    n_features: int = 1
    decoder_eval_targets: Any = None
    decoder_eval_restrict_to_target_classes: bool = True
    decoder_eval_prob_on_other_class: bool = True
    decoder_eval_export_row_wise_csv: bool = False
    decoder_eval_ignore_tokens: Optional[List[str]] = None
    decoder_eval_lms_max_samples: Optional[int] = None
    img_format: str = "png"
    img_dpi: Optional[int] = None

    def __post_init__(self) -> None:
        validate_ratios(self.split_train_ratio, self.split_val_ratio, self.split_test_ratio)
        if self.target_classes is not None:
            self.target_classes = list(self.target_classes)
            if len(self.target_classes) != 2 or len(set(self.target_classes)) != 2:
                raise ValueError(f"target_classes must be two different class ids, got {self.target_classes}")
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, int):
            raise ValueError(f"random_state must be an int (sampling is always seeded), got {self.random_state!r}")
        k = self.max_counterfactuals_per_sentence
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"max_counterfactuals_per_sentence must be an int >= 1, got {k!r}")
        if self.class_merge_map is not None:
            self.class_merge_map = _validated_merge_map(self.class_merge_map)

    @property
    def split_ratios(self) -> tuple[float, float, float]:
        return self.split_train_ratio, self.split_val_ratio, self.split_test_ratio

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TextPredictionConfig":
        """A config from a mapping; an unknown key is one error naming it (and the closest field)."""
        known = [f.name for f in fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"TextPredictionConfig: unknown key {key!r}{hint}")
        return cls(**values)


def _validated_merge_map(merge_map: Mapping[str, Sequence[str]]) -> Dict[str, List[str]]:
    owner: dict[str, str] = {}
    for merged, bases in merge_map.items():
        if isinstance(bases, str) or not bases:
            raise ValueError(f"class_merge_map[{merged!r}] must be a non-empty list of class ids, got {bases!r}")
        for base in bases:
            if base in owner:
                raise ValueError(f"class_merge_map: class {base!r} is in both {owner[base]!r} and {merged!r}")
            owner[base] = merged
    return {str(merged): list(bases) for merged, bases in merge_map.items()}


def _require_present(key: str, wanted: Sequence[str], present: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ValueError(f"{key}: class {missing[0]!r} is not in the data; classes present: {sorted(present)}")


def _merge_lookup(merge_map: Dict[str, List[str]], present: Sequence[str]) -> dict[str, str]:
    """Base class -> merged class; every base class must be in the data."""
    lookup = {base: merged for merged, bases in merge_map.items() for base in bases}
    _require_present("class_merge_map", list(lookup), present)
    return lookup


def _standard_names(frame, config: TextPredictionConfig, where: str,
                    required: Sequence[str] = (MASKED, FACTUAL, FACTUAL_CLASS),
                    stale: Sequence[str] = (LABEL, SPLIT)):
    """``frame`` with the configured (or, for ``required`` ones, legacy) column names renamed to the
    unified ones; a ``stale`` column not renamed onto is dropped: a stored ``label`` (labels are
    recomputed from the target pair), a ``split`` other than ``split_col`` (the data is re-split)."""
    configured = {MASKED: config.masked_col, FACTUAL: config.factual_col,
                  FACTUAL_CLASS: config.factual_class_col, ALTERNATIVE: config.alternative_col,
                  ALTERNATIVE_CLASS: config.alternative_class_col, SPLIT: config.split_col}
    renames = {}
    for standard, wanted in configured.items():
        legacy = LEGACY_NAMES.get(standard) if wanted == standard else None
        if wanted is not None and wanted in frame.columns:
            renames[wanted] = standard
        elif standard not in required:
            continue
        elif legacy in frame.columns and (standard != FACTUAL or holds_strings(frame[legacy])):
            renames[legacy] = standard  # a numeric label column is not a token column
        else:
            raise ValueError(f"{where}: no column {wanted!r}; found {list(frame.columns)}")
    # a column not renamed itself but renamed onto is dropped too
    dropped = [c for c in frame.columns if c not in renames and (c in stale or c in renames.values())]
    return frame.drop(columns=dropped).rename(columns=renames)


def _merge_per_class(per_class: dict, merge_map: Dict[str, List[str]]) -> dict:
    import pandas as pd

    lookup = _merge_lookup(merge_map, list(per_class))
    merged: dict[str, list] = {}
    for cls, frame in per_class.items():
        frame = frame.rename(columns={factual_column(frame, cls): FACTUAL}).assign(**{RAW_FACTUAL_CLASS: cls})
        merged.setdefault(lookup.get(cls, cls), []).append(frame)
    return {name: pd.concat(frames, ignore_index=True) for name, frames in merged.items()}


def _merge_table(frame, merge_map: Dict[str, List[str]]):
    lookup = _merge_lookup(merge_map, sorted(set(frame[FACTUAL_CLASS]) | set(frame[ALTERNATIVE_CLASS])))
    out = frame.assign(**{RAW_FACTUAL_CLASS: frame[FACTUAL_CLASS], RAW_ALTERNATIVE_CLASS: frame[ALTERNATIVE_CLASS]})
    out[FACTUAL_CLASS] = out[FACTUAL_CLASS].map(lambda c: lookup.get(c, c))
    out[ALTERNATIVE_CLASS] = out[ALTERNATIVE_CLASS].map(lambda c: lookup.get(c, c))
    return out[out[FACTUAL_CLASS] != out[ALTERNATIVE_CLASS]].reset_index(drop=True)


def _to_unified(kind: str, raw, config: TextPredictionConfig):
    if kind == "merged":
        frame = _standard_names(raw, config, "training data")
        if ALTERNATIVE in frame.columns and ALTERNATIVE_CLASS in frame.columns:
            if config.class_merge_map:
                frame = _merge_table(frame, config.class_merge_map)
            if config.all_classes is not None:
                _require_present("all_classes", config.all_classes, list(dict.fromkeys(frame[FACTUAL_CLASS])))
                keep = frame[FACTUAL_CLASS].isin(config.all_classes) & frame[ALTERNATIVE_CLASS].isin(config.all_classes)
                frame = frame[keep].reset_index(drop=True)
            return frame
        raw = {str(c): g.drop(columns=[FACTUAL_CLASS]) for c, g in frame.groupby(FACTUAL_CLASS, sort=False)}
    else:
        raw = {str(c): _standard_names(f, config, f"class '{c}'", required=(MASKED,), stale=(SPLIT,))
               for c, f in raw.items()}
    if config.class_merge_map:
        raw = _merge_per_class(raw, config.class_merge_map)
    if config.all_classes is not None:
        _require_present("all_classes", config.all_classes, list(raw))
        raw = {c: raw[c] for c in config.all_classes}
    return per_class_to_unified(raw, config.random_state, config.max_counterfactuals_per_sentence)


def _with_splits(frame, config: TextPredictionConfig):
    """Normalised split names, or fresh seeded splits: by factual token (``split_col=None``) or,
    when the data has no split column, by masked text (rows of one sentence stay together)."""
    out = frame.copy()
    has_split = config.split_col is not None and SPLIT in out.columns and out[SPLIT].notna().any()
    if has_split and out[SPLIT].isna().any():
        cls = out.loc[out[SPLIT].isna(), FACTUAL_CLASS].iloc[0]
        raise ValueError(f"class '{cls}' has rows without a value in split column {config.split_col!r}")
    if has_split:
        out[SPLIT] = out[SPLIT].map(normalise_split_name)
        unknown = sorted(set(out[SPLIT]) - set(SPLITS))
        if unknown:
            raise ValueError(f"split column {config.split_col!r}: unknown split {unknown[0]!r}; expected {SPLITS}")
        return out
    by_token = config.split_col is None
    if not by_token:
        logger.info("training data has no %r column: splitting rows %s", config.split_col, config.split_ratios)
    out[SPLIT] = None
    for cls, rows in out.groupby(FACTUAL_CLASS, sort=True).groups.items():
        values = out.loc[rows, FACTUAL if by_token else MASKED].astype(str).tolist()
        keys = config.split_group_key if by_token else (lambda v: v)
        out.loc[rows, SPLIT] = assign_group_splits(values, config.split_ratios, config.random_state, keys)
    return out


def _check_target_splits(frame, target_classes: Optional[list[str]], by_token: bool) -> None:
    for cls in target_classes or []:
        rows = frame[FACTUAL_CLASS] == cls
        splits = set(frame.loc[rows, SPLIT])
        if "train" in splits and splits & {"validation", "test"}:
            continue
        missing = "train" if "train" not in splits else "validation' or 'test"
        hint = ""
        if by_token:
            n_tokens = frame.loc[rows, FACTUAL].str.casefold().nunique()
            hint = (f"; split_col=None holds out whole factual tokens and this class has only {n_tokens} "
                    f"distinct token(s): use the data's split column instead")
        raise ValueError(f"target class '{cls}' has no row in split '{missing}' ({int(rows.sum())} rows in total){hint}")


def load_training_table(config_or_kwargs: Union[TextPredictionConfig, Mapping[str, Any], None] = None, **kwargs):
    """The unified training table of a :class:`TextPredictionConfig` (or its fields): :data:`UNIFIED_COLUMNS`
    first, then extras; ``frame.attrs`` holds ``target_classes`` (None if not inferable) and ``all_classes``.
    """
    if isinstance(config_or_kwargs, TextPredictionConfig):
        if kwargs:
            raise ValueError("pass either a TextPredictionConfig or keyword fields, not both")
        config = config_or_kwargs
    else:
        config = TextPredictionConfig.from_dict({**dict(config_or_kwargs or {}), **kwargs})
    merge_map = config.class_merge_map
    wanted_classes = [c for bases in merge_map.values() for c in bases] if merge_map else config.all_classes
    kind, raw = read_training_source(config.data, hf_dataset=config.hf_dataset, hf_subset=config.hf_subset,
                                     hf_splits=config.hf_splits, classes=wanted_classes,
                                     split_col=config.split_col or SPLIT)
    frame = _with_splits(_to_unified(kind, raw, config), config)
    if len(frame) == 0:
        raise ValueError("training data has no rows")
    classes = list(dict.fromkeys(frame[FACTUAL_CLASS]))
    target = config.target_classes
    if target is None and config.class_merge_map and len(config.class_merge_map) == 2:
        target = list(config.class_merge_map)
    target = resolve_target_classes(classes, target)
    _check_target_splits(frame, target, by_token=config.split_col is None)
    frame = ordered(assign_labels(frame, target), UNIFIED_COLUMNS, "training data")
    frame.attrs["target_classes"] = target
    frame.attrs["all_classes"] = classes
    logger.info("training table: %d rows, classes %s, target pair %s", len(frame), classes, target)
    return frame


def load_eval_neutral_data(config: TextPredictionConfig):
    """The neutral evaluation texts (a ``text`` frame, else from ``masked_col``; the first
    ``eval_neutral_max_rows``), or None when none are configured."""
    import pandas as pd

    source = config.eval_neutral_data
    if source is None:
        return None
    column = TEXT
    if isinstance(source, pd.DataFrame) and TEXT not in source.columns and config.masked_col in source.columns:
        column = config.masked_col
    texts = resolve_base_data(source, text_column=column, max_size=config.eval_neutral_max_rows, seed=None)
    return pd.DataFrame({TEXT: texts})
