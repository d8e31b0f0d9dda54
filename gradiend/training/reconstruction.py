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
with ``consume=True`` (latent size 1) every input-sized gradient lives in them: the target turns into
``r`` (computed a chunk at a time, no input-sized scratch) and then ``g``, the decoder bias's
gradient; the source into ``(∂loss/∂pre) x``, the encoder weight's gradient; and :meth:`step`, after
the optimiser has stepped the other parameters, writes ``g h``, the decoder weight's gradient, over
``g`` and steps the decoder weight. Every number is that of the separate tensors.
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


CHUNK = 1 << 20
"""Entries of ``W_d h + b_d`` computed at a time on the in-place path."""


class ReconstructionLoss:
    """Computes the loss and overwrites every GRADIEND parameter's ``.grad``, reusing the tensors
    (``zero_grad(set_to_none=True)`` only makes them re-created once); :meth:`step` steps the optimiser."""

    def __init__(self):
        self._scratch: torch.Tensor | None = None  # r when the decoder has no bias to hold it; chunk buffer
        self._pending: tuple | None = None  # (decoder weight, g, h) whose gradient step() writes

    def _scratch_like(self, like: torch.Tensor, size: int) -> torch.Tensor:
        held = self._scratch
        if held is None or held.numel() < size or held.device != like.device or held.dtype != like.dtype:
            self._scratch = held = torch.empty(size, dtype=like.dtype, device=like.device)
        return held[:size]

    def _grad_of(self, param: nn.Parameter) -> torch.Tensor:
        if param.grad is None or param.grad.shape != param.shape:
            param.grad = torch.empty_like(param)
        return param.grad

    def __call__(self, gradiend, source: torch.Tensor, target: torch.Tensor, consume: bool = False) -> torch.Tensor:
        """The loss of ``gradiend`` (a detached scalar) after writing its gradients; autograd when not fusable.
        ``consume``: ``source`` and ``target`` may be overwritten and kept as gradients (module docstring);
        call :meth:`step` to apply them."""
        if self._pending is not None:  # an in-place call that was never stepped: its gradients alias inputs
            self._pending = None
            for param in gradiend.parameters():
                param.grad = None
        if not _fusable(gradiend, source, target):
            loss = nn.functional.mse_loss(gradiend.reconstruct(source), target.to(gradiend.encoder.weight.dtype))
            for param in gradiend.parameters():
                param.grad = None
            loss.backward()
            return loss.detach()
        # one kind for both (one tensor) is kept intact
        in_place = consume and gradiend.latent_dim == 1 and source.data_ptr() != target.data_ptr()
        encoder, decoder = gradiend.encoder, gradiend.decoder
        n = source.numel()
        with torch.no_grad():
            pre = torch.addmv(encoder.bias, encoder.weight, source)
        with torch.enable_grad():
            pre.requires_grad_(True)
            h = gradiend.encoder_activation(pre)
        with torch.no_grad():
            if in_place:
                residual = target
                for start in range(0, n, CHUNK):
                    rows = slice(start, min(n, start + CHUNK))
                    decoded = self._scratch_like(target, min(n, CHUNK))[:rows.stop - start]
                    self._decode(decoder, h, rows, decoded)
                    torch.sub(decoded, target[rows], out=target[rows])
            else:
                residual = self._grad_of(decoder.bias) if decoder.bias is not None else self._scratch_like(target, n)
                self._decode(decoder, h, slice(0, n), residual)
                residual.sub_(target)
            loss = torch.dot(residual, residual) / n
            residual.mul_(2.0 / n)  # g = ∂loss/∂d = ∂loss/∂b_d
            if not in_place:
                torch.outer(residual, h.detach(), out=self._grad_of(decoder.weight))
            grad_h = torch.mv(decoder.weight.t(), residual)
        (grad_pre,) = torch.autograd.grad(h, pre, grad_h)
        with torch.no_grad():
            self._grad_of(encoder.bias).copy_(grad_pre)
            if not in_place:
                torch.outer(grad_pre, source, out=self._grad_of(encoder.weight))
                return loss
            torch.mul(source, grad_pre[0], out=source)
            encoder.weight.grad = source.view(1, n)
            if decoder.bias is not None:
                decoder.bias.grad = residual
            decoder.weight.grad = None  # written by step(), once g has been used
            self._pending = (decoder.weight, residual, h.detach()[0])
        return loss

    @staticmethod
    def _decode(decoder: nn.Linear, h: torch.Tensor, rows: slice, out: torch.Tensor) -> None:
        """``out = W_d[rows] h + b_d[rows]``."""
        if decoder.bias is not None:
            torch.addmv(decoder.bias[rows], decoder.weight[rows], h.detach(), out=out)
        else:
            torch.mv(decoder.weight[rows], h.detach(), out=out)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; after an in-place call, a second step for the decoder weight alone,
        its gradient ``g h`` written over ``g`` (every parameter steps once, as in one call)."""
        optimizer.step()
        if self._pending is None:
            return
        weight, residual, h = self._pending
        self._pending = None
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = None
        weight.grad = residual.mul_(h).view(-1, 1)
        optimizer.step()
        weight.grad = None
