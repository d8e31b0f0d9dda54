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


def word_token_ids(tokenizer, word: str, leading_space: bool) -> tuple[int, ...]:
    """Sub-token ids of ``word`` as it appears in running text (after a space if ``leading_space``)."""
    text = f" {word}" if leading_space else word
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def variant_sequences(tokenizer, words: Iterable[str], leading_space: bool) -> list[tuple[int, ...]]:
    """Distinct sub-token sequences of every casing variant of every word, in first-seen order."""
    sequences: dict[tuple[int, ...], None] = {}
    for word in words:
        for variant in casing_variants(word):
            ids = word_token_ids(tokenizer, variant, leading_space)
            if ids:
                sequences.setdefault(ids, None)
    return list(sequences)


def ignore_token_ids(tokenizer, words: Iterable[str]) -> set[int]:
    """Ids of every single-token spelling of ``words``, with and without a leading space."""
    ids: set[int] = set()
    for space in (False, True):
        for seq in variant_sequences(tokenizer, words, space):
            if len(seq) == 1:
                ids.add(seq[0])
    return ids


def mask_id(tokenizer) -> int:
    """The tokenizer's mask id; a tokenizer without one cannot score a masked LM."""
    if tokenizer.mask_token_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no mask token; use the causal LM path")
    return tokenizer.mask_token_id
