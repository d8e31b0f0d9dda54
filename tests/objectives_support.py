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


def hand_encoded(mwg, masked: str, factual: str, alternative: str, kind: str) -> float:
    """One row's encoded value computed without the library's objectives or gradient paths: the Hugging
    Face forward, torch's cross entropy at the mask(s) (the next token after the prefix for a causal LM),
    one ``torch.autograd.grad``, the dot with the encoder weight row, + bias, through tanh.

    An independent reference for the fast (JVP) and the plain (per-row backward) encoding paths, which
    share the library's batching and losses."""
    assert mwg.gradiend.activation_encoder == "tanh" and mwg.gradiend.latent_dim == 1
    tokenizer, model = mwg.tokenizer, mwg.base_model
    if mwg.objective.name == "causal_lm":
        ids = tokenizer(masked[: masked.index("[MASK]")].rstrip())["input_ids"]
        inputs = {"input_ids": torch.tensor([ids])}
        positions = torch.tensor([len(ids) - 1])

        def target(word):
            return tokenizer(" " + word, add_special_tokens=False)["input_ids"][0]
    else:
        inputs = tokenizer(masked.replace("[MASK]", tokenizer.mask_token), return_tensors="pt")
        positions = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()

        def target(word):
            [token] = tokenizer(word, add_special_tokens=False)["input_ids"]  # one-token words only
            return token
    named = dict(model.named_parameters())
    params = {name: named[name] for name in mwg.gradiend.param_map}
    frozen = [p for p in params.values() if not p.requires_grad]  # e.g. left frozen by another pruning
    try:
        for p in frozen:
            p.requires_grad_(True)
        with torch.enable_grad():
            logits = model(**inputs).logits[0, positions]

            def loss(word):
                return torch.nn.functional.cross_entropy(logits, torch.full((len(positions),), target(word)))
            value = {"factual": lambda: loss(factual), "alternative": lambda: loss(alternative),
                     "diff": lambda: loss(factual) - loss(alternative)}[kind]()
            grads = torch.autograd.grad(value, list(params.values()))
    finally:
        for p in frozen:
            p.requires_grad_(False)
    weight = mwg.gradiend.unflatten(mwg.gradiend.encoder_weight[0].detach())
    dot = sum(float((g.double() * weight[name].double()).sum()) for name, g in zip(params, grads))
    return math.tanh(dot + float(mwg.gradiend.encoder_bias.detach()[0]))
