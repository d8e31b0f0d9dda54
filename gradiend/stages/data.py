"""Stages that make the inputs: the demo corpus and models, the training table, the neutral texts."""
from __future__ import annotations

from typing import Any, Mapping

from gradiend.util.logging import get_logger

logger = get_logger("gradiend.stages")


# --- demo assets (no experiment: ``config`` is a section of the top-level ``demo`` key) ----------

def demo_corpus(config: dict, *, corpus: str) -> None:
    """Write the generated English demo corpus, one sentence per line.

    Config: ``demo.corpus`` = ``{n_sentences, seed}``.
    Writes: ``corpus`` (text file; ``gradiend.data.demo_corpus.write_demo_corpus``).
    """
    from gradiend.data.demo_corpus import write_demo_corpus

    write_demo_corpus(corpus, n_sentences=config["n_sentences"], seed=config["seed"])


def demo_model(config: dict, *, corpus: str, model_dir: str) -> None:
    """Build and pre-train one tiny demo model on the demo corpus.

    Config: ``demo.models.<name>`` = ``{kind: masked|causal, steps, seed}`` (``steps: null`` = the
    pre-training default for the kind).
    Reads: ``corpus``. Writes: ``model_dir``, a Hugging Face model folder (config, safetensors
    weights, tokenizer) that ``base_model: demo:<name>`` loads.
    """
    from gradiend.demo.pretrain import build_demo_model

    build_demo_model(config["kind"], model_dir, corpus, steps=config["steps"], seed=config["seed"])


# --- experiment data -------------------------------------------------------------------------------

def _creator(data: Mapping, texts: str | None, min_left_context_words: int = 0):
    """A :class:`TextPredictionDataCreator` over the configured source (``texts`` = its local file).

    ``min_left_context_words`` matters only for masking; neutral texts do not read it."""
    from gradiend.data.creator import TextPredictionDataCreator
    from gradiend.data.filter_config import TextFilterConfig
    from gradiend.data.preprocess import TextPreprocessConfig

    source: Any = data["source"]
    options: dict = {}
    if source == "demo" or "path" in source:
        if texts is None:
            raise ValueError(f"config key `data.source` is {source!r}, but no raw-text file was given")
        base_data = texts
        if isinstance(source, Mapping):
            options["text_column"] = source.get("text_column", "text")
    elif "texts" in source:
        base_data = list(source["texts"])
    else:
        base_data = source["hf_dataset"]
        options.update(hf_config=source.get("hf_config"), split=source.get("split", "train"),
                       text_column=source.get("text_column", "text"))
    classes = [TextFilterConfig(id=t["id"], targets=list(t["targets"]), spacy_tags=t.get("spacy_tags"),
                                use_lemma=bool(t.get("use_lemma", False)),
                                min_left_context_words=t.get("min_left_context_words"))
               for t in data["feature_targets"]]
    preprocess = None if data["preprocess"] is None else TextPreprocessConfig(**data["preprocess"])
    return TextPredictionDataCreator(
        base_data, classes, base_max_size=data["max_texts"], preprocess=preprocess,
        spacy_model=data["spacy_model"], min_left_context_words=min_left_context_words,
        seed=data["seed"], **options)


def create_training_data(config: dict, *, texts: str | None, training: str, summary: str) -> None:
    """Filter, mask and split the raw texts into the unified training table.

    Config: ``data.{source, max_texts, seed, preprocess, spacy_model, feature_targets,
    target_classes, max_size_per_class, min_left_context_words, balance, split_ratios,
    max_counterfactuals_per_sentence}``.
    Reads: ``texts``, the local raw-text file when ``data.source`` is ``demo`` (the demo corpus) or
    ``{path: ...}`` (``.txt`` one text per line, ``.csv``/``.parquet`` with ``text_column``);
    ``None`` for ``{hf_dataset: ...}`` and ``{texts: [...]}``, which are read from the config.
    Writes:
      - ``training``: Parquet, the unified table (``gradiend.data.tables.UNIFIED_COLUMNS``:
        ``masked, split, factual, alternative, factual_class, alternative_class, label``, then
        ``text, token_count``); splits ``train/validation/test``;
      - ``summary``: JSON, ``gradiend.data.tables.data_summary`` (``rows``, ``rows_per_split``,
        ``rows_per_class``, ``rows_per_class_and_split``, ``factual_tokens_per_class``,
        ``target_classes``) plus ``creator`` (sentences scanned, seed, dropped classes).
    Fails before writing anything when a target class has too few rows or a target never occurs.
    """
    from gradiend.data.tables import data_summary, write_training_data
    from gradiend.util.io import write_json

    data = config["data"]
    creator = _creator(data, texts, data["min_left_context_words"])
    ratios = data["split_ratios"]
    table = creator.generate_training_data(
        max_size_per_class=data["max_size_per_class"], format="unified", balance=data["balance"],
        train_ratio=ratios["train"], val_ratio=ratios["validation"], test_ratio=ratios["test"],
        target_classes=data["target_classes"],
        max_counterfactuals_per_sentence=data["max_counterfactuals_per_sentence"], strict=True)
    write_training_data(table, training)
    write_json(summary, {**data_summary(table), "creator": creator.report})
    logger.info("training data: %d rows -> %s", len(table), training)


def create_neutral_data(config: dict, *, texts: str | None, neutral: str) -> None:
    """Collect texts that contain no target word of any class (for LMS and neutral encoding).

    Config: ``data.{source, max_texts, seed, preprocess, spacy_model, feature_targets, neutral}``
    (``neutral.{max_size, additional_excluded_words, excluded_spacy_tags}``).
    Reads: ``texts`` as in :func:`create_training_data`.
    Writes: ``neutral``: Parquet with the single column ``text``.
    """
    from gradiend.data.tables import write_neutral_data

    data = config["data"]
    options = data["neutral"]
    frame = _creator(data, texts).generate_neutral_data(
        max_size=options["max_size"], additional_excluded_words=options["additional_excluded_words"],
        excluded_spacy_tags=options["excluded_spacy_tags"], strict=True)
    write_neutral_data(frame, neutral)
    logger.info("neutral data: %d texts -> %s", len(frame), neutral)
