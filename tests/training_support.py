"""Test helpers for the training tests: a she/he unified table made straight from the demo corpus.

The data creator is tested on its own; these tests only need rows in the unified format, so the
table is built here with one regular expression.
"""
from __future__ import annotations

import re

import pandas as pd

_PRONOUN = re.compile(r"\b(she|he)\b", re.IGNORECASE)
_OTHER = {"she": "he", "he": "she"}


def _cased(word: str, like: str) -> str:
    return word.capitalize() if like[0].isupper() else word


def she_he_table(corpus: list[str], max_per_class: int | None = None, left_context: bool = False) -> pd.DataFrame:
    """Unified rows (masked, split, factual, alternative, classes, label) for she (+1) vs he (−1).

    Every tenth sentence goes to validation, the next to test, the rest to train.
    ``left_context`` drops sentences that start with the pronoun (a causal LM needs a prefix).
    """
    rows, counts = [], {"she": 0, "he": 0}
    for text in corpus:
        found = {m.group(1).lower() for m in _PRONOUN.finditer(text)}
        if len(found) != 1:
            continue
        cls = found.pop()
        if left_context and _PRONOUN.match(text):
            continue
        if max_per_class is not None and counts[cls] >= max_per_class:
            continue
        first = _PRONOUN.search(text).group(1)
        index = counts["she"] + counts["he"]
        counts[cls] += 1
        rows.append({
            "masked": _PRONOUN.sub("[MASK]", text),
            "split": "validation" if index % 10 == 0 else "test" if index % 10 == 1 else "train",
            "factual": first,
            "alternative": _cased(_OTHER[cls], first),
            "factual_class": cls,
            "alternative_class": _OTHER[cls],
            "label": 1 if cls == "she" else -1,
        })
    return pd.DataFrame(rows)
