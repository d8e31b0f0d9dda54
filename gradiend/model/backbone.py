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
    if backbone is model:
        return {id(p): n for n, p in model.named_parameters()}
    prefix = next(n for n, m in model.named_modules() if m is backbone)
    return {id(p): f"{prefix}.{n}" for n, p in backbone.named_parameters()}


def pattern_regex(pattern: str) -> re.Pattern:
    """A full-match regex for a name pattern where ``*`` matches any run of characters."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def mapped_parameters(model: torch.nn.Module, params: Sequence[str] | None = None) -> dict[str, torch.nn.Parameter]:
    """Backbone parameters of ``model`` in ``named_parameters`` order, optionally narrowed.

    ``params``: name patterns (``*`` wildcards, full match). A pattern that matches no backbone
    parameter is a ValueError naming it.
    """
    names = _backbone_names(model)
    selected = {names[id(p)]: p for _, p in model.named_parameters() if id(p) in names}
    if params is None:
        return selected
    if isinstance(params, str):
        params = [params]
    regexes = [(p, pattern_regex(p)) for p in params]
    unmatched = [p for p, rx in regexes if not any(rx.fullmatch(n) for n in selected)]
    if unmatched:
        examples = ", ".join(list(selected)[:3])
        raise ValueError(
            f"parameter pattern {unmatched[0]!r} matches no backbone parameter of "
            f"{type(model).__name__} (patterns match full names, e.g. {examples}; heads are excluded)"
        )
    return {n: p for n, p in selected.items() if any(rx.fullmatch(n) for _, rx in regexes)}
