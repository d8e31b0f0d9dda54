"""Pre-train the tiny demo models on the demo corpus until they know she from he.

A random model has no gender feature for GRADIEND to find, so the offline pipeline first teaches
the tiny models name → pronoun (docs/design.md §6): every pronoun is masked (a visible "his"/"her"
would be a shortcut) plus 10% random masking with 80/10/10 replacement, AdamW with a linear
warm-up; the causal model learns plain next-token prediction.

Measured here: the she/he accuracy sits at chance and then jumps, after 150 to 400+ steps
depending on the seed. AdamW betas (0.9, 0.98) and clipping at 1.0 made late seeds jump earlier;
the loop stops once the accuracy on a validation slice reaches ``target_accuracy`` (``max_steps``
is only the cap) and reports it on a separate test slice. Training runs in eval mode (no dropout)
with generators seeded with ``seed``, so a CPU run is repeatable.
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable

from gradiend.data.demo_corpus import DEMO_PRONOUNS
from gradiend.demo.evaluate import pronoun_accuracy, score_pronouns
from gradiend.demo.models import build_tiny_causal_lm, build_tiny_masked_lm, save_model_folder
from gradiend.util.io import PathLike
from gradiend.util.logging import get_logger

__all__ = ["pretrain_masked_lm", "pretrain_causal_lm", "pronoun_accuracy", "build_demo_model"]

logger = get_logger(__name__)

HELD_OUT_FRACTION = 0.1  # half validation (early stopping), half test (reported accuracy)
RANDOM_MASK_PROB = 0.1
ADAM_BETAS = (0.9, 0.98)
MAX_GRAD_NORM = 1.0
DEFAULT_RECIPE = {"max_steps": 800, "seed": 0, "batch_size": 64, "lr": 2e-3, "warmup": 100, "eval_every": 50,
                  "target_accuracy": 0.98}
"""Pre-training settings; ``target_accuracy=None`` never stops early, ``max_steps`` is only the cap."""


def _split(corpus: list[str], seed: int) -> tuple[list[str], list[str], list[str]]:
    if len(corpus) < 3:
        raise ValueError(f"pre-training needs at least 3 sentences, got {len(corpus)}")
    order = list(range(len(corpus)))
    random.Random(seed).shuffle(order)
    n_held_out = max(2, int(len(corpus) * HELD_OUT_FRACTION))
    parts = order[n_held_out:], order[: n_held_out // 2], order[n_held_out // 2: n_held_out]
    return tuple([corpus[i] for i in sorted(part)] for part in parts)


def _accuracy_or_none(model, tokenizer, sentences: list[str]) -> float | None:
    """she/he accuracy, or None when ``sentences`` hold no she/he to score."""
    try:
        return score_pronouns(model, tokenizer, sentences)
    except ValueError:
        return None


def _index_batches(n_rows: int, batch_size: int, generator):
    """Endless stream of index batches: a fresh seeded permutation per epoch."""
    import torch

    size = min(batch_size, n_rows)
    while True:
        order = torch.randperm(n_rows, generator=generator).tolist()
        for start in range(0, n_rows - size + 1, size):
            yield order[start:start + size]


def _pad(rows: list[list[int]], pad_id: int):
    """(input_ids, attention_mask) of id lists padded to the longest row."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    ids = pad_sequence([torch.tensor(row, dtype=torch.long) for row in rows], batch_first=True, padding_value=pad_id)
    attention = pad_sequence([torch.ones(len(row), dtype=torch.long) for row in rows], batch_first=True)
    return ids, attention


def _masked_lm_loss(tokenizer) -> Callable:
    """The masked-LM step loss: every pronoun token masked, plus RANDOM_MASK_PROB of the others with
    80/10/10 replacement; cross-entropy at the masked positions, the output layer runs only there."""
    import torch
    import torch.nn.functional as F

    special = set(tokenizer.all_special_ids)
    special_ids = torch.tensor(sorted(special), dtype=torch.long)
    pronoun_ids = torch.tensor(sorted(_single_token_ids(tokenizer, DEMO_PRONOUNS)), dtype=torch.long)
    normal_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in special])

    def loss(model, ids, attention, generator):
        maskable = attention.bool() & ~torch.isin(ids, special_ids)
        pronoun = torch.isin(ids, pronoun_ids) & maskable
        picked = (torch.rand(ids.shape, generator=generator) < RANDOM_MASK_PROB) & maskable & ~pronoun
        scored = pronoun | picked
        choice = torch.rand(ids.shape, generator=generator)
        replacement = normal_ids[torch.randint(len(normal_ids), ids.shape, generator=generator)]
        inputs = torch.where(pronoun | (picked & (choice < 0.8)), tokenizer.mask_token_id, ids)
        inputs = torch.where(picked & (choice >= 0.8) & (choice < 0.9), replacement, inputs)
        hidden = model.base_model(input_ids=inputs, attention_mask=attention).last_hidden_state
        if not scored.any():  # a batch without pronouns whose random draw picked nothing
            return hidden.sum() * 0.0
        return F.cross_entropy(model.cls(hidden[scored]), ids[scored])

    return loss


def _single_token_ids(tokenizer, words) -> set[int]:
    """Ids of ``words`` (lower and capitalised) that the tokenizer keeps as one token."""
    forms = (form for word in words for form in (word, word.capitalize()))
    pieces = (tokenizer(form, add_special_tokens=False).input_ids for form in forms)
    return {piece[0] for piece in pieces if len(piece) == 1}


