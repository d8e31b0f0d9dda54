"""GRADIEND models: the autoencoder (:class:`GradiendModel`), its layout over named base-model
parameters (:class:`ParamMappedGradiendModel`) and the pairing with a loaded base model
(:class:`ModelWithGradiend`, abstract; :class:`TextModelWithGradiend` for language models). Names are imported lazily so that importing a sibling module
(e.g. ``gradiend.model.loading``) does not pull in everything else.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "GradiendModel": "gradiend.model.gradiend_model",
    "ParamMappedGradiendModel": "gradiend.model.param_mapped",
    "ModelWithGradiend": "gradiend.model.with_gradiend",
    "TextModelWithGradiend": "gradiend.model.text",
    "FeatureLearningDefinition": "gradiend.model.feature_definition",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'gradiend.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
