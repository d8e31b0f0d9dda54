"""Feature-neutral encoder inputs: a text with one random, non-target word masked.

The encoder should put such rows near 0. A word qualifies when it is not a target / excluded /
ignored word and is exactly one non-special token where it stands (so the masked row trains the
same kind of single-token prediction as the feature rows). For a causal LM the word must follow at
least ``min_prefix_tokens`` tokens of context (fewer only when a text has no such word). Choices
use a ``random.Random`` seeded per variant, so the same seed gives the same rows.
"""
from __future__ import annotations

import random
import re
from typing import Iterable

from gradiend.evaluation.tokens import MASK_PLACEHOLDER
from gradiend.objectives.tokens import continuation_ids

WORD = re.compile(r"\w+")
DEFAULT_MIN_PREFIX_TOKENS = 5


def mask_random_word(tokenizer, text: str, excluded: set[str], rng: random.Random, causal: bool,
                     min_prefix_tokens: int = DEFAULT_MIN_PREFIX_TOKENS) -> tuple[str, str] | None:
    """``(masked text, masked word)`` for one randomly chosen qualifying word, or None."""
    special = set(tokenizer.all_special_ids) | {getattr(tokenizer, "unk_token_id", None)}  # None matches no id
    spans = [m for m in WORD.finditer(text) if m.group().lower() not in excluded]
    rng.shuffle(spans)
    if causal:  # words after enough context first (stable), never a word without any
        prefixes = {m.start(): text[: m.start()].rstrip() for m in spans}
        lengths = {start: len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else 0
                   for start, prefix in prefixes.items()}
        spans = sorted((m for m in spans if lengths[m.start()] > 0),
                       key=lambda m: lengths[m.start()] < min_prefix_tokens)
    for match in spans:
        ids = continuation_ids(tokenizer, [text[: match.start()]], [match.group()])[0]
        if len(ids) == 1 and ids[0] not in special:
            return text[: match.start()] + MASK_PLACEHOLDER + text[match.end():], match.group()
    return None


def neutral_masked_rows(tokenizer, texts: Iterable[str], excluded: Iterable[str], seed: int | str,
                        causal: bool) -> list[tuple[str, str]]:
    """``(masked text, word)`` for every text that has a qualifying word."""
    rng, excluded = random.Random(seed), {w.lower() for w in excluded}
    found = [mask_random_word(tokenizer, text, excluded, rng, causal) for text in texts]
    return [masked for masked in found if masked is not None]
