"""Determinism: the same config and seeds give byte-identical outputs on a CPU, run after run.

The whole stage chain (data, pre-pruning, one seed, encoder evaluation, seed choice, a 1 x 2 decoder
grid, cell choice, both rewrites, provenance, report) runs twice into the same folder (the first
run is moved aside, so paths written into the files are equal too). Every output file is then
compared byte for byte, except the wall-clock times, which live only in ``timing.json``. The git
commit recorded in provenance is held fixed: other work may commit to the repository between the two
runs, and a different commit is different code, not non-determinism.
"""
import importlib
import shutil
from pathlib import Path

import pytest

from tests.reliability_support import file_digests, tiny_run

# Files that hold wall-clock times by design; nothing else may differ.
TIMING_FILES = {"timing.json"}


def run_chain(base_model, corpus_lines, root: Path) -> None:
    stage_run = tiny_run(base_model, corpus_lines, root, pre_prune={"n_samples": 8, "topk": 0.5})
    stage_run.run_all(pruned=True)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    root = tmp_path_factory.mktemp("determinism")
    work = root / "work"
    with pytest.MonkeyPatch.context() as patch:
        # the module, not the stage function of the same name that gradiend.stages exports
        patch.setattr(importlib.import_module("gradiend.stages.provenance"), "git_commit", lambda folder=None: "0" * 40)
        run_chain(tiny_masked_lm_dir, demo_corpus[:1000], work)
        shutil.move(work, root / "first")
        run_chain(tiny_masked_lm_dir, demo_corpus[:1000], work)
    return file_digests(root / "first"), file_digests(work)


def test_every_output_is_byte_identical_except_timings(two_runs):
    first, second = two_runs
    assert sorted(set(first) ^ set(second)) == []
    differing = sorted(name for name in first if first[name] != second[name])
    assert all(Path(name).name in TIMING_FILES for name in differing), differing


def test_the_comparison_covers_every_kind_of_output(two_runs):
    first, _ = two_runs
    suffixes = {Path(name).suffix for name in first}
    assert {".parquet", ".json", ".safetensors", ".png", ".md"} <= suffixes
    names = set(first)
    for expected in ("results/exp/data/training.parquet", "results/exp/seeds/0/encoder/encoded.parquet",
                     "results/exp/seeds/0/model/model.safetensors", "results/exp/decoder/summary.json",
                     "results/exp/rewritten/F/model.safetensors", "results/exp/provenance.json",
                     "results/exp/report.md", "results/exp/prune/mask.safetensors"):
        assert expected in names
