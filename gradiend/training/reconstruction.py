"""The GRADIEND's reconstruction loss and its parameter gradients without input-sized allocations.

A step fits ``decoder(encoder(source))`` to ``target`` by mean squared error over all ``input_dim``
entries. Through autograd every input-sized intermediate is a fresh allocation, and on the CPU one
of hundreds of MB costs more in page faults than the arithmetic on it, so :class:`ReconstructionLoss`
writes the same gradients by hand into the parameters' own ``.grad`` tensors, kept across steps;
only the ``latent_dim``-sized encoder activation goes through autograd.

Write-out of the maths, with ``x`` = source, ``t`` = target, ``N`` = input_dim::

    pre = W_e x + b_e,  h = act(pre),  d = W_d h + b_d,  r = d - t,  loss = r·r / N
    g = 2 r / N = ∂loss/∂d = ∂loss/∂b_d,   ∂loss/∂W_d = g hᵀ,   ∂loss/∂h = W_dᵀ g,
    ∂loss/∂pre = act'(pre) ∂loss/∂h = ∂loss/∂b_e,   ∂loss/∂W_e = (∂loss/∂pre) xᵀ

Models this does not cover (a decoder activation other than identity, a dtype other than the
gradients') fall back to autograd.
"""
from __future__ import annotations

import torch
from torch import nn


def _fusable(gradiend, source: torch.Tensor, target: torch.Tensor) -> bool:
    dtype = gradiend.encoder.weight.dtype
    known = {id(p) for layer in (gradiend.encoder, gradiend.decoder) for p in layer.parameters()}
    return (isinstance(gradiend.decoder_activation, nn.Identity) and source.dim() == 1
            and source.dtype == dtype and target.dtype == dtype
            and all(id(p) in known for p in gradiend.parameters()))


class ReconstructionLoss:
    """Computes the loss and overwrites every GRADIEND parameter's ``.grad``, reusing the tensors
    (``zero_grad(set_to_none=True)`` only makes them re-created once)."""

    def __init__(self):
        self._residual: torch.Tensor | None = None  # r when the decoder has no bias to hold it

    def _scratch_like(self, target: torch.Tensor) -> torch.Tensor:
        held = self._residual
        if held is None or held.shape != target.shape or held.device != target.device:
            self._residual = held = torch.empty_like(target)
        return held

    def _grad_of(self, param: nn.Parameter) -> torch.Tensor:
        if param.grad is None or param.grad.shape != param.shape:
            param.grad = torch.empty_like(param)
        return param.grad

    def __call__(self, gradiend, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``gradiend`` (a detached scalar) after writing its gradients; autograd when not fusable."""
        if not _fusable(gradiend, source, target):
            loss = nn.functional.mse_loss(gradiend.reconstruct(source), target.to(gradiend.encoder.weight.dtype))
            for param in gradiend.parameters():
                param.grad = None
            loss.backward()
            return loss.detach()
        encoder, decoder = gradiend.encoder, gradiend.decoder
        n = source.numel()
        with torch.no_grad():
            pre = torch.addmv(encoder.bias, encoder.weight, source)
        with torch.enable_grad():
            pre.requires_grad_(True)
            h = gradiend.encoder_activation(pre)
        with torch.no_grad():
            if decoder.bias is not None:
                residual = self._grad_of(decoder.bias)  # r, then scaled to g = ∂loss/∂b_d in place
                torch.addmv(decoder.bias, decoder.weight, h.detach(), out=residual)
            else:
                residual = self._scratch_like(target)
                torch.mv(decoder.weight, h.detach(), out=residual)
            residual.sub_(target)
            loss = torch.dot(residual, residual) / n
            residual.mul_(2.0 / n)
            torch.outer(residual, h.detach(), out=self._grad_of(decoder.weight))
            grad_h = torch.mv(decoder.weight.t(), residual)
        (grad_pre,) = torch.autograd.grad(h, pre, grad_h)
        with torch.no_grad():
            self._grad_of(encoder.bias).copy_(grad_pre)
            torch.outer(grad_pre, source, out=self._grad_of(encoder.weight))
        return loss
