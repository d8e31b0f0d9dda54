"""How well a demo model tells "she" from "he": the yardstick for pre-training.

At each she/he, the model is right when it scores the true pronoun above the other: a masked LM
with every pronoun of the sentence masked, a causal LM as the next token after the text before it
(so sentences should name the person before the pronoun, as the demo corpus does).
"""
from __future__ import annotations

import re

from gradiend.data.demo_corpus import DEMO_PRONOUNS
from gradiend.objectives.base import is_masked_lm
from gradiend.util.eval_mode import eval_mode
from gradiend.util.io import PathLike

_SWAP = {"she": "he", "he": "she", "She": "He", "He": "She", "SHE": "HE", "HE": "SHE"}
_SHE_HE = re.compile(r"(?<= )(she|he)\b", re.IGNORECASE)  # after a space: the causal LM's prefix ends there


def _single_token_id(tokenizer, text: str) -> int:
    pieces = tokenizer(text, add_special_tokens=False).input_ids
    if len(pieces) != 1:
        raise ValueError(f"tokenizer splits {text!r} into {len(pieces)} tokens; expected one")
    return pieces[0]


def _masked_accuracy(model, tokenizer, sentences: list[str], batch_size: int) -> tuple[int, int]:
    import torch

    correct = total = 0
    for start in range(0, len(sentences), batch_size):
        texts = sentences[start:start + batch_size]
        batch = tokenizer(texts, padding=True, truncation=True, return_offsets_mapping=True,
                          return_tensors="pt")
        offsets = batch.pop("offset_mapping").tolist()
        ids = batch["input_ids"]  # masked in place
        scored = []  # (row, position, true id, other id)
        for row, (text, spans) in enumerate(zip(texts, offsets)):
            for position, (begin, end) in enumerate(spans):
                word = text[begin:end]
                if word.lower() not in DEMO_PRONOUNS:  # also skips special tokens (empty spans)
                    continue
                ids[row, position] = tokenizer.mask_token_id
                if word in _SWAP:
                    scored.append((row, position, _single_token_id(tokenizer, word),
                                   _single_token_id(tokenizer, _SWAP[word])))
        if not scored:
            continue
        with torch.no_grad():
            logits = model(**batch).logits
        for row, position, true_id, other_id in scored:
            correct += int(logits[row, position, true_id] > logits[row, position, other_id])
        total += len(scored)
    return correct, total


def _causal_accuracy(model, tokenizer, sentences: list[str], batch_size: int) -> tuple[int, int]:
    import torch

    cases = []  # (prefix, true id, other id)
    for text in sentences:
        for match in _SHE_HE.finditer(text):
            word = match.group()
            if word in _SWAP:
                cases.append((text[: match.start() - 1], _single_token_id(tokenizer, " " + word),
                              _single_token_id(tokenizer, " " + _SWAP[word])))
    correct = 0
    for start in range(0, len(cases), batch_size):
        chunk = cases[start:start + batch_size]
        batch = tokenizer([prefix for prefix, _, _ in chunk], padding=True, padding_side="right",
                          return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits
        last = batch["attention_mask"].sum(dim=1) - 1
        for row, (_, true_id, other_id) in enumerate(chunk):
            correct += int(logits[row, last[row], true_id] > logits[row, last[row], other_id])
    return correct, len(cases)


def score_pronouns(model, tokenizer, sentences: list[str], batch_size: int = 64) -> float:
    """Share of she/he positions where an in-memory ``model`` prefers the true pronoun."""
    score = _masked_accuracy if is_masked_lm(model) else _causal_accuracy
    with eval_mode(model):
        correct, total = score(model, tokenizer, list(sentences), batch_size)
    if total == 0:
        raise ValueError("no scorable she/he occurrence in the given sentences")
    return correct / total


def pronoun_accuracy(model_dir: PathLike, sentences: list[str], batch_size: int = 64) -> float:
    """Share of she/he positions in ``sentences`` where the saved model prefers the true pronoun."""
    from gradiend.model.loading import load_base_model

    model, tokenizer, _ = load_base_model(model_dir)
    return score_pronouns(model, tokenizer, sentences, batch_size)
