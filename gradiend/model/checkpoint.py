"""A GRADIEND checkpoint folder: ``config.json``, ``model.safetensors`` and ``training.json``.

:class:`~gradiend.model.gradiend_model.GradiendModel` saves and loads through these functions; its
subclass hooks (``_mapping_config``, ``_blank_from_config``) supply what differs; the weights are the
model's named parameters.
Every defect of a folder is one error naming the bad file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gradiend.util.io import load_safetensors, read_json, save_safetensors, write_json

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINING_FILE = "training.json"

ARCHITECTURE_KEYS = ("input_dim", "latent_dim", "activation_encoder", "activation_decoder", "bias_decoder",
                     "torch_dtype")


def save_checkpoint(model, directory, training: dict | None = None) -> Path:
    """Write ``model.safetensors``, mapping files, ``config.json`` (last) and ``training.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_safetensors(dict(model.named_parameters()), directory / WEIGHTS_FILE)
    config = {
        "format_version": FORMAT_VERSION,
        "architecture": model.architecture(),
        "mapping": model._mapping_config(directory),
        "metadata": model.metadata,
    }
    write_json(directory / CONFIG_FILE, config)
    if training is not None:
        write_json(directory / TRAINING_FILE, training)
    return directory


def read_config(load_directory) -> dict[str, Any]:
    """``config.json`` of a GRADIEND checkpoint; a missing folder or non-checkpoint is one clear error."""
    directory = Path(load_directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"GRADIEND checkpoint folder not found: {directory}")
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: {directory} is not a GRADIEND checkpoint")
    config = read_json(config_path)
    if not isinstance(config, dict) or "architecture" not in config:
        raise ValueError(f"{config_path} has no 'architecture': {directory} is not a GRADIEND checkpoint")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{config_path}: unsupported format_version {version!r} (expected {FORMAT_VERSION})")
    return config


def is_checkpoint(path) -> bool:
    """Whether ``path`` is a folder with a GRADIEND ``config.json`` (one with an 'architecture')."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        return False
    try:
        return "architecture" in read_json(config_path)
    except (ValueError, TypeError):
        return False


def architecture_kwargs(arch: dict[str, Any], directory) -> dict[str, Any]:
    """The constructor keywords in a checkpoint's ``architecture``; a missing one names the file."""
    missing = [k for k in ARCHITECTURE_KEYS if k not in arch]
    if missing:
        raise ValueError(f"{Path(directory) / CONFIG_FILE}: architecture lacks {missing}")
    return {k: arch[k] for k in ARCHITECTURE_KEYS}


def load_weights(model, directory, config: dict[str, Any], device: Any = None):
    """Fill ``model`` (built from ``config``, e.g. on the meta device) with the folder's weights,
    checking names and shapes against the model, and set its metadata."""
    directory = Path(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        hint = " (pickled pytorch_model.bin checkpoints are not loaded)" if (directory / "pytorch_model.bin").exists() else ""
        raise FileNotFoundError(f"GRADIEND weights not found: {weights_path}{hint}")
    tensors = load_safetensors(weights_path, device=str(device) if device is not None else "cpu")
    expected = {name: tuple(t.shape) for name, t in model.named_parameters()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{weights_path}: missing tensors {missing}, unexpected tensors {unexpected}")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{weights_path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                             f"config.json expects {shape}")
    model._set_weights(*(tensors[n].to(model.dtype) if n in tensors else None
                         for n in ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias")))
    model.metadata = dict(config.get("metadata") or {})
    return model
