"""Test helpers for the objective and fast-gradient tests: masked rows from the demo corpus."""
from __future__ import annotations

import math
import re

import torch

_PRONOUN = re.compile(r"\b(she|he|his|her|they|them|their)\b", re.IGNORECASE)
_SWAP = {"she": "he", "he": "she", "his": "her", "her": "his", "they": "she", "them": "her", "their": "his"}


def masked_rows(corpus: list[str], n: int, need_left_context: bool = False):
    """``(masked, factual, alternative)`` lists of ``n`` rows; every occurrence of the row's first
    pronoun is masked (so some rows have several masks), lengths vary from row to row."""
    masked, factual, alternative = [], [], []
    for text in corpus:
        match = _PRONOUN.search(text)
        if match is None or (need_left_context and match.start() == 0):
            continue
        word = match.group(1)
        same_word = re.compile(rf"\b{word}\b", re.IGNORECASE)
        masked.append(same_word.sub("[MASK]", text))
        factual.append(word)
        alternative.append(_SWAP[word.lower()])
        if len(masked) == n:
            break
    assert len(masked) == n, "demo corpus too small for the requested rows"
    return masked, factual, alternative


def random_tangent(params: dict[str, torch.nn.Parameter], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype)
        for name, p in params.items()
    }


def flat(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1).double() for g in grads.values()])


def _plain_target_loss(model, tokenizer, causal: bool, masked: str, word: str) -> torch.Tensor:
    """Cross-entropy of ``word`` for the row on the word's own input, from a plain Hugging Face forward.

    Masked LM: one mask widened to the word's ``k`` pieces (scored in order), several masks each scored
    with the first piece. Causal LM: the word (after a space) continues the text before the mask; the
    input is that prefix plus the word's first ``k - 1`` pieces, piece ``s`` predicted after piece ``s-1``."""
    if causal:
        prefix = tokenizer(masked[: masked.index("[MASK]")].rstrip())["input_ids"]
        pieces = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        inputs = {"input_ids": torch.tensor([prefix + pieces[:-1]])}
        positions = torch.arange(len(prefix) - 1, len(prefix) - 1 + len(pieces))
        labels = torch.tensor(pieces)
    else:
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        n_masks = masked.count("[MASK]")
        width = len(pieces) if n_masks == 1 else 1
        inputs = tokenizer(masked.replace("[MASK]", tokenizer.mask_token * width), return_tensors="pt")
        positions = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
        labels = torch.tensor(pieces[:width] * n_masks)
    return torch.nn.functional.cross_entropy(model(**inputs).logits[0, positions], labels)


def hand_encoded(mwg, masked: str, factual: str, alternative: str, kind: str) -> float:
    """One row's encoded value computed without the library's objectives or gradient paths: Hugging
    Face forwards, torch's cross entropy per target on its own input (:func:`_plain_target_loss`), one
    ``torch.autograd.grad``, the dot with the encoder weight row, + bias, through tanh.

    An independent reference for the fast (JVP) and the plain (per-row backward) encoding paths, which
    share the library's batching and losses."""
    assert mwg.gradiend.activation_encoder == "tanh" and mwg.gradiend.latent_dim == 1
    tokenizer, model = mwg.tokenizer, mwg.base_model
    causal = mwg.objective.name == "causal_lm"
    named = dict(model.named_parameters(remove_duplicate=False))
    params = {name: named[name] for name in mwg.gradiend.param_map}
    frozen = [p for p in params.values() if not p.requires_grad]  # e.g. left frozen by another pruning
    try:
        for p in frozen:
            p.requires_grad_(True)
        with torch.enable_grad():
            def loss(word):
                return _plain_target_loss(model, tokenizer, causal, masked, word)
            value = {"factual": lambda: loss(factual), "alternative": lambda: loss(alternative),
                     "diff": lambda: loss(factual) - loss(alternative)}[kind]()
            grads = torch.autograd.grad(value, list(params.values()))
    finally:
        for p in frozen:
            p.requires_grad_(False)
    weight = mwg.gradiend.unflatten(mwg.gradiend.encoder_weight[0].detach())
    dot = sum(float((g.double() * weight[name].double()).sum()) for name, g in zip(params, grads))
    return math.tanh(dot + float(mwg.gradiend.encoder_bias.detach()[0]))
