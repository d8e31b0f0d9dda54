"""Apply a GRADIEND update ``θ ← θ + lr·u`` to the mapped parameters of a base model.

Only mapped entries change; everything else in the base model stays bitwise identical.
:func:`snapshot` saves just the entries an update touches and :func:`restore` writes them back, so
one loaded model can score many (learning rate, feature factor) cells without reloads and without
rounding residue (``ModelWithGradiend.applied_update``).
"""
from __future__ import annotations

from typing import Mapping

import torch

from gradiend.model.param_mapped import ParamMappedGradiendModel
from gradiend.util.parameters import parameters_by_name


def lookup_parameters(model: torch.nn.Module, param_map: Mapping[str, Mapping]) -> dict:
    """The base-model parameters named in the GRADIEND map (tied aliases included); a missing name or
    a parameter of another shape than the map records is an error."""
    params = parameters_by_name(model)
    missing = [n for n in param_map if n not in params]
    if missing:
        raise ValueError(f"the base model {type(model).__name__} has no parameter(s) {missing[:5]}"
                         f"{' …' if len(missing) > 5 else ''} named in the GRADIEND map")
    for name, spec in param_map.items():
        if tuple(params[name].shape) != tuple(spec["shape"]):
            raise ValueError(f"the GRADIEND map expects {name!r} with shape {tuple(spec['shape'])}, "
                             f"the base model {type(model).__name__} has {tuple(params[name].shape)}")
    return {n: params[n] for n in param_map}


def _flat_view(param: torch.Tensor, name: str) -> torch.Tensor:
    if not param.is_contiguous():
        raise ValueError(f"base parameter {name!r} is not contiguous; cannot update selected entries in place")
    return param.view(-1)


@torch.no_grad()
def add_update(params: Mapping[str, torch.Tensor], gradiend: ParamMappedGradiendModel, vector: torch.Tensor,
               learning_rate: float) -> None:
    """``θ += lr·u`` on the mapped entries of ``params`` (in place)."""
    if vector.numel() != gradiend.input_dim:
        raise ValueError(f"expected {gradiend.input_dim} entries, got {vector.numel()}")
    for name, start, stop in gradiend.segments():
        param = params[name]
        delta = (vector[start:stop].to(param.device) * learning_rate).to(param.dtype)
        indices = gradiend.selected_flat_indices(name)
        if indices is None:
            param.add_(delta.reshape(param.shape))
        else:
            _flat_view(param, name).index_add_(0, indices.to(param.device), delta)


@torch.no_grad()
def snapshot(params: Mapping[str, torch.Tensor], gradiend: ParamMappedGradiendModel) -> dict[str, torch.Tensor]:
    """Copies of exactly the entries an update touches (whole tensors for "all" parameters)."""
    saved = {}
    for name in gradiend.param_map:
        indices = gradiend.selected_flat_indices(name)
        param = params[name]
        saved[name] = param.detach().clone() if indices is None else _flat_view(param, name)[indices.to(param.device)].clone()
    return saved


@torch.no_grad()
def restore(params: Mapping[str, torch.Tensor], gradiend: ParamMappedGradiendModel, saved: Mapping[str, torch.Tensor]) -> None:
    """Write a :func:`snapshot` back (bitwise)."""
    for name, values in saved.items():
        indices = gradiend.selected_flat_indices(name)
        param = params[name]
        if indices is None:
            param.copy_(values)
        else:
            _flat_view(param, name).index_copy_(0, indices.to(param.device), values)
