"""Which base-model parameters GRADIEND reads gradients from and writes updates to.

Default: every parameter of the Hugging Face backbone ``getattr(model, model.base_model_prefix)``
(``bert``, ``transformer``, ...: embeddings, all layers, LayerNorms); prediction heads
(``cls.predictions.*``, ``lm_head``) are left out. Output embeddings tied to the input embeddings
are one parameter and are listed once, under the backbone's name. ``params`` narrows the backbone
list with name patterns in which ``*`` matches anything (full match against the full names of
``model.named_parameters()``).
"""
from __future__ import annotations

import re
from typing import Sequence

import torch

from gradiend.objectives.heads import backbone_module


def _backbone_names(model: torch.nn.Module) -> dict[int, str]:
    """``id(parameter) -> full name`` for the backbone's parameters, named through the backbone."""
    backbone = backbone_module(model)
    prefix = next(n for n, m in model.named_modules() if m is backbone)  # "" when the model is its own backbone
    return {id(p): f"{prefix}.{n}" if prefix else n for n, p in backbone.named_parameters()}


def _pattern_regex(pattern: str) -> re.Pattern:
    """A full-match regex for a name pattern where ``*`` matches any run of characters."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


class UnmatchedPatternError(ValueError):
    """A ``params`` pattern that matches no parameter of the model."""


def select_by_patterns(named: dict, params: Sequence[str] | str | None, model: torch.nn.Module,
                       what: str = "parameter") -> dict:
    """``named`` narrowed to the names some pattern of ``params`` matches (``*`` wildcards, full
    match); None keeps all. A pattern that matches no name is an :class:`UnmatchedPatternError` naming it."""
    if params is None:
        return named
    regexes = [(p, _pattern_regex(p)) for p in ([params] if isinstance(params, str) else params)]
    unmatched = [p for p, rx in regexes if not any(rx.fullmatch(n) for n in named)]
    if unmatched:
        raise UnmatchedPatternError(f"parameter pattern {unmatched[0]!r} matches no {what} of {type(model).__name__} "
                         f"(patterns match full names, e.g. {', '.join(list(named)[:3])})")
    return {n: p for n, p in named.items() if any(rx.fullmatch(n) for _, rx in regexes)}


def mapped_parameters(model: torch.nn.Module, params: Sequence[str] | None = None) -> dict:
    """Backbone parameters of ``model`` in ``named_parameters`` order, narrowed by ``params``
    (:func:`select_by_patterns`; heads are never selected)."""
    names = _backbone_names(model)
    selected = {names[id(p)]: p for _, p in model.named_parameters() if id(p) in names}
    return select_by_patterns(selected, params, model, what="backbone parameter (heads are excluded)")