def _causal_lm_loss(model, ids, attention, generator=None):
    """Next-token cross-entropy over the real (non-padding) tokens (``generator``: unused, no masking)."""
    import torch.nn.functional as F

    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]
    targets = ids[:, 1:].masked_fill(attention[:, 1:] == 0, -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _train(model, rows, pad_id, step_loss: Callable, check: Callable, *, max_steps, seed, batch_size,
           lr, warmup, eval_every, target_accuracy, desc) -> tuple[list[float], list[dict]]:
    """Seeded batches, AdamW with warm-up, clipping, early stop at the target; returns the per-step
    losses and the validation checks ({"step", "accuracy"})."""
    import torch
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(seed)
    batches = _index_batches(len(rows), batch_size, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=ADAM_BETAS, weight_decay=0.01)
    model.eval()  # no dropout
    losses, checks = [], []
    progress = tqdm(range(max_steps), desc=desc, mininterval=1.0)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / max(1, warmup))
        ids, attention = _pad([rows[i] for i in next(batches)], pad_id)
        loss = step_loss(model, ids, attention, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        losses.append(round(loss.item(), 5))
        if (step + 1) % eval_every == 0 and target_accuracy is not None:
            accuracy = check(model)
            if accuracy is None:  # nothing to validate on: train to max_steps
                target_accuracy = None
                continue
            checks.append({"step": step + 1, "accuracy": round(accuracy, 5)})
            progress.set_postfix(loss=f"{losses[-1]:.3f}", she_he=f"{accuracy:.3f}")
            if accuracy >= target_accuracy:
                break
    progress.close()
    return losses, checks


def _pretrain(kind, model_dir, corpus, out_dir, overrides: dict) -> Path:
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    unknown = sorted(set(overrides) - set(DEFAULT_RECIPE))
    if unknown:
        raise TypeError(f"unknown pre-training setting {unknown[0]!r}; known: {list(DEFAULT_RECIPE)}")
    recipe = {**DEFAULT_RECIPE, **overrides}
    if recipe["max_steps"] < 1:
        raise ValueError(f"max_steps must be >= 1, got {recipe['max_steps']}")
    started = time.perf_counter()
    model = (AutoModelForMaskedLM if kind == "masked" else AutoModelForCausalLM).from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train, validation, test = _split(list(corpus), recipe["seed"])
    rows = tokenizer(train, truncation=True, max_length=tokenizer.model_max_length).input_ids
    step_loss = _masked_lm_loss(tokenizer) if kind == "masked" else _causal_lm_loss
    losses, checks = _train(model, rows, tokenizer.pad_token_id, step_loss,
                            lambda m: _accuracy_or_none(m, tokenizer, validation),
                            desc=f"pre-train {kind} LM", **recipe)
    train_seconds = time.perf_counter() - started
    accuracy = _accuracy_or_none(model, tokenizer, test)
    # pretraining.json is a pure function of the recipe (the starting folder by name only, as
    # build_demo_model starts from a random temporary one); wall-clock time goes to timing.json.
    save_model_folder(model, tokenizer, out_dir, {
        "pretraining.json": {
            "kind": kind, "base_model": Path(model_dir).name, "recipe": recipe, "steps": len(losses),
            "seed": recipe["seed"], "train_sentences": len(train),
            "validation_sentences": len(validation), "test_sentences": len(test),
            "validation_checks": checks, "test_she_he_accuracy": accuracy, "loss": losses,
        },
        "timing.json": {"train_seconds": round(train_seconds, 2)},
    })
    logger.info("pre-trained %s LM: %d steps, %.1f s, test she/he accuracy %s",
                kind, len(losses), train_seconds, accuracy)
    return Path(out_dir)


def pretrain_masked_lm(model_dir: PathLike, corpus: list[str], out_dir: PathLike, **recipe) -> Path:
    """Pre-train a masked LM on ``corpus`` (pronouns always masked); write it to ``out_dir``.
    ``recipe`` overrides :data:`DEFAULT_RECIPE`."""
    return _pretrain("masked", model_dir, corpus, out_dir, recipe)


def pretrain_causal_lm(model_dir: PathLike, corpus: list[str], out_dir: PathLike, **recipe) -> Path:
    """Pre-train a causal LM on ``corpus`` with next-token loss; write it to ``out_dir``.
    ``recipe`` overrides :data:`DEFAULT_RECIPE`."""
    return _pretrain("causal", model_dir, corpus, out_dir, recipe)


def _read_corpus(corpus_path_or_list: PathLike | list[str]) -> list[str]:
    """A list of sentences as is, or a text file with one sentence per line (blank lines skipped)."""
    if isinstance(corpus_path_or_list, (list, tuple)):
        return list(corpus_path_or_list)
    path = Path(corpus_path_or_list)
    if not path.is_file():
        raise FileNotFoundError(f"demo corpus file not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_demo_model(kind: str, out_dir: PathLike, corpus_path_or_list: PathLike | list[str],
                     steps: int | None = None, seed: int = 0) -> Path:
    """Build a random tiny model for ``corpus`` and pre-train it: ``kind`` is "masked" or "causal";
    ``steps`` defaults to ``DEFAULT_RECIPE["max_steps"]``."""
    import tempfile

    builders = {"masked": build_tiny_masked_lm, "causal": build_tiny_causal_lm}
    if kind not in builders:
        raise ValueError(f"unknown demo model kind {kind!r}; expected 'masked' or 'causal'")
    corpus = _read_corpus(corpus_path_or_list)
    recipe = {"seed": seed} if steps is None else {"seed": seed, "max_steps": steps}
    with tempfile.TemporaryDirectory(prefix="gradiend-demo-") as scratch:
        random_dir = builders[kind](Path(scratch) / "random", corpus, seed=seed)
        return _pretrain(kind, random_dir, corpus, out_dir, recipe)
