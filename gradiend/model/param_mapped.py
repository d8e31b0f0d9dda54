"""GRADIEND over named base-model parameters.

``param_map`` is an ordered dict ``name → spec`` with ``spec = {"shape": tuple, "repr": "all" |
"mask" | "indices", "mask": BoolTensor (shape) | "indices": LongTensor (sorted flat indices)}``.
The GRADIEND input space is the concatenation, in map order, of the selected entries of each
flattened parameter. ``base_layout`` remembers the unpruned map (names and shapes), so indices
of differently pruned models can be compared in one "base-global" space.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Mapping

import torch

from gradiend.model.checkpoint import CONFIG_FILE, architecture_kwargs
from gradiend.model.gradiend_model import GradiendModel
from gradiend.util.io import load_safetensors, save_safetensors

MAPPING_FILE = "mapping.safetensors"
REPRS = ("all", "mask", "indices")
# Store selected flat indices instead of a mask when k int64 indices take < 80 % of a bool mask.
_INDEX_BYTES = 8


def _shape_of(value: Any, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in value)
    except TypeError:
        raise ValueError(f"param_map[{name!r}]: shape must be a sequence of ints, got {value!r}") from None


def normalize_spec(name: str, spec: Any) -> dict[str, Any]:
    """Validate one map entry; a bare shape means "all entries"."""
    if not isinstance(spec, Mapping):
        return {"shape": _shape_of(spec, name), "repr": "all"}
    if "shape" not in spec:
        raise ValueError(f"param_map[{name!r}] has no 'shape'")
    shape = _shape_of(spec["shape"], name)
    rep = spec.get("repr", "all")
    numel = math.prod(shape)
    if rep == "all":
        return {"shape": shape, "repr": "all"}
    if rep == "mask":
        mask = spec.get("mask")
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.numel() != numel:
            raise ValueError(f"param_map[{name!r}]: repr 'mask' needs a bool tensor 'mask' with {numel} entries")
        if not mask.any():
            raise ValueError(f"param_map[{name!r}]: mask selects no entry")
        return {"shape": shape, "repr": "mask", "mask": mask.detach().cpu().reshape(shape)}
    if rep == "indices":
        indices = spec.get("indices")
        if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"param_map[{name!r}]: repr 'indices' needs an integer tensor 'indices'")
        indices = indices.detach().cpu().reshape(-1).long()
        if indices.numel() == 0:
            raise ValueError(f"param_map[{name!r}]: indices select no entry")
        if bool((indices[1:] <= indices[:-1]).any()) or int(indices[0]) < 0 or int(indices[-1]) >= numel:
            raise ValueError(f"param_map[{name!r}]: indices must be strictly increasing flat indices in [0, {numel})")
        return {"shape": shape, "repr": "indices", "indices": indices}
    raise ValueError(f"param_map[{name!r}]: unknown repr {rep!r}; expected one of {list(REPRS)}")


def selected_count(spec: Mapping[str, Any]) -> int:
    if spec["repr"] == "all":
        return math.prod(spec["shape"])
    if spec["repr"] == "mask":
        return int(spec["mask"].sum())
    return int(spec["indices"].numel())


def spec_indices(spec: Mapping[str, Any]) -> torch.Tensor | None:
    """Sorted flat indices a spec selects; None for "all"."""
    if spec["repr"] == "all":
        return None
    if spec["repr"] == "mask":
        return spec["mask"].reshape(-1).nonzero().reshape(-1)
    return spec["indices"]


def spec_from_indices(shape: tuple[int, ...], kept: torch.Tensor) -> dict[str, Any] | None:
    """Cheapest spec for kept flat indices: None (nothing), "all", "indices" or "mask"."""
    numel = math.prod(shape)
    k = int(kept.numel())
    if k == 0:
        return None
    if k == numel:
        return {"shape": shape, "repr": "all"}
    if k * _INDEX_BYTES < 0.8 * numel:
        return {"shape": shape, "repr": "indices", "indices": kept.long()}
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[kept] = True
    return {"shape": shape, "repr": "mask", "mask": mask.reshape(shape)}


def select_param_map(param_map: Mapping[str, Mapping[str, Any]], keep: torch.Tensor) -> dict[str, dict[str, Any]]:
    """The map that keeps the input dimensions where ``keep`` (bool over the map's input space) is True.

    Parameters with nothing kept are dropped. Used by pruning and to build a pre-pruned map.
    """
    keep = torch.as_tensor(keep).reshape(-1).cpu()
    counts = [selected_count(s) for s in param_map.values()]
    if keep.dtype != torch.bool or keep.numel() != sum(counts):
        raise ValueError(f"keep must be a bool tensor with {sum(counts)} entries, got {keep.dtype} with {keep.numel()}")
    result = {}
    for (name, spec), kept in zip(param_map.items(), keep.split(counts)):
        local = kept.nonzero().reshape(-1)
        selected = spec_indices(spec)
        spec_new = spec_from_indices(spec["shape"], local if selected is None else selected[local])
        if spec_new is not None:
            result[name] = spec_new
    return result


class ParamMappedGradiendModel(GradiendModel):
    """A :class:`GradiendModel` whose input space is laid out over named base parameters."""

    def __init__(
        self,
        param_map: Mapping[str, Any],
        latent_dim: int = 1,
        activation_encoder: str = "tanh",
        activation_decoder: str = "id",
        bias_decoder: bool = True,
        torch_dtype: Any = torch.float32,
        device: Any = None,
        base_layout: Mapping[str, Any] | None = None,
        input_dim: int | None = None,
    ):
        if not param_map:
            raise ValueError("param_map is empty: a GRADIEND needs at least one base parameter")
        param_map = {str(name): normalize_spec(str(name), spec) for name, spec in param_map.items()}
        size = sum(selected_count(s) for s in param_map.values())
        if input_dim is not None and int(input_dim) != size:
            raise ValueError(f"input_dim {input_dim} does not match the {size} entries param_map selects")
        super().__init__(size, latent_dim, activation_encoder, activation_decoder, bias_decoder, torch_dtype, device)
        self.param_map = param_map
        layout = base_layout if base_layout is not None else {n: s["shape"] for n, s in param_map.items()}
        self.base_layout = {str(n): _shape_of(s, n) for n, s in layout.items()}
        for name, spec in param_map.items():
            if self.base_layout.get(name) != spec["shape"]:
                raise ValueError(f"param_map[{name!r}] (shape {spec['shape']}) is not in base_layout with that shape")

    def _init_kwargs(self) -> dict[str, Any]:
        return {**super()._init_kwargs(), "param_map": self.param_map, "base_layout": self.base_layout}

    # ----------------------------------------------------------------- layout
    def selected_flat_indices(self, name: str) -> torch.Tensor | None:
        """Sorted flat indices of ``name`` in the input space; None when all entries are used."""
        if name not in self.param_map:
            raise KeyError(f"{name!r} is not a mapped parameter")
        return spec_indices(self.param_map[name])

    def segments(self) -> list[tuple[str, int, int]]:
        """``(name, start, stop)`` of each parameter's slice of the input space, in map order."""
        counts = [selected_count(spec) for spec in self.param_map.values()]
        stops = itertools.accumulate(counts)
        return [(name, stop - count, stop) for name, count, stop in zip(self.param_map, counts, stops)]

    def base_global_indices(self) -> torch.Tensor:
        """For each local input index, its index in the unpruned space of full parameters (``base_layout``)."""
        sizes = [math.prod(shape) for shape in self.base_layout.values()]
        offsets = dict(zip(self.base_layout, itertools.accumulate(sizes, initial=0)))
        parts = []
        for name, spec in self.param_map.items():
            selected = spec_indices(spec)
            local = torch.arange(math.prod(spec["shape"])) if selected is None else selected
            parts.append(local + offsets[name])
        return torch.cat(parts)

    # ----------------------------------------------------------------- dict <-> flat
    def flatten(self, grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate the selected entries of per-parameter tensors (full shapes) into the input space.

        Only the mapped entries are read: extra names (e.g. the rest of a full gradient dict handed to
        a pruned GRADIEND) are ignored; a missing or misshaped mapped parameter is an error."""
        missing = [n for n in self.param_map if n not in grads]
        if missing:
            raise ValueError(f"gradient dict lacks mapped parameter(s) {missing[:5]}{' …' if len(missing) > 5 else ''} "
                             f"({len(missing)} of {len(self.param_map)} missing)")
        parts = []
        for name, spec in self.param_map.items():
            grad = grads[name]
            if tuple(grad.shape) != spec["shape"]:
                raise ValueError(f"gradient of {name!r} has shape {tuple(grad.shape)}, expected {spec['shape']}")
            flat, selected = grad.reshape(-1), spec_indices(spec)
            part = flat if selected is None else flat.index_select(0, selected.to(flat.device))
            parts.append(part.to(self.device))  # a split base model's gradients lie on several devices
        return torch.cat(parts)

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-parameter full-shape tensors from an input-space vector (zeros where not selected)."""
        vector = torch.as_tensor(vector)
        if vector.dim() != 1 or vector.numel() != self.input_dim:
            raise ValueError(f"expected {self.input_dim} entries, got {vector.numel()} (shape {tuple(vector.shape)})")
        out = {}
        for name, start, stop in self.segments():
            spec = self.param_map[name]
            chunk = vector[start:stop]
            if spec["repr"] != "all":
                full = torch.zeros(math.prod(spec["shape"]), dtype=vector.dtype, device=vector.device)
                full[spec_indices(spec).to(vector.device)] = chunk
                chunk = full
            out[name] = chunk.reshape(spec["shape"])
        return out

    def _as_flat(self, x):
        return self.flatten(x) if isinstance(x, Mapping) else x

    def forward_encoder(self, x):
        return super().forward_encoder(self._as_flat(x))

    def reconstruct(self, x, return_encoded: bool = False):
        """Like :meth:`GradiendModel.reconstruct`; a dict input gives a dict of full-shape decoded tensors."""
        decoded, encoded = super().reconstruct(self._as_flat(x), return_encoded=True)
        if isinstance(x, Mapping):
            decoded = self.unflatten(decoded)
        return (decoded, encoded) if return_encoded else decoded

    # ----------------------------------------------------------------- pruning
    def _after_prune(self, keep: torch.Tensor, source: GradiendModel) -> None:
        self.param_map = select_param_map(source.param_map, keep)
        self.base_layout = dict(source.base_layout)

    # ----------------------------------------------------------------- save / load
    def _mapping_config(self, directory: Path) -> dict[str, Any]:
        tensors = {name: spec[spec["repr"]] for name, spec in self.param_map.items() if spec["repr"] != "all"}
        mapping_path = directory / MAPPING_FILE
        if tensors:
            save_safetensors(tensors, mapping_path)
        elif mapping_path.exists():
            mapping_path.unlink()
        return {
            "parameters": [{"name": n, "shape": list(s["shape"]), "repr": s["repr"]} for n, s in self.param_map.items()],
            "base_layout": [{"name": n, "shape": list(shape)} for n, shape in self.base_layout.items()],
        }

    @classmethod
    def _blank_from_config(cls, config: dict[str, Any], directory: Path) -> "ParamMappedGradiendModel":
        config_path = Path(directory) / CONFIG_FILE
        mapping = config.get("mapping")
        if not isinstance(mapping, dict) or "parameters" not in mapping:
            raise ValueError(f"{config_path} has no parameter mapping; load it with GradiendModel.from_pretrained")
        entries = mapping["parameters"]
        needs_tensors = any(e.get("repr") != "all" for e in entries)
        tensors = load_safetensors(Path(directory) / MAPPING_FILE) if needs_tensors else {}
        param_map = {}
        for entry in entries:  # the constructor validates each spec (its errors get the file's name below)
            name, rep = entry["name"], entry.get("repr")
            param_map[name] = {"shape": entry["shape"], "repr": rep}
            if rep in ("mask", "indices"):
                if name not in tensors:
                    raise ValueError(f"{Path(directory) / MAPPING_FILE} has no tensor for parameter {name!r}")
                param_map[name][rep] = tensors[name]
        layout = {e["name"]: e["shape"] for e in mapping.get("base_layout") or []} or None
        arch = architecture_kwargs(config["architecture"], directory)
        try:
            return cls(param_map=param_map, base_layout=layout, device="meta", **arch)
        except ValueError as err:
            raise ValueError(f"{config_path}: {err}") from err
