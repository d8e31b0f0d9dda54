"""Faults: the reduced default workflow killed with SIGKILL at several points, then rerun with
Snakemake's usual flags, ends with exactly the outputs of an uninterrupted run.

One reference run goes first and is moved aside; then the same config runs in the same folder (so
paths written into files are equal) and is killed, in turn, while creating the training data,
while training a seed, while scoring a decoder grid cell, and while rewriting a model; after every
kill ``snakemake --unlock`` and a plain rerun (the workflow profile sets ``--rerun-incomplete``)
carry on. After each kill no file looks complete but is not: every visible JSON, Parquet,
safetensors and PNG file reads; a kill mid-write leaves only a hidden ``.<name>.*.tmp`` beside the
output. The end result equals the reference byte for byte, except logs, Snakemake benchmarks and
``timing.json`` (wall-clock times), and with the git commit in ``provenance.json`` and ``report.md``
masked (other work may commit to the repository while this test runs). Slow (several full reduced runs on 2 cores): opt in with ``-m slow``.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.reliability_support import file_digests, unreadable_outputs
from tests.test_workflow_e2e import EXPERIMENT, REPO, reduced_config

pytestmark = pytest.mark.slow

# (rule, log files that appear when one of its jobs starts, folder its outputs are written to, seconds
# to wait for a temporary output before killing anyway): short waits kill during start-up and
# computation, the long one waits for the folder write of a checkpoint. The rewrite job writes both
# tiny models within a few tens of milliseconds, too short a window to hit; it is killed while it
# loads the model, with the rewrites still to be written.
KILL_POINTS = [
    ("create_training_data", "logs/create_training_data.log", "data", 4.0),
    ("train_seed", "logs/train_seed*.log", "seeds", 60.0),
    ("decoder_grid", "logs/decoder_grid.log", "decoder/cells", 4.0),
    ("rewrite_models", "logs/rewrite_models.log", "rewritten", 1.5),
]
NOT_COMPARED_DIRS = {"logs", "benchmarks", ".snakemake"}
NOT_COMPARED_FILES = {"timing.json"}
COMMIT_FILES = {"provenance.json", "report.md"}


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--cores", "2", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args]


def snakemake(workdir: Path, *args: str) -> str:
    done = subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


def run_and_kill(workdir: Path, log_pattern: str, output_folder: str, grace_s: float) -> str:
    """Start the workflow, wait for a job of the rule to start, then SIGKILL Snakemake and its jobs as
    soon as a temporary output appears in ``output_folder`` (mid-write) or ``grace_s`` after the
    job started (mid-job). Returns which of the two it was."""
    experiment = workdir / "results" / EXPERIMENT
    with open(workdir / "killed_run.log", "a") as log:
        process = subprocess.Popen(snakemake_command(workdir), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        started = None
        while True:
            assert process.poll() is None, f"the workflow ended before {log_pattern} ran"
            if started is None and list(experiment.glob(log_pattern)):
                started = time.monotonic()
            if started is not None:
                writing = list((experiment / output_folder).rglob(".*.tmp")) if (experiment / output_folder).is_dir() else []
                if writing:
                    return "mid-write"
                if time.monotonic() - started > grace_s:
                    return "mid-job"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def compared(results: Path) -> dict[str, str]:
    """Relative path -> digest of every compared file (commit hashes masked where they are recorded)."""
    digests = {}
    for name, digest in file_digests(results).items():
        parts = Path(name).parts
        if set(parts[:-1]) & NOT_COMPARED_DIRS or parts[-1] in NOT_COMPARED_FILES or any(p.startswith(".") for p in parts):
            continue
        if parts[-1] in COMMIT_FILES:
            masked = re.sub(rb"[0-9a-f]{40}", b"<commit>", (results / name).read_bytes())
            digest = hashlib.sha256(masked).hexdigest()
        digests[name] = digest
    return digests


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    workdir = root / "work"
    workdir.mkdir()
    config = yaml.safe_dump(reduced_config(workdir / "results", [1.0, 0.1]))
    (workdir / "config.yaml").write_text(config)
    snakemake(workdir)
    shutil.move(workdir, root / "reference")
    workdir.mkdir()
    (workdir / "config.yaml").write_text(config)
    kills = {}
    for rule, log_pattern, folder, grace_s in KILL_POINTS:
        kills[rule] = run_and_kill(workdir, log_pattern, folder, grace_s)
        kills[rule + " unreadable"] = unreadable_outputs(workdir / "results")
        snakemake(workdir, "--unlock")
    snakemake(workdir)
    (root / "kills.json").write_text(json.dumps(kills, indent=1))  # for a person reading the run
    return root / "reference" / "results", workdir / "results", kills


def test_every_kill_point_was_reached_and_left_only_readable_files(runs):
    _, _, kills = runs
    for rule, *_ in KILL_POINTS:
        assert kills[rule] in ("mid-write", "mid-job")
        assert kills[rule + " unreadable"] == [], rule


def test_rerun_outputs_equal_the_uninterrupted_run(runs):
    reference, rerun, _ = runs
    expected, got = compared(reference), compared(rerun)
    assert sorted(set(expected) ^ set(got)) == []
    assert sorted(name for name in expected if expected[name] != got[name]) == []
    assert f"{EXPERIMENT}/decoder/summary.json" in expected and "summary.csv" in expected


def test_a_final_rerun_has_nothing_to_do(runs):
    _, rerun, _ = runs
    assert "Nothing to be done" in snakemake(rerun.parent, "-n")
