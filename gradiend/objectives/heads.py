"""Run a language model's output head only where a target is scored.

A masked or causal LM spends a large share of its forward pass projecting every position onto the
vocabulary, while GRADIEND scores only a few positions per row (the masks, or the last prefix
token). For models whose head is a plain function of the backbone's last hidden state
(``BertForMaskedLM.cls``, ``GPT2LMHeadModel.lm_head``, ...), we run the backbone, pick the scored
hidden states, and apply the head to those alone. Some models do more after the head (logit
scaling, soft-capping), so a head is used this way only after a one-time check on the model that
``head(backbone(x))`` equals ``model(x).logits``; a model that fails (or has no recognised head)
takes the full forward instead. Both paths give the same logits.
"""
from __future__ import annotations

import inspect
import weakref

import torch

from gradiend.util.devices import input_device

HEAD_ATTRIBUTES = ("cls", "lm_head")

_HEADS: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module | None]" = weakref.WeakKeyDictionary()


def backbone_module(model: torch.nn.Module) -> torch.nn.Module:
    """The model's backbone (its ``base_model_prefix`` attribute: ``bert``, ``transformer``, ...),
    or the model itself when it has none."""
    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix else None
    return backbone if isinstance(backbone, torch.nn.Module) else model


def no_cache_kwargs(model: torch.nn.Module) -> dict:
    """``use_cache=False`` for models whose forward takes it: scoring never needs a KV cache."""
    return {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}


def scoring_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The head to apply to scored hidden states, or None when the full forward must be used.

    Checked once per model object (cached weakly): on a short dummy input the head on the backbone's
    last hidden state must reproduce the model's logits. Call it outside of ``torch.func``
    transforms to keep the check out of them.
    """
    if model not in _HEADS:
        _HEADS[model] = _verify_head(model)
    return _HEADS[model]


@torch.no_grad()
def _verify_head(model: torch.nn.Module) -> torch.nn.Module | None:
    backbone = backbone_module(model)
    candidates = [getattr(model, a) for a in HEAD_ATTRIBUTES if isinstance(getattr(model, a, None), torch.nn.Module)]
    if backbone is model or len(candidates) != 1 or getattr(model, "config", None) is None:
        return None
    head = candidates[0]
    vocab = int(model.config.vocab_size)
    param = next(model.parameters())
    ids = (torch.arange(2, 8, device=input_device(model)) % vocab).reshape(1, -1)
    extra = no_cache_kwargs(model)
    try:
        full = model(input_ids=ids, **extra).logits
        fast = head(backbone(input_ids=ids, **extra)[0]).to(full.device)  # a split model's head may sit elsewhere
    except Exception:  # a model whose parts cannot be called this way: use the full forward
        return None
    if full.shape != fast.shape:
        return None
    tolerance = 1e-3 if param.dtype in (torch.float16, torch.bfloat16) else 1e-5
    scale = float(full.abs().max()) + 1.0
    return head if float((full - fast).abs().max()) <= tolerance * scale else None


def scored_hidden_logits(
    model: torch.nn.Module, inputs: dict, row_index: torch.Tensor, position: torch.Tensor
) -> torch.Tensor:
    """Logits ``(P, V)`` at ``(row_index[p], position[p])`` for every scored position ``p``, on the device of
    ``row_index`` (the inputs' device: the last layers of a model split over devices may sit elsewhere)."""
    head = scoring_head(model)
    if head is None:
        logits = model(**inputs).logits
        return logits[row_index.to(logits.device), position.to(logits.device)].to(row_index.device)
    hidden = backbone_module(model)(**inputs)[0]
    return head(hidden[row_index.to(hidden.device), position.to(hidden.device)]).to(row_index.device)
