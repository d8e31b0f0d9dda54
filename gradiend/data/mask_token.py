"""Texts that already contain a mask token are never scored.

A text holding the placeholder ``[MASK]`` or the model's own mask token (``<mask>`` for RoBERTa)
literally would get an extra mask scored as if it were the target. Such texts are dropped, with a
logged count: raw texts at ingestion, table rows and neutral texts once the tokenizer is known.
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

from gradiend.data.tables import MASKED, TEXT, TOKEN_COUNT
from gradiend.util.logging import get_logger

logger = get_logger(__name__)

PLACEHOLDER = "[MASK]"


def _markers(tokenizer=None) -> list[str]:
    mask_token = getattr(tokenizer, "mask_token", None)
    return list(dict.fromkeys([PLACEHOLDER] + ([str(mask_token)] if mask_token else [])))


def _holds_marker(text, markers: Iterable[str]) -> bool:
    return isinstance(text, str) and any(m in text for m in markers)


def _log_dropped(where: str, n_bad: int, n: int, what: str, markers: list[str]) -> None:
    logger.warning("%s: dropped %d of %d %s that contain the mask token %s literally (each would be scored "
                   "as an extra mask)", where, n_bad, n, what, " / ".join(markers))


def drop_texts_with_mask(texts: list, where: str, tokenizer=None) -> list:
    markers = _markers(tokenizer)
    kept = [t for t in texts if not _holds_marker(t, markers)]
    if len(kept) != len(texts):
        _log_dropped(where, len(texts) - len(kept), len(texts), "text(s)", markers)
    return kept


def mask_rows(table, tokenizer=None):
    """Boolean Series: rows of the unified ``table`` whose unmasked ``text`` holds a marker, whose
    ``masked`` text has more placeholders than ``token_count`` or the tokenizer's mask token outside them."""
    markers = _markers(tokenizer)
    others = [m for m in markers if m != PLACEHOLDER]
    masked = table[MASKED].astype(str)
    bad = masked.map(lambda t: any(m in t.replace(PLACEHOLDER, "") for m in others))
    if TEXT in table.columns:
        bad |= table[TEXT].map(lambda t: _holds_marker(t, markers))
    if TOKEN_COUNT in table.columns:
        counts = table[TOKEN_COUNT]
        bad |= counts.notna() & (masked.str.count(re.escape(PLACEHOLDER)) > counts.fillna(0).astype("int64"))
    return bad


def drop_rows_with_mask(table, tokenizer=None, where: str = "training data"):
    """``table`` without the rows of :func:`mask_rows`; the count is logged. An empty result is an error."""
    bad = mask_rows(table, tokenizer)
    n_bad = int(bad.sum())
    if not n_bad:
        return table
    if n_bad == len(table):
        raise ValueError(f"{where}: every one of its {len(table)} rows contains the mask token "
                         f"{' / '.join(_markers(tokenizer))} literally in its text; nothing is left to score")
    _log_dropped(where, n_bad, len(table), "row(s)", _markers(tokenizer))
    return table[~bad].reset_index(drop=True)


def drop_neutral_with_mask(neutral, tokenizer=None, where: str = "neutral data") -> Optional[object]:
    if neutral is None:
        return None
    markers = _markers(tokenizer)
    bad = neutral[TEXT].map(lambda t: _holds_marker(t, markers))
    if bad.any():
        _log_dropped(where, int(bad.sum()), len(neutral), "neutral text(s)", markers)
        neutral = neutral[~bad].reset_index(drop=True)
    return neutral
