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

A training step owns its source and target vectors (reused buffers, rewritten by the next step), so
with ``consume=True`` they become two of the gradients: the target turns into ``r`` and then ``g``,
the decoder bias's gradient, and the source into ``(∂loss/∂pre) x``, the encoder weight's gradient
(latent size 1). Of the three input-sized gradients only the decoder weight's is then held on its
own; its storage first holds ``W_d h + b_d``, so the numbers are those of the separate tensors.
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

    def _grad_of(self, param: nn.Parameter, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``param.grad``, made a tensor of its own when missing, misshaped or an input kept by ``consume``."""
        grad = param.grad
        if grad is None or grad.shape != param.shape or any(grad.data_ptr() == x.data_ptr() for x in inputs):
            param.grad = grad = torch.empty_like(param)
        return grad

    def __call__(self, gradiend, source: torch.Tensor, target: torch.Tensor, consume: bool = False) -> torch.Tensor:
        """The loss of ``gradiend`` (a detached scalar) after writing its gradients; autograd when not fusable.
        ``consume``: ``source`` and ``target`` may be overwritten and kept as gradients (module docstring)."""
        if not _fusable(gradiend, source, target):
            loss = nn.functional.mse_loss(gradiend.reconstruct(source), target.to(gradiend.encoder.weight.dtype))
            for param in gradiend.parameters():
                param.grad = None
            loss.backward()
            return loss.detach()
        encoder, decoder = gradiend.encoder, gradiend.decoder
        n, inputs = source.numel(), (source, target)
        reuse = consume and source.data_ptr() != target.data_ptr()  # one kind for both: one tensor, kept intact
        with torch.no_grad():
            pre = torch.addmv(encoder.bias, encoder.weight, source)
        with torch.enable_grad():
            pre.requires_grad_(True)
            h = gradiend.encoder_activation(pre)
        with torch.no_grad():
            weight_grad = self._grad_of(decoder.weight, inputs)
            if reuse:
                residual, decoded = target, weight_grad.view(-1)[:n]  # decoded: scratch until ∂loss/∂W_d
            elif decoder.bias is not None:
                residual = decoded = self._grad_of(decoder.bias, inputs)  # r, scaled to g = ∂loss/∂b_d in place
            else:
                residual = decoded = self._scratch_like(target)
            if decoder.bias is not None:
                torch.addmv(decoder.bias, decoder.weight, h.detach(), out=decoded)
            else:
                torch.mv(decoder.weight, h.detach(), out=decoded)
            torch.sub(decoded, target, out=residual)
            if reuse and decoder.bias is not None:
                decoder.bias.grad = residual
            loss = torch.dot(residual, residual) / n
            residual.mul_(2.0 / n)
            torch.outer(residual, h.detach(), out=weight_grad)
            grad_h = torch.mv(decoder.weight.t(), residual)
        (grad_pre,) = torch.autograd.grad(h, pre, grad_h)
        with torch.no_grad():
            self._grad_of(encoder.bias, inputs).copy_(grad_pre)
            if reuse and gradiend.latent_dim == 1:
                torch.mul(source, grad_pre[0], out=source)
                encoder.weight.grad = source.view(1, n)
            else:
                torch.outer(grad_pre, source, out=self._grad_of(encoder.weight, inputs))
        return loss
