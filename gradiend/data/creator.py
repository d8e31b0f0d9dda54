"""``TextPredictionDataCreator``: base texts → masked rows per feature class → splits → tables.

A row is one sentence for one class with every target occurrence masked; ``factual`` is the first
(original casing). Data problems are warnings (:class:`DataCreationWarning`) unless ``strict=True``
(the workflow's choice); refusing is left to training, which names the class with too few rows.
"""
from __future__ import annotations

import json
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from gradiend.data.alternatives import per_class_to_unified
from gradiend.data.base_loader import resolve_base_data
from gradiend.data.filter_config import SpacyTagSpec, TextFilterConfig, validate_tag_spec
from gradiend.data.matching import ClassMatcher, find_class_occurrences, find_neutral, mask_spans
from gradiend.data.preprocess import TextPreprocessConfig, preprocess_texts
from gradiend.data.spacy_util import load_spacy_model, require_spacy_model
from gradiend.data.splitting import SPLITS, split_frame, validate_ratios
from gradiend.data.tables import (
    FACTUAL, FACTUAL_CLASS, MASKED, SPLIT, TEXT, TOKEN_COUNT, UNIFIED_COLUMNS, assign_labels,
    data_summary, ordered, resolve_target_classes, write_neutral_data, write_training_data,
)
from gradiend.util.io import PathLike, write_json
from gradiend.util.logging import get_logger

logger = get_logger(__name__)


class DataCreationWarning(UserWarning):
    """Data creation found something training may refuse (absent target, empty/small class, no neutral text)."""


def _warn(message: str) -> None:
    import warnings

    logger.warning(message)
    warnings.warn(message, DataCreationWarning, stacklevel=3)

PER_CLASS_COLUMNS = (TEXT, MASKED, FACTUAL, TOKEN_COUNT, SPLIT)
MINIMAL_COLUMNS = (MASKED, FACTUAL, FACTUAL_CLASS, SPLIT)
FORMATS = ("per_class", "unified", "minimal")
BALANCE_MODES = ("try", "strict", False, None)


def _check_shared_targets(configs: Sequence[TextFilterConfig]) -> None:
    """A target word in two classes with the same filter gives rows that cannot tell them apart."""
    owner: dict[tuple, str] = {}
    for config in configs:
        for word, tags in config.flatten_targets_with_tags():
            key = (word.casefold(), json.dumps(tags, sort_keys=True, default=str), config.use_lemma)
            first = owner.setdefault(key, config.id)
            if first != config.id:
                raise ValueError(
                    f"feature_targets: target {word!r} is in class {first!r} and in class {config.id!r} with the "
                    f"same filter, so its rows cannot tell the classes apart (targets match case-insensitively); "
                    f"keep it in one class, or tell the classes apart with different spacy_tags")


