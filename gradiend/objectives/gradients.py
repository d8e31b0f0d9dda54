"""Gradients of the base model's target losses: the fast paths and the plain ones they must match.

Fast paths (docs/design.md §2): :func:`parameter_gradients` runs ONE forward and one backward per kind on it;
``"diff"`` is one backward of the logit difference ``z_a - z_f`` (= ``L_f - L_a``), not two gradients
subtracted. :func:`flat_parameter_gradients` writes those straight into caller-held flat buffers, so
a training step allocates no input-space vectors. :func:`jvp_directional` gives the encoder's
``w · ∇θ L(x)`` for every row of a batch from one forward-mode pass instead of one backward per row
(PyTorch's fused attention has no forward-mode derivative on the CPU: load models with
``attn_implementation="eager"``, the default of :func:`gradiend.model.loading.load_base_model`).

The plain paths (:func:`plain_parameter_gradients`, :func:`per_example_gradient_dot`) do the textbook
computation, one forward and backward per loss and example; tests and benchmarks compare the two.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Mapping, Sequence

import torch
import torch.autograd.forward_ad as forward_ad

from gradiend.objectives.base import Objective, TargetBatch
from gradiend.objectives.heads import scoring_head
from gradiend.objectives.losses import batch_loss, check_kind, row_losses
from gradiend.util.parameters import parameters_by_name

Gradients = dict[str, dict[str, torch.Tensor]]


def _check_kinds(kinds: Sequence[str]) -> list[str]:
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if not kinds:
        raise ValueError("at least one gradient kind is needed ('factual', 'alternative', 'diff')")
    return [check_kind(k) for k in dict.fromkeys(kinds)]


@contextmanager
def _requiring_grad(tensors: Sequence[torch.Tensor]):
    """Let autograd reach ``tensors`` even when the caller froze them; restore the flags after."""
    frozen = [t for t in tensors if not t.requires_grad]
    for t in frozen:
        t.requires_grad_(True)
    try:
        yield
    finally:
        for t in frozen:
            t.requires_grad_(False)


def _backward_per_kind(model, params: Mapping[str, torch.nn.Parameter], objective: Objective,
                       batch: TargetBatch, kinds: Sequence[str], reduction: str, materialize: bool):
    """Yield ``(kind, [gradient per parameter])`` from ONE forward, one backward per kind (the graph is
    kept until the last); a parameter the loss does not reach gets zeros, or None unless ``materialize``."""
    tensors = list(params.values())
    with torch.enable_grad(), _requiring_grad(tensors):
        logits = objective.scored_logits(model, batch)
        for i, kind in enumerate(kinds):
            loss = batch_loss(logits, batch, kind, reduction)
            # one list shared with the consumer: an entry it drops is freed before the next kind's backward
            grads = list(torch.autograd.grad(loss, tensors, retain_graph=i < len(kinds) - 1, allow_unused=True,
                                             materialize_grads=materialize))
            yield kind, grads


def parameter_gradients(
    model: torch.nn.Module,
    params: Mapping[str, torch.nn.Parameter],
    objective: Objective,
    batch: TargetBatch,
    kinds: Sequence[str],
    reduction: str = "positions",
    dtype: torch.dtype | None = torch.float32,
) -> Gradients:
    """``{kind: {param name: gradient}}`` of the batch loss for each requested kind, from one forward.

    ``reduction`` is that of :func:`~gradiend.objectives.losses.batch_loss` (default: mean over all
    scored positions, the reference's training gradient). Gradients are cast to ``dtype``
    (float32 by default; None keeps the model's dtype). A parameter the loss does not reach gets
    zeros. The model's train/eval mode is left as it is (callers keep it in eval mode).
    """
    kinds = _check_kinds(kinds)
    passes = _backward_per_kind(model, params, objective, batch, kinds, reduction, materialize=True)
    return {kind: {n: (g if dtype is None else g.to(dtype)) for n, g in zip(params, grads)}
            for kind, grads in passes}


FlatSegment = tuple[str, int, int, "torch.Tensor | None"]
"""``(parameter name, start, stop, selected flat indices or None for all)`` of one slice of a flat vector."""


def _write_flat(grads: list, names: Sequence[str], segments: Sequence[FlatSegment], out: torch.Tensor) -> None:
    """Copy each parameter's (selected) gradient entries into its slice of ``out``, releasing each
    gradient as soon as it is copied; a parameter the loss did not reach gets zeros."""
    position = {name: i for i, name in enumerate(names)}
    for name, start, stop, selected in segments:
        i = position[name]
        grad, grads[i] = grads[i], None
        dest = out[start:stop]
        if grad is None:
            dest.zero_()
            continue
        flat = grad.reshape(-1)
        dest.copy_(flat if selected is None else flat.index_select(0, selected))


def flat_parameter_gradients(
    model: torch.nn.Module,
    params: Mapping[str, torch.nn.Parameter],
    objective: Objective,
    batch: TargetBatch,
    out: Mapping[str, torch.Tensor],
    segments: Sequence[FlatSegment],
    reduction: str = "positions",
) -> dict[str, torch.Tensor]:
    """:func:`parameter_gradients` for the kinds keyed in ``out``, each written into ``out[kind]``.

    ``segments`` lay the parameters out in the flat vectors (indices on the parameters' device);
    the buffers' dtype and device are kept (the copy casts). Returns ``{kind: out[kind]}``. The
    caller owns the buffers: reusing them across calls saves allocating (and page-faulting) one
    input-space vector per kind and step, and the next call overwrites what the last returned.
    """
    kinds = _check_kinds(list(out))
    passes = _backward_per_kind(model, params, objective, batch, kinds, reduction, materialize=False)
    for kind, grads in passes:
        _write_flat(grads, list(params), segments, out[kind])
    return {kind: out[kind] for kind in kinds}


def plain_parameter_gradients(
    model: torch.nn.Module,
    params: Mapping[str, torch.nn.Parameter],
    objective: Objective,
    batch: TargetBatch,
    kinds: Sequence[str],
    reduction: str = "positions",
    dtype: torch.dtype | None = torch.float32,
) -> Gradients:
    """Reference path for :func:`parameter_gradients`: one forward and backward per loss,
    ``diff = g_factual - g_alternative``."""
    kinds = _check_kinds(kinds)
    needed = [k for k in kinds if k != "diff"] + (["factual", "alternative"] if "diff" in kinds else [])
    separate = {kind: parameter_gradients(model, params, objective, batch, [kind], reduction, dtype=None)[kind]
                for kind in dict.fromkeys(needed)}
    if "diff" in kinds:
        separate["diff"] = {n: separate["factual"][n] - separate["alternative"][n] for n in params}
    return {k: {n: (g if dtype is None else g.to(dtype)) for n, g in separate[k].items()} for k in kinds}


class _Scorer(torch.nn.Module):
    """Wraps model + objective + batch so ``functional_call`` can run the scored forward."""

    def __init__(self, model: torch.nn.Module, objective: Objective, batch: TargetBatch):
        super().__init__()
        self.model = model
        self._objective = objective
        self._batch = batch

    def forward(self) -> torch.Tensor:
        return self._objective.scored_logits(self.model, self._batch)


def _tangent_primals(model: torch.nn.Module, tangents: Mapping[str, torch.Tensor]) -> dict[str, tuple]:
    """``{"model." + name: (primal, tangent)}``, the tangent on the parameter's device and dtype."""
    named = parameters_by_name(model)
    unknown = [n for n in tangents if n not in named]
    if unknown:
        raise KeyError(f"tangent names no parameter of the model: {unknown[0]!r} (names as in model.named_parameters(), "
                       "tied aliases included)")
    pairs = {}
    for name, value in tangents.items():
        param = named[name]
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(f"tangent {name!r} has shape {tuple(value.shape)}, the parameter {tuple(param.shape)}")
        pairs["model." + name] = (param.detach(), value.detach().to(device=param.device, dtype=param.dtype))
    return pairs


def jvp_directional(
    model: torch.nn.Module,
    tangents: Mapping[str, torch.Tensor],
    objective: Objective,
    batch: TargetBatch,
    kind: str,
    reduction: str = "rows",
    return_losses: bool = False,
):
    """Per-row directional derivatives ``d/dt L_row(θ + t·v)`` at ``t = 0``, shape ``(B,)``.

    ``tangents``: parameter name (any name of it in ``model.named_parameters(remove_duplicate=False)``)
    → direction ``v``; unnamed
    parameters are constants. For ``v = w`` laid out on the mapped parameters this is each row's
    ``w · ∇θ L_row``, the encoder's pre-activation without its bias. ``reduction`` as in
    :func:`~gradiend.objectives.losses.row_losses`. With ``return_losses``: ``(losses, derivatives)``.

    Dual tensors of ``torch.autograd.forward_ad`` are swapped in with ``functional_call`` (tied
    weights stay tied): the JVP of ``torch.func.jvp`` without functorch's per-operation wrapping
    (a little faster; benchmarks/README.md).
    """
    check_kind(kind)
    scoring_head(model)  # run the one-time head check outside forward-mode AD
    pairs = _tangent_primals(model, tangents)
    scorer = _Scorer(model, objective, batch)
    with torch.no_grad(), forward_ad.dual_level():
        duals = {name: forward_ad.make_dual(primal, tangent) for name, (primal, tangent) in pairs.items()}
        try:
            logits = torch.func.functional_call(scorer, duals, (), strict=False, tie_weights=True)
        except NotImplementedError as error:
            attention = getattr(getattr(model, "config", None), "_attn_implementation", "?")
            raise NotImplementedError(
                f"forward-mode derivative unavailable for {type(model).__name__} with attention "
                f"{attention!r}: load the model with attn_implementation='eager' ({error})"
            ) from error
        values, derivatives = forward_ad.unpack_dual(row_losses(logits, batch, kind, reduction))
    if derivatives is None:  # the loss does not depend on the tangent's parameters
        derivatives = torch.zeros_like(values)
    return (values, derivatives) if return_losses else derivatives


def per_example_gradient_dot(
    model: torch.nn.Module,
    tangents: Mapping[str, torch.Tensor],
    objective: Objective,
    batch: TargetBatch,
    kind: str,
    reduction: str = "rows",
) -> torch.Tensor:
    """Reference path for :func:`jvp_directional`: one plain gradient per row, dotted with the
    tangent (the way the original package encodes, one backward per example). With
    ``reduction="positions"`` each target's part of a row weighs its share of that target's
    positions in the batch."""
    check_kind(kind)
    named = parameters_by_name(model)
    params = {n: named[n] for n in tangents}
    parts = [(1.0, "factual"), (-1.0, "alternative")] if kind == "diff" else [(1.0, kind)]
    shares = {which: batch.positions_per_row(which).double() / len(batch.scored_by(which)) for _, which in parts}
    dots = []
    for row in range(batch.n_rows):
        single = batch.select([row])
        dot = 0.0
        for sign, which in parts:
            grads = plain_parameter_gradients(model, params, objective, single, [which], "rows", dtype=None)[which]
            part = sum(torch.dot(grads[n].reshape(-1), tangents[n].to(grads[n]).reshape(-1)) for n in params)
            dot = dot + sign * (part * float(shares[which][row]) if reduction == "positions" else part)
        dots.append(dot)
    return torch.stack(dots)
