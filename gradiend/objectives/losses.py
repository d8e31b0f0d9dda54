"""Cross-entropy of the factual / alternative targets at the scored positions, per row or per batch.

``kind`` selects the loss: ``"factual"`` (CE of the factual token), ``"alternative"`` (CE of the
alternative token) or ``"diff"`` (``L_f - L_a``). Because both tokens are scored at the same
positions, ``CE_f - CE_a = (lse - z_f) - (lse - z_a) = z_a - z_f``: the log-softmax normaliser
cancels, and the difference is computed as a plain logit difference (same value, exact gradient,
no softmax; docs/design.md §2.2).

Everything here is built from ``logsumexp``, ``gather`` and a matrix product so that it works under
``torch.func.jvp`` as well as under autograd.
"""
from __future__ import annotations

import torch

from gradiend.objectives.base import TargetBatch

KINDS = ("factual", "alternative", "diff")
REDUCTIONS = ("positions", "rows")


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown loss kind {kind!r}; expected one of {KINDS}")
    return kind


def _ids(batch: TargetBatch, which: str) -> torch.Tensor:
    ids = batch.factual_ids if which == "factual" else batch.alternative_ids
    if ids is None:
        raise ValueError(f"loss kind {which!r} needs alternative ids, but the batch was prepared without alternatives")
    return ids


def position_losses(logits: torch.Tensor, batch: TargetBatch, kind: str) -> torch.Tensor:
    """Loss of each scored position, shape ``(P,)``."""
    check_kind(kind)
    if kind == "diff":
        pair = torch.stack([_ids(batch, "alternative"), _ids(batch, "factual")], dim=1)
        z = logits.gather(1, pair)
        return z[:, 0] - z[:, 1]
    z = logits.gather(1, _ids(batch, kind).unsqueeze(1)).squeeze(1)
    return torch.logsumexp(logits, dim=1) - z


def row_weights(batch: TargetBatch, dtype: torch.dtype, reduction: str = "rows") -> torch.Tensor:
    """``(B, P)`` matrix that turns position losses into per-row values.

    ``"rows"``: each row's mean over its own positions (the loss of the row on its own).
    ``"positions"``: each row's sum divided by the batch's total position count, so the rows add up
    to the batch's mean over all positions (Hugging Face loss semantics).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")
    one_hot = torch.zeros(batch.n_rows, batch.n_positions, dtype=dtype, device=batch.row_index.device)
    one_hot[batch.row_index, torch.arange(batch.n_positions, device=batch.row_index.device)] = 1.0
    if reduction == "positions":
        return one_hot / batch.n_positions
    counts = one_hot.sum(dim=1, keepdim=True)
    if bool((counts == 0).any()):
        raise ValueError("a row of the batch has no scored position")
    return one_hot / counts


def row_losses(logits: torch.Tensor, batch: TargetBatch, kind: str, reduction: str = "rows") -> torch.Tensor:
    """Per-row loss ``(B,)`` (``kind="diff"``: L_f - L_a), the position losses weighted by :func:`row_weights`
    (with ``reduction="positions"`` the rows sum to :func:`batch_loss` with that reduction)."""
    losses = position_losses(logits, batch, kind)
    return row_weights(batch, losses.dtype, reduction) @ losses


def batch_loss(logits: torch.Tensor, batch: TargetBatch, kind: str, reduction: str = "positions") -> torch.Tensor:
    """Scalar loss of the batch.

    ``"positions"``: mean over all scored positions of the batch (Hugging Face loss semantics and the
    reference's training gradient: a row with several masks weighs more). ``"rows"``: mean of
    :func:`row_losses`.
    """
    if reduction == "positions":
        return position_losses(logits, batch, kind).mean()
    return row_losses(logits, batch, kind, reduction).mean()  # an unknown reduction is refused there
