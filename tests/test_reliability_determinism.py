"""Determinism: the same config and seeds give byte-identical outputs on a CPU, process after process.

The whole stage chain (data, pre-pruning, one seed, encoder evaluation, seed choice, a 1 x 2 decoder
grid, cell choice, both rewrites, provenance, report) runs twice, each time in a fresh Python
process (hash seeds, import order and allocator state differ between processes, which one process
run twice would never show), into the same folder (the first run is moved aside, so paths written
into the files are equal too). Every output file is then compared byte for byte, except the
wall-clock times, which live only in ``timing.json``. The git commit recorded in provenance is held
fixed: other work may commit to the repository between the two runs, and a different commit is
different code, not non-determinism.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability_support import file_digests, tiny_run

# Files that hold wall-clock times by design; nothing else may differ.
TIMING_FILES = {"timing.json"}


REPOSITORY = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: the stage chain on the corpus lines in argv[3] (one per line).
CHAIN = """
import importlib, sys
from pathlib import Path
# the module, not the stage function of the same name that gradiend.stages exports
importlib.import_module("gradiend.stages.provenance").git_commit = lambda folder=None: "0" * 40
from tests.reliability_support import tiny_run
lines = Path(sys.argv[3]).read_text(encoding="utf-8").splitlines()
run = tiny_run(Path(sys.argv[1]), lines, Path(sys.argv[2]), pre_prune={"n_samples": 8, "topk": 0.5})
run.run_all(pruned=True)
"""


def run_chain_in_new_process(base_model: Path, corpus_file: Path, root: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    subprocess.run([sys.executable, "-c", CHAIN, str(base_model), str(root), str(corpus_file)],
                   cwd=REPOSITORY, env=env, check=True, timeout=600)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    root = tmp_path_factory.mktemp("determinism")
    corpus_file = root / "lines.txt"
    corpus_file.write_text("\n".join(demo_corpus[:1000]) + "\n", encoding="utf-8")
    work = root / "work"
    run_chain_in_new_process(tiny_masked_lm_dir, corpus_file, work)
    shutil.move(work, root / "first")
    run_chain_in_new_process(tiny_masked_lm_dir, corpus_file, work)
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
