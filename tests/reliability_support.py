"""Shared helpers of the reliability tests: a tiny finished experiment, and proof that a failing
stage left the finished outputs alone.

``Finished`` records the bytes of every file under a folder; ``unchanged()`` says whether the folder
still holds exactly those files with exactly those bytes (no file added, removed or rewritten).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from tests.stages_support import StageRun, experiment_config

# Small enough that one seed trains in a few seconds on 2 cores.
TINY_TRAINING = {"train_batch_size": 8, "eval_batch_size": 16, "max_steps": 2, "eval_steps": 1,
                 "learning_rate": 1.0e-3}
TINY_DECODER = {"learning_rates": [1.0], "max_size_training_like": 8, "max_size_neutral": 8}


def tiny_run(base_model: Path, corpus_lines: list[str], root: Path, seeds=(0,), **overrides) -> StageRun:
    """A :class:`StageRun` of experiment ``exp`` under ``root`` (corpus written to ``root/corpus.txt``;
    ``overrides`` replace top-level experiment keys)."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(corpus_lines) + "\n", encoding="utf-8")
    experiment = experiment_config(base_model, corpus, root / "results", seeds=list(seeds),
                                   training=dict(TINY_TRAINING), decoder=dict(TINY_DECODER), **overrides)
    return StageRun(experiment, corpus, root / "results" / "exp")


def file_digests(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (hidden files included)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class Finished:
    """A snapshot of a results folder taken before a stage is asked to do something bad."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.digests = file_digests(self.folder)

    def unchanged(self) -> bool:
        return file_digests(self.folder) == self.digests
