"""Loading and saving a :class:`~gradiend.model.with_gradiend.ModelWithGradiend`.

A checkpoint folder holds the GRADIEND (``config.json``, ``model.safetensors``, optional
``mapping.safetensors`` and ``training.json``) and ``gradiend_context.json`` (source, target,
class directions, objective). The base model is not stored: its id or path is recorded in the
config metadata (``base_model``, ``tokenizer``) and reloaded from there.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gradiend.model.gradiend_model import TRAINING_FILE, GradiendModel
from gradiend.model.param_mapped import ParamMappedGradiendModel
from gradiend.util.io import read_json, write_json
from gradiend.util.logging import get_logger

if TYPE_CHECKING:
    from gradiend.model.with_gradiend import ModelWithGradiend

logger = get_logger(__name__)

CONTEXT_FILE = "gradiend_context.json"


def check_map_fits(base_model: torch.nn.Module, gradiend: ParamMappedGradiendModel) -> None:
    """Every mapped name must be a base-model parameter of the recorded shape; else one clear error."""
    from gradiend.model.rewrite import lookup_parameters

    params = lookup_parameters(base_model, gradiend.param_map)
    for name, spec in gradiend.param_map.items():
        if tuple(params[name].shape) != tuple(spec["shape"]):
            raise ValueError(f"the GRADIEND map expects {name!r} with shape {tuple(spec['shape'])}, "
                             f"the base model {type(base_model).__name__} has {tuple(params[name].shape)}")


def _model_reference(name_or_path: Any) -> str | None:
    """A base model id as given, or an absolute path when it names an existing local folder."""
    if name_or_path is None:
        return None
    path = Path(str(name_or_path)).expanduser()
    return str(path.resolve()) if path.exists() else str(name_or_path)


def save_model_with_gradiend(model: "ModelWithGradiend", save_directory, training: dict | None = None) -> Path:
    """Context file first, then the GRADIEND (its ``config.json`` last marks the folder complete)."""
    directory = Path(save_directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / CONTEXT_FILE, {
        "source": model.source,
        "target": model.target,
        "feature_class_encoding_direction": model.feature_class_encoding_direction,
        "objective": model.objective.name,
    })
    tokenizer_ref = getattr(model.tokenizer, "name_or_path", None) or model.base_model_id
    metadata = {
        **model.gradiend.metadata,
        "base_model": _model_reference(model.base_model_id),
        "tokenizer": _model_reference(tokenizer_ref),
    }
    return model.gradiend.save_pretrained(directory, metadata=metadata, training=training)


def _read_context(directory: Path) -> dict[str, Any]:
    path = directory / CONTEXT_FILE
    if not path.is_file():
        return {}
    try:
        context = read_json(path)
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
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
        if GradiendModel.is_checkpoint(load_directory):
            checkpoint = load_directory
        elif require_gradiend_model:
            GradiendModel.read_config(load_directory)  # raises the precise reason
        elif base_model is not None:
            raise ValueError(f"{load_directory} is not a GRADIEND checkpoint, and base_model is given too")
        else:
            base_model = load_directory
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        GradiendModel.read_config(checkpoint)  # clear error for a missing folder / config
    if base_model is None and checkpoint is None:
        raise ValueError("from_pretrained needs a GRADIEND checkpoint or a base model (load_directory, "
                         "base_model= or gradiend_model=)")
    return checkpoint, base_model


def load_model_with_gradiend(
    cls,
    load_directory=None,
    *,
    base_model=None,
    gradiend_model=None,
    tokenizer=None,
    params=None,
    torch_dtype=None,
    trust_remote_code: bool = False,
    device=None,
    latent_dim: int = 1,
    activation_encoder: str = "tanh",
    activation_decoder: str = "id",
    bias_decoder: bool = True,
    gradiend_dtype=torch.float32,
    objective="auto",
    source: str | None = None,
    target: str | None = None,
    feature_class_encoding_direction=None,
    require_gradiend_model: bool = False,
    lazy_gradiend: bool = False,
    attn_implementation: str = "eager",
    max_length: int | None = None,
):
    """Build a ModelWithGradiend from a checkpoint and/or a base model.

    - ``gradiend_model`` (or a checkpoint ``load_directory``): load that GRADIEND; the base model is
      ``base_model`` when given, else the id recorded in the checkpoint. A map that does not fit the
      base model is one error naming the checkpoint.
    - otherwise ``load_directory`` / ``base_model`` is the base model and a fresh GRADIEND is built
      over :func:`~gradiend.model.backbone.mapped_parameters` (``params`` patterns narrow it),
      initialised from the caller's torch RNG; ``lazy_gradiend`` builds it on the meta device
      (prune it, then ``model.gradiend.materialize(device)``).
    ``base_model`` may also be a loaded ``nn.Module`` (then pass ``tokenizer``). Source, target,
    directions and objective come from ``gradiend_context.json`` unless given explicitly.
    """
    from gradiend.model.backbone import mapped_parameters
    from gradiend.model.loading import load_base_model

    checkpoint, base_ref = _resolve_forms(load_directory, base_model, gradiend_model, require_gradiend_model)
    gradiend = context = None
    if checkpoint is not None:
        gradiend = ParamMappedGradiendModel.from_pretrained(checkpoint)
        context = _read_context(checkpoint)
        _warn_if_not_converged(checkpoint)
        if base_ref is None:
            base_ref = gradiend.metadata.get("base_model")
            if not base_ref:
                raise ValueError(f"{checkpoint}/config.json records no base model; pass base_model=")
            if objective == "auto" and context.get("objective"):  # saved objective fits the recorded model
                objective = context["objective"]
    context = context or {}

    if isinstance(base_ref, torch.nn.Module):
        base, base_id = base_ref, getattr(base_ref, "name_or_path", None)
        if device is not None:
            base.to(device)
    else:
        base, loaded_tokenizer, objective = load_base_model(
            base_ref, objective=objective, torch_dtype=torch_dtype, trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation, device=device)
        tokenizer = tokenizer if tokenizer is not None else loaded_tokenizer
        base_id = str(base_ref)

    if gradiend is None:
        shapes = {name: tuple(p.shape) for name, p in mapped_parameters(base, params).items()}
        gradiend = ParamMappedGradiendModel(
            shapes, latent_dim=latent_dim, activation_encoder=activation_encoder,
            activation_decoder=activation_decoder, bias_decoder=bias_decoder, torch_dtype=gradiend_dtype,
            device="meta" if lazy_gradiend else None)
    else:
        try:
            check_map_fits(base, gradiend)
        except ValueError as err:
            raise ValueError(f"GRADIEND checkpoint {checkpoint} does not fit base model {base_id!r}: {err}") from err
    if device is not None and not lazy_gradiend:
        gradiend.to(device)

    explicit = {"source": source, "target": target}
    for key, value in explicit.items():
        saved = context.get(key)
        if value is not None and saved is not None and value != saved:
            logger.warning("%s=%r overrides %r saved with the checkpoint %s", key, value, saved, checkpoint)
    directions = feature_class_encoding_direction or context.get("feature_class_encoding_direction")
    return cls(
        base_model=base,
        gradiend=gradiend,
        tokenizer=tokenizer,
        objective=objective,
        source=source or context.get("source") or "factual",
        target=target or context.get("target") or "diff",
        feature_class_encoding_direction=directions,
        base_model_id=base_id,
        max_length=max_length,
    )
