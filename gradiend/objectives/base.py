"""What every prediction objective shares: the scored batch, the objective interface, choosing one.

An objective turns masked rows (a text with a ``[MASK]`` placeholder, the factual token, optionally
the alternative token) into model inputs plus the positions whose logits score the targets. All
code above this layer (gradients, encoding, training) sees only :class:`TargetBatch` and
:meth:`Objective.scored_logits`, so it does not care whether the model is a masked or causal LM.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Sequence

import torch

from gradiend.objectives.heads import no_cache_kwargs, scored_hidden_logits

DEFAULT_MASK = "[MASK]"
UNBOUNDED = 10**9  # tokenizers without a real limit save a huge ``model_max_length`` (10**30)


IGNORE_ID = -100
"""Target id of a position that does not score that target (Hugging Face's label convention)."""


@dataclass
class TargetBatch:
    """Padded model inputs of a batch of rows and the positions that score its targets.

    ``inputs`` are padded to the longest row of *this* batch (right padding, with an attention
    mask). Each of the ``P`` scored positions belongs to one row (``row_index``) and is scored by
    the logits at ``position`` of that row's input; a row may own several positions (several masks,
    or a multi-token target). ``factual_ids`` / ``alternative_ids`` are the token ids expected there.

    Usually a row's factual and alternative targets are scored at the same positions of one input.
    When they cannot be (a masked LM's single mask widened to targets of different sub-token counts,
    a causal LM's multi-token targets that continue differently), the row gets a second input after
    the ``n_rows`` first ones: ``input_row`` says which input row each position reads (None: input row
    = ``row_index``), and a position that scores only one target has :data:`IGNORE_ID` as the other's id.
    """

    inputs: dict[str, torch.Tensor]
    row_index: torch.LongTensor
    position: torch.LongTensor
    factual_ids: torch.LongTensor
    alternative_ids: torch.LongTensor | None
    n_rows: int
    input_row: torch.LongTensor | None = None

    @property
    def n_positions(self) -> int:
        return int(self.row_index.numel())

    @property
    def input_rows(self) -> torch.LongTensor:
        """The input row each scored position reads, shape ``(P,)``."""
        return self.row_index if self.input_row is None else self.input_row

    @cached_property
    def shared_positions(self) -> bool:
        """Whether every position scores both targets (always true without alternatives)."""
        return self.alternative_ids is None or not bool(
            ((self.factual_ids == IGNORE_ID) | (self.alternative_ids == IGNORE_ID)).any())

    def scored_by(self, which: str) -> torch.Tensor:
        """Indices of the positions that score the ``"factual"`` or ``"alternative"`` target."""
        ids = self.factual_ids if which == "factual" else self.alternative_ids
        if ids is None:
            raise ValueError(f"{which!r} targets are needed, but the batch was prepared without alternatives")
        return torch.nonzero(ids != IGNORE_ID).flatten()

    def positions_per_row(self, which: str | None = None) -> torch.Tensor:
        """How many scored positions each row owns (None: all; else those scoring ``which``), ``(n_rows,)``."""
        rows = self.row_index if which is None else self.row_index[self.scored_by(which)]
        return torch.bincount(rows, minlength=self.n_rows)

    def to(self, device) -> "TargetBatch":
        tensors = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {name: value.to(device) for name, value in tensors.items() if isinstance(value, torch.Tensor)}
        inputs = {key: value.to(device) for key, value in self.inputs.items()}
        batch = replace(self, inputs=inputs, **moved)
        # decided where the ids are now (the CPU, after prepare): read after the move, it would wait for the GPU
        batch.__dict__["shared_positions"] = self.shared_positions
        return batch

    def select(self, rows: Sequence[int]) -> "TargetBatch":
        """The sub-batch of distinct ``rows`` (in that order), re-padded to its own longest input, laid
        out as :meth:`Objective.prepare` lays out those rows (second inputs after the first ones)."""
        device = self.row_index.device
        rows_t = torch.as_tensor(list(rows), dtype=torch.long, device=device)
        if rows_t.numel() == 0 or rows_t.unique().numel() != rows_t.numel():
            raise ValueError(f"TargetBatch.select needs distinct row indices, got {rows_t.tolist()}")
        new_row = torch.full((self.n_rows,), -1, dtype=torch.long, device=device)
        new_row[rows_t] = torch.arange(rows_t.numel(), device=device)
        keep = torch.nonzero(new_row[self.row_index] >= 0).flatten()
        input_row = self.input_rows[keep]
        owner = {i: r for i, r in zip(input_row.tolist(), self.row_index[keep].tolist()) if i >= self.n_rows}
        second = sorted(owner, key=lambda i: int(new_row[owner[i]]))  # second inputs in row order, as prepare
        old_inputs = torch.cat([rows_t, torch.tensor(second, dtype=torch.long, device=device)])
        new_input = torch.full((int(self.inputs["input_ids"].shape[0]),), -1, dtype=torch.long, device=device)
        new_input[old_inputs] = torch.arange(old_inputs.numel(), device=device)
        attention = self.inputs["attention_mask"][old_inputs]
        length = int(attention.sum(dim=1).max())
        if keep.numel() and int(self.position[keep].max()) >= length:
            raise ValueError("TargetBatch.select: scored positions lie in padding; was the batch left-padded?")
        order = keep[torch.argsort(new_input[input_row] * length + self.position[keep], stable=True)]
        return TargetBatch(
            inputs={key: value[old_inputs, :length] for key, value in self.inputs.items()},
            row_index=new_row[self.row_index[order]],
            position=self.position[order],
            factual_ids=self.factual_ids[order],
            alternative_ids=None if self.alternative_ids is None else self.alternative_ids[order],
            n_rows=int(rows_t.numel()),
            input_row=None if not second else new_input[self.input_rows[order]],
        )


@dataclass
class Objective:
    """Base class of the prediction objectives (masked LM, causal LM).

    ``max_positions`` is the model's own positional limit (set by :func:`resolve_objective` from
    the model config); together with the tokenizer's ``model_max_length`` it bounds truncation
    when ``prepare`` gets no explicit ``max_length``.
    """

    max_positions: int | None = None
    name = "objective"

    def prepare(self, tokenizer, masked: Sequence[str], factual: Sequence[str],
                alternative: Sequence[str] | None = None, max_length: int | None = None,
                mask: str = DEFAULT_MASK) -> TargetBatch:
        """The batch of ``masked`` rows (texts with a ``mask`` placeholder) scoring their ``factual`` (and
        ``alternative``) targets; target ids are what a target adds after the row's text before its mask."""
        from gradiend.objectives.tokens import target_ids  # tokens imports row_error from here

        if len(masked) == 0:
            raise ValueError("prepare needs at least one row")
        targets = {"factual": factual, "alternative": alternative}
        for which, values in targets.items():
            if values is not None and len(values) != len(masked):
                raise ValueError(f"{which} has {len(values)} entries but masked has {len(masked)}")
        contexts = mask_contexts(masked, mask)
        self._check_rows(tokenizer, masked, contexts)
        ids = {which: None if values is None else target_ids(tokenizer, contexts, values, masked, which)
               for which, values in targets.items()}
        limit = self.max_length_for(tokenizer, max_length)
        return self._batch(tokenizer, masked, contexts, targets, ids, limit, mask)

    def _check_rows(self, tokenizer, masked: Sequence[str], contexts: list[str]) -> None:
        """Subclass hook: refuse a tokenizer or rows the objective cannot score."""

    def _batch(self, tokenizer, masked: Sequence[str], contexts: list[str], targets: dict, ids: dict,
               limit: int | None, mask: str) -> TargetBatch:
        """Subclass hook: the batch; ``targets`` / ``ids`` map "factual" and "alternative" (None when
        absent) to the rows' target strings / target ids, ``limit`` is the truncation length."""
        raise NotImplementedError

    def scored_logits(self, model, batch: TargetBatch) -> torch.Tensor:
        """Logits at the scored positions, shape ``(P, V)`` (the head runs on those positions alone when
        that gives the same numbers, :mod:`gradiend.objectives.heads`)."""
        inputs = {**batch.inputs, **no_cache_kwargs(model)}
        return scored_hidden_logits(model, inputs, batch.input_rows, batch.position)

    def max_length_for(self, tokenizer, max_length: int | None) -> int | None:
        """The truncation length: explicit, else min(tokenizer limit, model positions), else None."""
        if max_length is not None:
            if max_length < 2:
                raise ValueError(f"max_length must be at least 2, got {max_length}")
            return int(max_length)
        return length_limit(self.max_positions, tokenizer)


def length_limit(max_positions: int | None, tokenizer) -> int | None:
    """The longest input both take: the smaller of the model's ``max_positions`` and the tokenizer's
    ``model_max_length`` (an unbounded one counts as none), or None when neither is known."""
    limits = [max_positions, getattr(tokenizer, "model_max_length", None)]
    finite = [int(x) for x in limits if x is not None and 0 < x < UNBOUNDED]
    return min(finite) if finite else None


def model_max_positions(model_or_config) -> int | None:
    """The model's positional limit from its config (BERT, GPT-2 and most others), or None."""
    config = getattr(model_or_config, "config", model_or_config)
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def is_masked_lm(model_or_config) -> bool:
    """Whether a model (or its config) is a masked LM in the Hugging Face sense."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if isinstance(model_or_config, torch.nn.Module):
        cls_name = type(model_or_config).__name__
        if cls_name.endswith("ForMaskedLM"):
            return True
        model_type = getattr(getattr(model_or_config, "config", None), "model_type", None)
        return MODEL_FOR_MASKED_LM_MAPPING_NAMES.get(model_type) == cls_name
    config = model_or_config
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForMaskedLM") for a in architectures):
        return True
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return False
    masked_type = getattr(config, "model_type", None) in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    return masked_type and not getattr(config, "is_decoder", False)


def resolve_objective(name_or_auto, model=None, tokenizer=None) -> Objective:
    """Pick the objective: ``"masked_lm"``, ``"causal_lm"`` or ``"auto"``.

    ``"auto"`` chooses the masked LM when the tokenizer has a mask token and the model (or config)
    is a masked LM (without a model, the tokenizer decides alone), else the causal LM. Asking for
    ``"masked_lm"`` with a tokenizer that has no mask token, or with a model that is not a masked
    LM, is a ValueError. An :class:`Objective` instance is returned as is.
    """
    from gradiend.objectives.causal_lm import CausalLMObjective
    from gradiend.objectives.masked_lm import MaskedLMObjective

    if isinstance(name_or_auto, Objective):
        return name_or_auto
    positions = model_max_positions(model) if model is not None else None
    has_mask = tokenizer is not None and getattr(tokenizer, "mask_token", None) is not None
    name = str(name_or_auto)
    if name == "auto":
        masked = has_mask if model is None else (has_mask and is_masked_lm(model))
        name = "masked_lm" if masked else "causal_lm"
    if name == "masked_lm":
        if tokenizer is not None and not has_mask:
            raise ValueError(
                f"objective 'masked_lm' needs a tokenizer with a mask token, but "
                f"{type(tokenizer).__name__} ({getattr(tokenizer, 'name_or_path', '?')!r}) has none; "
                "use objective='causal_lm' for decoder-only models"
            )
        if model is not None and not is_masked_lm(model):
            raise ValueError(
                f"objective 'masked_lm' needs a masked LM, but the model is "
                f"{type(model).__name__}; use objective='causal_lm' or 'auto'"
            )
        return MaskedLMObjective(max_positions=positions)
    if name == "causal_lm":
        return CausalLMObjective(max_positions=positions)
    raise ValueError(f"unknown objective {name_or_auto!r}; expected 'auto', 'masked_lm' or 'causal_lm'")


def row_error(index: int, text: str, reason: str, n_more: int = 0) -> ValueError:
    """A ValueError naming the offending row by index and (shortened) text."""
    shown = text if len(text) <= 160 else text[:157] + "..."
    more = f" (and {n_more} more row(s) with the same problem)" if n_more else ""
    return ValueError(f"row {index} {reason}: {shown!r}{more}")


def mask_contexts(masked: Sequence[str], mask: str) -> list[str]:
    """The text before the first ``mask`` of every row; a row without the mask is a ValueError."""
    missing = [i for i, text in enumerate(masked) if mask not in text]
    if missing:
        raise row_error(missing[0], masked[missing[0]], f"contains no mask placeholder {mask!r}", len(missing) - 1)
    return [text[: text.index(mask)] for text in masked]
