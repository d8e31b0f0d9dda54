"""A model in eval mode (dropout off) for one block: scoring, pruning and the demo's yardstick."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def eval_mode(model):
    """Put a model in eval mode for a block, then restore its previous mode (also on an error)."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
