"""What several stages load the same way: the base model, a GRADIEND checkpoint over it, the tables.

A stage loads its base model once (:func:`load_base`) and puts every GRADIEND it needs on top of
that one copy (:func:`with_checkpoint`), so no job reloads weights (docs/design.md §2.4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from gradiend.evaluation.context import EVALUATION_SEED  # evaluation rows never follow a training seed


@dataclass
class Base:
    """A loaded base model with its tokenizer and objective, and the id it was loaded from."""

    model: Any
    tokenizer: Any
    objective: Any
    reference: str


def target_classes(config: Mapping) -> list[str]:
    """``data.target_classes`` of a resolved experiment (c0 is the +1 class; the schema asks for two)."""
    return [str(c) for c in config["data"]["target_classes"]]


def placement(config: Mapping) -> dict:
    """``device`` / ``device_map`` of :func:`~gradiend.model.loading.load_base_model`: ``training.device_map``
    when set, else the GPU whenever one is visible (as the trainer)."""
    from gradiend.util.devices import default_device

    device_map = config["training"]["device_map"]
    if device_map is not None:
        return {"device": None, "device_map": device_map}
    return {"device": default_device(), "device_map": None}


def load_base(config: Mapping, reference: str | None = None) -> Base:
    """The experiment's base model (``base_model_path``), or the model at ``reference`` (a rewrite), in
    ``training.torch_dtype``, in eval mode, placed by :func:`placement`."""
    from gradiend.model.loading import load_base_model

    reference = reference or config["base_model_path"]
    model, tokenizer, objective = load_base_model(
        reference, torch_dtype=config["training"]["torch_dtype"],
        trust_remote_code=bool(config["trust_remote_code"]), **placement(config))
    return Base(model, tokenizer, objective, reference)


def with_checkpoint(config: Mapping, base: Base, checkpoint: str):
    """A :class:`ModelWithGradiend` of the GRADIEND checkpoint folder over the loaded ``base``, the GRADIEND
    on ``training.gradiend_device`` (null: the base model's first device)."""
    from gradiend.model.with_gradiend import ModelWithGradiend

    mwg = ModelWithGradiend.from_pretrained(
        base_model=base.model, gradiend_model=checkpoint, tokenizer=base.tokenizer, objective=base.objective,
        max_length=config["training"]["max_length"], gradiend_device=config["training"]["gradiend_device"])
    mwg.base_model_id = base.reference
    return mwg


def without_gradiend(config: Mapping, base: Base):
    """A :class:`ModelWithGradiend` for scoring the unmodified model: its GRADIEND maps a single entry
    and is never applied, but source and class directions are the configured ones, so feature
    factors and test rows are exactly those of a trained checkpoint."""
    import torch

    from gradiend.model.backbone import mapped_parameters
    from gradiend.model.param_mapped import ParamMappedGradiendModel
    from gradiend.model.text import TextModelWithGradiend

    name, param = next(iter(mapped_parameters(base.model).items()))
    one_entry = {name: {"shape": tuple(param.shape), "repr": "indices", "indices": torch.tensor([0])}}
    c0, c1 = target_classes(config)
    return TextModelWithGradiend(
        base.model, ParamMappedGradiendModel(one_entry), tokenizer=base.tokenizer, objective=base.objective,
        source=config["training"]["source"], feature_class_encoding_direction={c0: 1, c1: -1},
        base_model_id=base.reference, max_length=config["training"]["max_length"])


def read_tables(training: str, neutral: str | None = None):
    """The unified training table and (if given) the neutral table, checked by their readers."""
    from gradiend.data.tables import read_neutral_data, read_training_data

    table = read_training_data(training)
    return table, (None if neutral is None else read_neutral_data(neutral))


def fit_tables_to_tokenizer(config: Mapping, tokenizer, table, neutral=None, objective=None):
    """``(table, neutral)`` ready for the base model's tokenizer, checked before any heavy work.

    A target word (factual or alternative token of any class) that the tokenizer maps to its unknown
    token is an error naming the word, its class and the tokenizer; rows and neutral texts that contain
    the mask token literally are dropped (:mod:`gradiend.data.mask_token`, the count is logged). For a
    causal LM (``objective``), a row with no text before its first mask is an error naming the row and
    `data.min_left_context_words` (found here, not at the batch that holds the row mid-training)."""
    from gradiend.data.mask_token import drop_neutral_with_mask, drop_rows_with_mask
    from gradiend.data.tables import target_words_by_class
    from gradiend.model.loading import check_target_words

    check_target_words(tokenizer, target_words_by_class(table), where=f"the training data of {config['name']}")
    table = drop_rows_with_mask(table, tokenizer, where=f"training data of {config['name']}")
    neutral = drop_neutral_with_mask(neutral, tokenizer, where=f"neutral data of {config['name']}")
    if getattr(objective, "name", None) == "causal_lm":
        _check_left_context(config, table)
    return table, neutral


def _check_left_context(config: Mapping, table) -> None:
    from gradiend.data.mask_token import PLACEHOLDER
    from gradiend.data.tables import MASKED

    masked = table[MASKED].astype(str)
    empty = [i for i, text in enumerate(masked) if not text.split(PLACEHOLDER, 1)[0].strip()]
    if empty:
        first = masked.iloc[empty[0]]
        raise ValueError(
            f"{len(empty)} of {len(table)} rows of the training data of {config['name']} have no text before their "
            f"first mask (e.g. row {empty[0]}: {first[:120]!r}), but the base model {config['base_model']!r} is a "
            f"causal LM, which predicts the target from its left context only: set `data.min_left_context_words` "
            f"(e.g. 3) so that data creation keeps only targets with words before them")


def read_tables_for_model(config: Mapping, training: str, neutral: str | None = None):
    """:func:`read_tables`, then :func:`fit_tables_to_tokenizer` with the base model's tokenizer
    (loaded alone, which is cheap, for stages whose trainer loads the model later)."""
    from gradiend.model.loading import load_tokenizer_and_objective

    table, neutral_table = read_tables(training, neutral)
    tokenizer, objective = load_tokenizer_and_objective(config["base_model_path"],
                                                        trust_remote_code=bool(config["trust_remote_code"]))
    return fit_tables_to_tokenizer(config, tokenizer, table, neutral_table, objective)


def evaluation_parts(config: Mapping, mwg, table, neutral, **limits):
    """:class:`EvaluationParts` for one stage: the configured classes, batch size and exclusions."""
    from gradiend.evaluation.context import EvaluationParts

    tokenizer = getattr(mwg, "tokenizer", None)
    if tokenizer is not None:
        table, neutral = fit_tables_to_tokenizer(config, tokenizer, table, neutral, getattr(mwg, "objective", None))
    return EvaluationParts(
        model_with_gradiend=mwg, data=table, neutral_data=neutral, target_classes=target_classes(config),
        seed=EVALUATION_SEED, batch_size=config["training"]["eval_batch_size"],
        excluded_words=list(config["data"]["neutral"]["additional_excluded_words"]), **limits)
