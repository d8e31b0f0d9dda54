"""Apply a GRADIEND update ``θ ← θ + lr·u`` to the mapped parameters of a base model.

``u`` is the decoded update ``decoder(feature_factor)`` (for the identity decoder ``ff·w + b``: the
bias is always added, as in the reference) or one of the raw weight vectors
(:data:`~gradiend.model.gradiend_model.UPDATE_PARTS`). Only mapped entries change; everything
else in the base model stays bitwise identical. :func:`applied_update` applies the update in place
and restores a saved copy of just the touched entries on exit, so one loaded model can score many
(learning rate, feature factor) cells without reloads and without rounding residue.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch

from gradiend.model.gradiend_model import UPDATE_PARTS
from gradiend.model.param_mapped import ParamMappedGradiendModel

REWRITE_PARTS = ("decoder", *UPDATE_PARTS)


@torch.no_grad()
def update_vector(gradiend: ParamMappedGradiendModel, feature_factor=1.0, part: str = "decoder") -> torch.Tensor:
    """The update ``u`` (length ``input_dim``) for a rewrite part; an unknown part lists the valid ones."""
    if part == "decoder":
        return gradiend.forward_decoder(feature_factor).detach().reshape(-1)
    if part not in UPDATE_PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {list(REWRITE_PARTS)}")
    return gradiend.get_update_vector(part)


def lookup_parameters(model: torch.nn.Module, names) -> dict[str, torch.nn.Parameter]:
    """The base-model parameters named in the GRADIEND map (tied aliases included); a missing name is an error."""
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        params.update(model.named_parameters(remove_duplicate=False))
        missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"the base model {type(model).__name__} has no parameter(s) {missing[:5]}"
                         f"{' …' if len(missing) > 5 else ''} named in the GRADIEND map")
    return {n: params[n] for n in names}


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


@contextlib.contextmanager
def applied_update(model: torch.nn.Module, gradiend: ParamMappedGradiendModel, vector: torch.Tensor,
                   learning_rate: float) -> Iterator[torch.nn.Module]:
    """Apply ``θ + lr·u`` to ``model`` in place for the duration of the block, then restore it bitwise."""
    params = lookup_parameters(model, gradiend.param_map)
    saved = snapshot(params, gradiend)
    try:
        add_update(params, gradiend, vector, learning_rate)
        yield model
    finally:
        restore(params, gradiend, saved)
