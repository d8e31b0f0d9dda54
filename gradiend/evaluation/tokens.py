"""Which token ids stand for a word, for scoring and for ignore lists.

A word in a sentence is scored through its casing variants ("she", "She", "SHE"), each as the
sub-token sequence the tokenizer really produces for it. For a byte-level BPE tokenizer (GPT-2) a
word inside a sentence is the token *with* its leading space (" she"); the bare string would split
into other pieces (docs/design.md §5).
"""
from __future__ import annotations

from typing import Iterable

MASK_PLACEHOLDER = "[MASK]"


def casing_variants(word: str) -> list[str]:
    """The word as written, lower-cased, title-cased and upper-cased, without duplicates."""
    variants = [word, word.lower(), word[:1].upper() + word[1:].lower(), word.upper()]
    return list(dict.fromkeys(v for v in variants if v))


def ignore_token_ids(tokenizer, words: Iterable[str]) -> set[int]:
    """Ids of every single-token spelling (casing variant) of ``words``, with and without a leading space."""
    texts = [text for word in words for variant in casing_variants(word) for text in (variant, f" {variant}")]
    sequences = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    return {sequence[0] for sequence in sequences if len(sequence) == 1}


def mask_id(tokenizer) -> int:
    """The tokenizer's mask id; a tokenizer without one cannot score a masked LM."""
    if tokenizer.mask_token_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no mask token; use the causal LM path")
    return tokenizer.mask_token_id
