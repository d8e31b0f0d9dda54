"""GRADIEND: learn a feature of a language model from its gradients, and rewrite the model with it.

Public names are imported lazily, so ``import gradiend`` is cheap and a missing optional
dependency is reported when the name that needs it is used.
"""
from __future__ import annotations

import importlib

from gradiend._version import __version__

_EXPORTS = {
    "GradiendModel": "gradiend.model.gradiend_model",
    "ParamMappedGradiendModel": "gradiend.model.param_mapped",
    "ModelWithGradiend": "gradiend.model.with_gradiend",
    "TextModelWithGradiend": "gradiend.model.text",
    "FeatureLearningDefinition": "gradiend.model.feature_definition",
    "TextFilterConfig": "gradiend.data.filter_config",
    "SpacyTagSpec": "gradiend.data.filter_config",
    "TextPreprocessConfig": "gradiend.data.preprocess",
    "preprocess_texts": "gradiend.data.preprocess",
    "resolve_base_data": "gradiend.data.base_loader",
    "TextPredictionDataCreator": "gradiend.data.creator",
    "TextPredictionConfig": "gradiend.data.ingest",
    "TrainingArguments": "gradiend.training.arguments",
    "PrePruneConfig": "gradiend.training.arguments",
    "PostPruneConfig": "gradiend.training.arguments",
    "TextPredictionTrainer": "gradiend.training.trainer",
    "load_training_stats": "gradiend.training.history",
    "Evaluator": "gradiend.evaluation.evaluator",
    "EncoderEvaluator": "gradiend.evaluation.encoder",
    "DecoderEvaluator": "gradiend.evaluation.decoder",
    "set_seed": "gradiend.util.seed",
    "setup_logging": "gradiend.util.logging",
    "get_logger": "gradiend.util.logging",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'gradiend' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
