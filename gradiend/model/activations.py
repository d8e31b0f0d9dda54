"""Activation functions of the GRADIEND encoder and decoder, by config name."""
from __future__ import annotations

from torch import nn

# Encoder activations with act(-x) = -act(x): only these let ``invert_encoding`` flip the latent
# value while keeping the reconstruction.
ODD_ACTIVATIONS = ("tanh", "smht", "id")

_ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "smht": nn.Hardtanh,
    "id": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Activation module for a config name; an unknown name lists the known ones."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}") from None
