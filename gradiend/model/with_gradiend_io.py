"""Loading and saving a :class:`~gradiend.model.with_gradiend.ModelWithGradiend` (any model family).

A checkpoint folder holds the GRADIEND (``config.json``, ``model.safetensors``, optional
``mapping.safetensors`` and ``training.json``), ``gradiend_context.json`` (source, target, class
directions, plus what the subclass adds, e.g. the text objective) and whatever the subclass's
``_save_model`` writes. The base model is found through ``config.json`` metadata ``base_model``:
a hub id, or a folder stored relative to the checkpoint with its weights' SHA-256
(:mod:`gradiend.model.base_reference`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gradiend.model.base_reference import REFERENCE_KEY, make_reference, resolve_reference
from gradiend.model.checkpoint import TRAINING_FILE, is_checkpoint, read_config
from gradiend.model.feature_definition import directions_from_definition
from gradiend.model.param_mapped import ParamMappedGradiendModel
from gradiend.model.rewrite import lookup_parameters
from gradiend.util.devices import check_devices, device_name, input_device
from gradiend.util.io import read_json, write_json
from gradiend.util.logging import get_logger

if TYPE_CHECKING:
    from gradiend.model.with_gradiend import ModelWithGradiend

logger = get_logger(__name__)

CONTEXT_FILE = "gradiend_context.json"
REFERENCE_FIELDS = ("base_model", "tokenizer")


def save_model_with_gradiend(model: "ModelWithGradiend", save_directory, training: dict | None = None) -> Path:
    """Context file, the subclass's base-model artifacts, then the GRADIEND (its ``config.json`` last
    marks the folder complete). Local base-model folders are recorded relative to the checkpoint."""
    directory = Path(save_directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / CONTEXT_FILE, model._context())
    saved = dict(model._save_model(directory) or {})
    metadata = {k: v for k, v in model.gradiend.metadata.items() if k != REFERENCE_KEY}
    for key, value in saved.items():
        if key not in REFERENCE_FIELDS:
            metadata[key] = value
            continue
        metadata[key], info = make_reference(value, directory, digests=key == "base_model")
        if key == "base_model" and info is not None:
            metadata[REFERENCE_KEY] = info
    return model.gradiend.save_pretrained(directory, metadata=metadata, training=training)


def _read_context(directory: Path) -> dict[str, Any]:
    path = directory / CONTEXT_FILE
    context = read_json(path) if path.is_file() else {}
    if not isinstance(context, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return context


def _warn_if_not_converged(directory: Path) -> None:
    path = directory / TRAINING_FILE
    if not path.is_file():
        return
    try:
        info = read_json(path).get("convergence_info") or {}
    except (ValueError, AttributeError):
        return
    if isinstance(info, dict) and info.get("converged") is False:
        logger.warning("the GRADIEND in %s did not converge during training (%s)", directory, info.get("reason", ""))


def _resolve_forms(load_directory, base_model, gradiend_model, require_gradiend_model: bool):
    """``(checkpoint folder or None, base model id/path/module)`` from the accepted call forms."""
    if load_directory is not None and gradiend_model is not None:
        raise ValueError("pass either load_directory or gradiend_model, not both")
    checkpoint = gradiend_model
    if load_directory is not None:
        if isinstance(load_directory, torch.nn.Module):
            base_model, load_directory = load_directory, None
        elif is_checkpoint(load_directory):
            checkpoint = load_directory
        elif require_gradiend_model:
            read_config(load_directory)  # raises the precise reason
        elif base_model is not None:
            raise ValueError(f"{load_directory} is not a GRADIEND checkpoint, and base_model is given too")
        else:
            base_model = load_directory
    checkpoint = None if checkpoint is None else Path(checkpoint)  # loading it names any defect
    if base_model is None and checkpoint is None:
        raise ValueError("from_pretrained needs a GRADIEND checkpoint or a base model (load_directory, "
                         "base_model= or gradiend_model=)")
    return checkpoint, base_model


def _merge_directions(saved, explicit, definition) -> dict[str, int] | None:
    directions = dict(explicit or saved or {})
    if definition is not None:
        for cls, value in directions_from_definition(definition).items():
            if directions.get(cls, value) != value:
                raise ValueError(f"feature_definition gives class {cls!r} direction {value:+d}, but the model "
                                 f"has {directions[cls]:+d} ({directions})")
            directions[cls] = value
    return directions or None


def load_model_with_gradiend(cls, load_directory=None, *, base_model=None, gradiend_model=None,
                             require_gradiend_model: bool = False, feature_definition=None, source: str | None = None,
                             target: str | None = None, feature_class_encoding_direction=None, device=None,
                             gradiend_device=None, **kwargs):
    """Build ``cls`` (a concrete :class:`ModelWithGradiend`) from a checkpoint and/or a base model.

    - ``gradiend_model`` (or a checkpoint ``load_directory``): that GRADIEND; the base model is
      ``base_model`` when given, else the checkpoint's recorded reference. A map that does not fit
      the base model is one error naming the checkpoint.
    - otherwise ``load_directory`` / ``base_model`` is the base model and ``cls._create_gradiend``
      builds a fresh GRADIEND over it.
    ``**kwargs`` go to ``cls._load_model`` and ``cls._create_gradiend`` (and those named in
    ``cls._init_only_kwargs`` to the constructor). Source, target and directions come from
    ``gradiend_context.json`` unless given; ``feature_definition`` sets the directions.
    ``device`` puts base model and GRADIEND there; ``gradiend_device`` puts the GRADIEND elsewhere. By
    default the GRADIEND goes where the base model's inputs go (its first device when it is split).
    """
    allowed = cls._from_pretrained_kwargs
    unknown = sorted(set(kwargs) - set(allowed)) if allowed is not None else []
    if unknown:
        raise TypeError(f"{cls.__name__}.from_pretrained got unexpected keyword argument(s) {unknown}")
    init_kwargs = {k: kwargs.pop(k) for k in cls._init_only_kwargs if k in kwargs}
    check_devices("from_pretrained", device=device, gradiend_device=gradiend_device)
    checkpoint, base_ref = _resolve_forms(load_directory, base_model, gradiend_model, require_gradiend_model)
    devices = cls._get_device_config(device=device, **kwargs)
    context: dict[str, Any] = {}
    if checkpoint is not None:
        gradiend = ParamMappedGradiendModel.from_pretrained(checkpoint)
        context = _read_context(checkpoint)
        _warn_if_not_converged(checkpoint)
        from_checkpoint = base_ref is None
        if from_checkpoint:
            base_ref = resolve_reference(gradiend.metadata, checkpoint)
            if not base_ref:
                raise ValueError(f"{checkpoint}/config.json records no base model; pass base_model=")
        info = {"metadata": gradiend.metadata, "context": context, "base_from_checkpoint": from_checkpoint}
        base, *extra = cls._load_model(checkpoint, base_model_id=base_ref, gradiend_kwargs=info,
                                       device_config=devices, **kwargs)
    else:
        base, *extra = cls._load_model(base_ref, base_model_id=None, gradiend_kwargs=None, device_config=devices,
                                       **kwargs)
        gradiend = cls._create_gradiend(base, **kwargs)
    if devices.get("base_model") is not None:
        base.to(devices["base_model"])
    base_id = getattr(base_ref, "name_or_path", None) if isinstance(base_ref, torch.nn.Module) else str(base_ref)
    if checkpoint is not None:
        try:
            lookup_parameters(base, gradiend.param_map)  # every mapped name, with its recorded shape
        except ValueError as err:
            raise ValueError(f"GRADIEND checkpoint {checkpoint} does not fit base model {base_id!r}: {err}") from err
    if gradiend.device.type != "meta":
        placed = devices.get("encoder") if gradiend_device is None else device_name(gradiend_device)
        gradiend.to(input_device(base) if placed is None else placed)

    for key, value in {"source": source, "target": target}.items():
        saved = context.get(key)
        if value is not None and saved is not None and value != saved:
            logger.warning("%s=%r overrides %r saved with the checkpoint %s", key, value, saved, checkpoint)
    directions = _merge_directions(context.get("feature_class_encoding_direction"), feature_class_encoding_direction,
                                   feature_definition)
    defaults = {"source": source or context.get("source"), "target": target or context.get("target")}
    model = cls(base, gradiend, *extra, feature_class_encoding_direction=directions, base_model_id=base_id,
                **{k: v for k, v in defaults.items() if v is not None}, **init_kwargs)
    model._post_init_from_pretrained()
    return model