@dataclass(eq=False, repr=False)
class TextPredictionDataCreator:
    """Builds masked training data and neutral data from base texts (any source
    :func:`~gradiend.data.base_loader.resolve_base_data` reads, shuffled with ``seed``, capped at
    ``base_max_size``). ``spacy_model`` is loaded only for tags, lemmas or spaCy sentence splitting.
    """

    MIN_ROWS_PER_CLASS_FOR_SPLIT = 10

    base_data: Any = None
    feature_targets: Optional[Sequence[TextFilterConfig]] = None
    _: KW_ONLY
    text_column: str = "text"
    base_max_size: Optional[int] = None
    split: str = "train"
    hf_config: Optional[str] = None
    preprocess: Optional[TextPreprocessConfig] = None
    spacy_model: Optional[str] = None
    min_left_context_words: int = 0
    seed: int = 42
    report: dict = field(default_factory=dict, init=False)
    _sentences: Optional[list[str]] = field(default=None, init=False)

    def __post_init__(self) -> None:
        targets = self.feature_targets
        self.feature_targets = [targets] if isinstance(targets, TextFilterConfig) else list(targets or [])
        ids = [c.id for c in self.feature_targets if isinstance(c, TextFilterConfig)]
        if len(ids) != len(self.feature_targets):
            raise ValueError("feature_targets must be TextFilterConfig instances")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"feature_targets: class id {duplicates[0]!r} is used by more than one TextFilterConfig")
        _check_shared_targets(self.feature_targets)
        m = self.min_left_context_words
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise ValueError(f"min_left_context_words must be an int >= 0, got {m!r}")
        if self.preprocess is not None and not isinstance(self.preprocess, TextPreprocessConfig):
            raise ValueError(f"preprocess must be a TextPreprocessConfig or None, "
                             f"got {type(self.preprocess).__name__}")
        for config in self.feature_targets:
            if config.needs_spacy:
                require_spacy_model(self.spacy_model, f"class '{config.id}' uses spacy_tags or use_lemma")

    # ------------------------------------------------------------------ sentence stream
    def _sentences_of(self, base_data: Any) -> list[str]:
        if base_data is None:
            raise ValueError("no base_data: pass it to TextPredictionDataCreator(...) or to this method")
        texts = resolve_base_data(base_data, self.text_column, self.base_max_size, self.seed, self.hf_config,
                                  self.split)
        sentences = preprocess_texts(texts, self.preprocess, self.spacy_model)
        if not sentences:
            raise ValueError("base data is empty after preprocessing: every segment was filtered out")
        return sentences

    def sentences(self) -> list[str]:
        """The preprocessed base sentences (computed once)."""
        if self._sentences is None:
            self._sentences = self._sentences_of(self.base_data)
        return self._sentences

    # ------------------------------------------------------------------ training data
    def generate_training_data(
        self,
        max_size_per_class: Optional[int] = None,
        format: str = "per_class",
        balance: Union[str, bool, None] = "try",
        output: Optional[PathLike] = None,
        train_ratio: float = 0.8,
        val_ratio: float = 0.1,
        test_ratio: float = 0.1,
        min_rows_per_class_for_split: int = MIN_ROWS_PER_CLASS_FOR_SPLIT,
        raise_on_incomplete_classes: Optional[bool] = None,
        require_all_targets: Optional[bool] = None,
        split_group_col: Optional[str] = None,
        split_group_key: Union[Callable[[str], str], Sequence[Callable[[str], str]], None] = None,
        target_classes: Optional[Sequence[str]] = None,
        max_counterfactuals_per_sentence: int = 1,
        strict: bool = False,
    ):
        """Masked rows per class, split 80/10/10 per class (seeded).

        ``format``: ``"per_class"`` → ``{class_id: DataFrame}`` (:data:`PER_CLASS_COLUMNS`),
        ``"unified"`` → the unified table (seeded alternatives; ``label`` from ``target_classes`` or the
        two classes alphabetically), ``"minimal"`` → :data:`MINIMAL_COLUMNS`. ``output`` (``.parquet``)
        writes the unified table and ``summary.json`` beside it. ``balance="strict"`` cuts every class to
        the smallest; ``split_group_col="factual"`` holds out whole factual tokens per split.

        By default a target that never occurs, an empty or small class (``min_rows_per_class_for_split``)
        and a class missing from a split are warnings and training refuses later; ``strict=True`` makes
        them errors here. ``require_all_targets`` / ``raise_on_incomplete_classes`` override it for
        targets / classes; ``raise_on_incomplete_classes=False`` drops such classes (see ``self.report``).
        """
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
        if balance not in BALANCE_MODES:
            raise ValueError(f"balance must be one of {BALANCE_MODES}, got {balance!r}")
        if not self.feature_targets:
            raise ValueError("no feature_targets: give at least one TextFilterConfig")
        if max_size_per_class is not None and max_size_per_class < 1:
            raise ValueError(f"max_size_per_class must be >= 1, got {max_size_per_class}")
        ratios = validate_ratios(train_ratio, val_ratio, test_ratio)
        if output is not None and Path(output).suffix != ".parquet":
            raise ValueError(f"output must be a .parquet path, got {output}")
        if split_group_col == "label":  # the original package's name for the factual token
            split_group_col = FACTUAL

        sentences = self.sentences()
        nlp = load_spacy_model(self.spacy_model) if any(c.needs_spacy for c in self.feature_targets) else None
        matchers = find_class_occurrences(sentences, self.feature_targets, self.min_left_context_words,
                                          max_size_per_class, nlp)
        require = strict if require_all_targets is None else bool(require_all_targets)
        incomplete = ("raise" if strict else "keep") if raise_on_incomplete_classes is None else (
            "raise" if raise_on_incomplete_classes else "drop")
        self.report = {"sentences": len(sentences), "seed": self.seed, "dropped_classes": {}, "unseen_targets": {},
                       "empty_classes": [], "small_classes": {}}
        self._check_targets(matchers, len(sentences), require, strict_classes=incomplete == "raise")
        per_class = {m.id: self._class_frame(m, sentences) for m in matchers}
        per_class = self._drop_small(per_class, min_rows_per_class_for_split, incomplete)
        if balance == "strict":
            smallest = min(len(f) for f in per_class.values())
            per_class = {c: f.sample(n=smallest, random_state=self.seed).sort_index() for c, f in per_class.items()}
        per_class = {c: split_frame(f, ratios, self.seed, split_group_col, split_group_key)
                     for c, f in per_class.items()}
        per_class = self._drop_unsplit(per_class, [s for s, r in zip(SPLITS, ratios) if r > 0], incomplete)
        self.report["rows_per_class"] = {c: len(f) for c, f in per_class.items()}
        for cls, frame in per_class.items():
            logger.info("class %s: %d rows (%s)", cls, len(frame), frame[SPLIT].value_counts().to_dict())

        unified = None
        if format == "unified" or output is not None:
            unified = self._unified(per_class, target_classes, max_counterfactuals_per_sentence)
        if output is not None:
            write_training_data(unified, output)
            write_json(Path(output).with_name("summary.json"), {**data_summary(unified), "creator": self.report})
        if format == "unified":
            return unified
        if format == "minimal":
            import pandas as pd

            frames = [f.assign(**{FACTUAL_CLASS: c})[list(MINIMAL_COLUMNS)] for c, f in per_class.items()]
            return pd.concat(frames, ignore_index=True)
        return {c: f[list(PER_CLASS_COLUMNS)] for c, f in per_class.items()}

    def _check_targets(self, matchers: list[ClassMatcher], n_sentences: int, required: bool,
                       strict_classes: bool) -> None:
        for matcher in matchers:
            unseen = [t for t in matcher.targets if t not in matcher.seen]
            if not unseen:
                continue
            what = "lemma" if matcher.use_lemma else "target"
            where = (f"in the base data ({n_sentences} sentences scanned, with its spaCy tags and "
                     f"min_left_context_words={matcher.min_left_context_words})")
            if required or (strict_classes and not matcher.hits):
                hint = ", or pass require_all_targets=False" if required else ""
                raise ValueError(f"{what} {unseen[0]!r} of class '{matcher.id}' never occurs {where}; remove "
                                 f"it or add data{hint}")
            for target in unseen:
                _warn(f"{what} {target!r} of class '{matcher.id}' never occurs {where}")
            self.report["unseen_targets"][matcher.id] = unseen

    @staticmethod
    def _class_frame(matcher: ClassMatcher, sentences: list[str]):
        import pandas as pd

        texts = [sentences[i] for i, _ in matcher.hits]
        return pd.DataFrame({
            TEXT: texts,
            MASKED: [mask_spans(t, spans, matcher.config.mask) for t, (_, spans) in zip(texts, matcher.hits)],
            FACTUAL: [spans[0][2] for _, spans in matcher.hits],
            TOKEN_COUNT: [len(spans) for _, spans in matcher.hits],
        })

    def _drop_small(self, per_class: dict, minimum: int, mode: str) -> dict:
        problems = {cls: (f"class '{cls}' has {len(frame)} rows, fewer than the minimum of {minimum} "
                          f"(min_rows_per_class_for_split)", f"fewer than {minimum} rows")
                    for cls, frame in per_class.items() if len(frame) < minimum}
        for cls, (message, _) in problems.items() if mode == "keep" else ():
            if len(per_class[cls]) == 0:
                self.report["empty_classes"].append(cls)
                _warn(f"class '{cls}' is empty: none of its targets occurs in the base data")
            else:
                self.report["small_classes"][cls] = len(per_class[cls])
                _warn(message + "; kept (training needs more rows)")
        return self._settle(per_class, problems, mode, f"no class has at least {minimum} rows",
                            "; add base data, lower the minimum, or pass raise_on_incomplete_classes=False")

    def _drop_unsplit(self, per_class: dict, splits: list[str], mode: str) -> dict:
        problems = {}
        for cls, frame in per_class.items():
            missing = [split for split in splits if split not in set(frame[SPLIT])]
            if missing and (mode != "keep" or len(frame)):  # an empty kept class was reported already
                message = (f"training data: class '{cls}' has no row in split '{missing[0]}' ({len(frame)} "
                           f"rows in total); add data for it or change the split ratios")
                problems[cls] = (message, message)
        for message, _ in problems.values() if mode == "keep" else ():
            _warn(f"{message}; kept")
        return self._settle(per_class, problems, mode, f"no class has rows in every split {splits}")

    def _settle(self, per_class: dict, problems: dict, mode: str, none_left: str, raise_hint: str = ""):
        """``per_class`` by ``mode`` for the classes in ``problems`` ({class: (message, reason)}):
        "raise" raises the first message, "drop" drops them (logged, reported), "keep" keeps them."""
        if mode == "raise" and problems:
            raise ValueError(next(iter(problems.values()))[0] + raise_hint)
        for cls, (message, reason) in problems.items() if mode == "drop" else ():
            logger.warning("%s; dropped", message)
            self.report["dropped_classes"][cls] = {"rows": len(per_class[cls]), "reason": reason}
        kept = {cls: frame for cls, frame in per_class.items() if mode != "drop" or cls not in problems}
        if not kept:
            raise ValueError(f"{none_left}: {self.report['dropped_classes']}")
        return kept

    def _unified(self, per_class: dict, target_classes, max_counterfactuals: int):
        import pandas as pd

        present = {c: f for c, f in per_class.items() if len(f)}
        if len(present) < 2:
            _warn(f"the unified table is empty: counterfactual rows need two non-empty classes, "
                  f"found {sorted(present) or 'none'} among {sorted(per_class)}")
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "label" else object) for c in UNIFIED_COLUMNS})
        unified = per_class_to_unified(present, self.seed, max_counterfactuals)
        absent = [c for c in (target_classes or ()) if c not in present]
        if absent:
            _warn(f"target class(es) {absent} have no rows; the unified table labels only the others")
            classes = list(target_classes)
        else:
            classes = resolve_target_classes(present, target_classes)
        return ordered(assign_labels(unified, classes), UNIFIED_COLUMNS, "the unified table")

    # ------------------------------------------------------------------ neutral data
    def generate_neutral_data(
        self,
        max_size: Optional[int] = None,
        additional_excluded_words: Optional[Sequence[str]] = None,
        excluded_spacy_tags: Union[SpacyTagSpec, Sequence[SpacyTagSpec], None] = None,
        base_data: Any = None,
        output: Optional[PathLike] = None,
        strict: bool = False,
    ):
        """A ``text`` frame (at most ``max_size`` rows) of sentences without any target word of any class
        (whole word, any case, tags ignored), ``additional_excluded_words`` or ``excluded_spacy_tags``
        token. None at all is a warning and an empty frame (``strict=True``: an error)."""
        import pandas as pd

        extra = list(additional_excluded_words or [])
        bad = [w for w in extra if not isinstance(w, str) or not w.strip()]
        if bad:
            raise ValueError(f"additional_excluded_words must be non-empty strings, got {bad[0]!r}")
        excluded = list(dict.fromkeys([t for c in self.feature_targets for t in c.target_strings] + extra))
        specs = [excluded_spacy_tags] if isinstance(excluded_spacy_tags, dict) else list(excluded_spacy_tags or [])
        for i, spec in enumerate(specs):
            validate_tag_spec(spec, f"excluded_spacy_tags[{i}]")
        why = "excluded_spacy_tags are given"
        nlp = load_spacy_model(require_spacy_model(self.spacy_model, why)) if specs else None
        sentences = self.sentences() if base_data is None else self._sentences_of(base_data)
        texts = find_neutral(sentences, excluded, specs, max_size, nlp)
        if not texts:
            message = (f"no neutral sentence: all {len(sentences)} sentences contain an excluded word or tag "
                       f"(excluded words: {excluded[:10]}{' ...' if len(excluded) > 10 else ''})")
            if strict:
                raise ValueError(message)
            _warn(message + "; returning an empty neutral set")
        logger.info("neutral data: %d of %d sentences", len(texts), len(sentences))
        frame = pd.DataFrame({TEXT: texts})
        if output is not None:
            write_neutral_data(frame, output)
        return frame
