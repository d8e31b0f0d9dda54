"""Test helpers for the objective and fast-gradient tests: masked rows from the demo corpus."""
from __future__ import annotations

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
