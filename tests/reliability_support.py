"""Shared helpers of the reliability tests: a tiny finished experiment, and proof that a failing
stage left the finished outputs alone.

``Finished`` records the bytes of every file under a folder; ``unchanged()`` says whether the folder
still holds exactly those files with exactly those bytes (no file added, removed or rewritten).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.stages_support import StageRun, experiment_config

PNG_MAGIC = b"\x89PNG"

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


@pytest.fixture
def finished(run):
    """The experiment's results before the test (needs the module's ``run`` fixture); asserts
    afterwards that nothing under it changed."""
    snapshot = Finished(Path(run.path()))
    yield snapshot
    assert snapshot.unchanged(), "a failing stage touched a finished output"


class Finished:
    """A snapshot of a results folder taken before a stage is asked to do something bad."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.digests = file_digests(self.folder)

    def unchanged(self) -> bool:
        return file_digests(self.folder) == self.digests


def unreadable_outputs(results: Path) -> list[str]:
    """Visible output files that do not read as what their name says; hidden files that are not the
    temporary ``.<name>.*.tmp`` of an atomic write (or Snakemake's own ``.snakemake_timestamp``)."""
    import pandas as pd
    from safetensors.torch import load_file

    bad = []
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results)
        if any(part.startswith(".") for part in relative.parts):
            top = next(part for part in relative.parts if part.startswith("."))
            if not (top.endswith(".tmp") or top == ".snakemake_timestamp"):
                bad.append(f"{relative} (hidden, not a temporary file)")
            continue
        if not path.is_file():
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".parquet":
                pd.read_parquet(path)
            elif path.suffix == ".safetensors":
                load_file(path)
            elif path.suffix == ".png":
                assert path.read_bytes()[:4] == PNG_MAGIC
        except Exception as error:  # noqa: BLE001 - any failure to read is the finding
            bad.append(f"{relative} ({type(error).__name__}: {error})")
    return bad
