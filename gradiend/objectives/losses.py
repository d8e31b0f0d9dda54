"""Cross-entropy of the factual / alternative targets at the scored positions, per row or per batch.

``kind`` selects the loss: ``"factual"`` (CE of the factual token), ``"alternative"`` (CE of the
alternative token) or ``"diff"`` (``L_f - L_a``). Each target's loss is the mean CE over the
positions that score it (a target of ``k`` sub-tokens has ``k`` positions: its CE is ``-log`` of the
product of their probabilities, spread over them). When both tokens are scored at the same positions
(:attr:`TargetBatch.shared_positions`), ``CE_f - CE_a = (lse - z_f) - (lse - z_a) = z_a - z_f``: the
log-softmax normaliser cancels, and the difference is computed as a plain logit difference (same
value, exact gradient, no softmax; docs/design.md §2.2). Otherwise (targets of different sub-token
counts) ``L_f - L_a`` is the difference of the two losses, each over its own positions.

Everything here is built from ``logsumexp``, ``gather``, indexing and a matrix product so that it
works under ``torch.func.jvp`` as well as under autograd.
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


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")
    return reduction


def _scored(batch: TargetBatch, kind: str) -> torch.Tensor | None:
    """Indices of the positions a loss of ``kind`` is computed at; None when it is all of them."""
    if kind != "factual" and batch.alternative_ids is None:
        raise ValueError(f"loss kind {kind!r} needs alternative ids, but the batch was prepared without alternatives")
    if batch.shared_positions:
        return None
    if kind == "diff":
        raise ValueError("the factual and alternative targets of this batch are scored at different positions "
                         "(different sub-token counts): L_f - L_a has no per-position form; use row_losses or batch_loss")
    return batch.scored_by(kind)


def position_losses(logits: torch.Tensor, batch: TargetBatch, kind: str) -> torch.Tensor:
    """Loss at each position that scores ``kind``, shape ``(P_kind,)`` (all ``P`` positions when the
    targets share them); ``"diff"`` needs shared positions."""
    index = _scored(batch, check_kind(kind))
    if kind == "diff":
        pair = torch.stack([batch.alternative_ids, batch.factual_ids], dim=1)
        z = logits.gather(1, pair)
        return z[:, 0] - z[:, 1]
    ids = batch.factual_ids if kind == "factual" else batch.alternative_ids
    if index is not None:
        logits, ids = logits[index], ids[index]
    z = logits.gather(1, ids.unsqueeze(1)).squeeze(1)
    return torch.logsumexp(logits, dim=1) - z


def row_weights(batch: TargetBatch, dtype: torch.dtype, reduction: str = "rows", kind: str = "factual") -> torch.Tensor:
    """``(B, P_kind)`` matrix that turns the position losses of ``kind`` into per-row values.

    ``"rows"``: each row's mean over its own positions (the loss of the row on its own).
    ``"positions"``: each row's sum divided by the batch's count of such positions, so the rows add
    up to the batch's mean over all positions (Hugging Face loss semantics).
    """
    _check_reduction(reduction)
    index = _scored(batch, check_kind(kind))
    rows = batch.row_index if index is None else batch.row_index[index]
    one_hot = torch.zeros(batch.n_rows, rows.numel(), dtype=dtype, device=rows.device)
    one_hot[rows, torch.arange(rows.numel(), device=rows.device)] = 1.0
    if reduction == "positions":
        return one_hot / rows.numel()
    counts = one_hot.sum(dim=1, keepdim=True)
    if bool((counts == 0).any()):
        raise ValueError("a row of the batch has no scored position")
    return one_hot / counts


def _separate(batch: TargetBatch, kind: str) -> bool:
    """Whether ``kind`` is a diff whose two losses run on their own positions."""
    return kind == "diff" and not batch.shared_positions


def row_losses(logits: torch.Tensor, batch: TargetBatch, kind: str, reduction: str = "rows") -> torch.Tensor:
    """Per-row loss ``(B,)`` (``kind="diff"``: L_f - L_a), the position losses weighted by :func:`row_weights`
    (with ``reduction="positions"`` the rows sum to :func:`batch_loss` with that reduction)."""
    if _separate(batch, check_kind(kind)):
        return row_losses(logits, batch, "factual", reduction) - row_losses(logits, batch, "alternative", reduction)
    losses = position_losses(logits, batch, kind)
    return row_weights(batch, losses.dtype, reduction, kind) @ losses


def batch_loss(logits: torch.Tensor, batch: TargetBatch, kind: str, reduction: str = "positions") -> torch.Tensor:
    """Scalar loss of the batch.

    ``"positions"``: mean over all positions that score the target (Hugging Face loss semantics and
    the reference's training gradient: a row with several masks weighs more; ``"diff"``: the factual
    mean minus the alternative mean). ``"rows"``: mean of :func:`row_losses`.
    """
    if _check_reduction(reduction) == "rows":
        return row_losses(logits, batch, kind, reduction).mean()
    if _separate(batch, check_kind(kind)):
        return batch_loss(logits, batch, "factual") - batch_loss(logits, batch, "alternative")
    return position_losses(logits, batch, kind).mean()
