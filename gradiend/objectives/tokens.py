"""Token ids of a target word as the model would really see it after its left context.

A bare target string is not always the token the model predicts: byte-level BPE (GPT-2, RoBERTa)
and SentencePiece vocabularies carry the preceding space inside the token (" she" is one token,
"she" splits into "s" + "he"). We therefore tokenize ``context + " " + target`` and keep the ids
after the context's own ids; for WordPiece (BERT) this is the plain tokenization of the target.
"""
from __future__ import annotations

import os
from typing import Sequence

from gradiend.objectives.base import row_error


def continuation_ids(tokenizer, contexts: Sequence[str], targets: Sequence[str]) -> list[list[int]]:
    """For each (context, target): the ids ``target`` adds when it follows ``context``.

    ``context`` is the text before the target; trailing whitespace in it means the target is a new
    word (joined with one space), none means it is glued on. An empty context gives the target's
    ids at the start of a text. Special tokens are not added.
    """
    stripped = [c.rstrip() for c in contexts]
    joined = [
        (s + (" " if s != c else "") + t) if s else t.lstrip()
        for s, c, t in zip(stripped, contexts, targets)
    ]
    unique_contexts = sorted({s for s in stripped if s})
    context_ids = dict(zip(unique_contexts, _ids(tokenizer, unique_contexts))) if unique_contexts else {}
    # os.path.commonprefix works on any sequences, here id lists
    return [full[len(os.path.commonprefix([context_ids.get(s, []), full])):]
            for s, full in zip(stripped, _ids(tokenizer, joined))]


def target_ids(tokenizer, contexts: Sequence[str], targets: Sequence, masked: Sequence[str], which: str) -> list[list[int]]:
    """:func:`continuation_ids` of every row's target; a target that adds no token is a ValueError."""
    ids = continuation_ids(tokenizer, contexts, [str(t) for t in targets])
    empty = [i for i, row in enumerate(ids) if not row]
    if empty:
        raise row_error(empty[0], masked[empty[0]], f"has an empty {which} target {targets[empty[0]]!r}", len(empty) - 1)
    return ids


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def ensure_pad_token(tokenizer) -> None:
    """Decoder-only tokenizers often have no pad token; pad with EOS (masked out by attention)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has neither a pad nor an eos "
                "token; set tokenizer.pad_token before preparing batches"
            )
        tokenizer.pad_token = tokenizer.eos_token
