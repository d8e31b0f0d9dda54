"""Fast fault test: a stage process killed (SIGKILL) at the worst moment of a write, with every byte
of an output written but not yet renamed onto its final name, leaves no output that looks complete
but is not, and a finished output from before survives whole or is gone (never half replaced).

The stage runs in a child process whose ``os.replace`` onto a path under the test's folder announces
itself and then waits to be killed, so the kill lands exactly between writing the temporary file and
renaming it. Renames elsewhere (the training loop keeps its best state in a temporary folder of the
system's) go through.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.reliability_support import file_digests, tiny_run, unreadable_outputs

CHILD = textwrap.dedent("""
    import json, os, sys, time
    from gradiend import stages
    stage, kwargs = sys.argv[1], json.loads(sys.argv[2])
    config = json.loads(open(kwargs.pop("config_file")).read())
    watched, replace = kwargs.pop("watched"), os.replace

    def replace_then_wait(source, target):
        if not str(target).startswith(watched):
            return replace(source, target)
        print("REPLACING", target, flush=True)
        time.sleep(120)

    os.replace = replace_then_wait
    getattr(stages, stage)(config, **kwargs)
""")


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    stage_run = tiny_run(tiny_masked_lm_dir, demo_corpus[:1000], tmp_path_factory.mktemp("atomic"))
    stage_run.data()
    return stage_run


def kill_at_rename(stage: str, config: dict, tmp_path, **kwargs) -> str:
    """Run ``stage`` in a child, SIGKILL it at its first rename; returns the path it was renaming onto."""
    config_file = tmp_path / f"{stage}.config.json"
    config_file.write_text(json.dumps(config))
    child = subprocess.Popen([sys.executable, "-c", CHILD, stage, json.dumps({**kwargs, "config_file": str(config_file), "watched": str(tmp_path)})],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("REPLACING"), child.stderr.read()[-3000:]
        return line.split(maxsplit=1)[1].strip()
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_killed_while_renaming_the_training_table(run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    finished = data / "training.parquet"
    shutil.copy(run.path("data", "training.parquet"), finished)
    before = file_digests(data)
    target = kill_at_rename("create_training_data", run.cut("create_training_data"), tmp_path, texts=run.corpus,
                            training=str(finished), summary=str(data / "summary.json"))
    assert target == str(finished)
    assert file_digests(data)[finished.name] == before[finished.name]  # the old table, untouched
    assert not (data / "summary.json").exists()  # written after the table: never started
    assert unreadable_outputs(data) == []
    assert [p.name for p in data.iterdir() if p.name.startswith(".")]  # the temporary file is left, hidden


def test_killed_while_renaming_a_seed_checkpoint(run, tmp_path):
    seeds = tmp_path / "seeds"
    target = kill_at_rename("train_seed", run.cut("train_seed"), tmp_path, seed=0,
                            training=run.path("data", "training.parquet"), mask=None,
                            model=str(seeds / "0" / "model"), convergence=str(seeds / "0" / "convergence.png"))
    assert target.startswith(str(seeds / "0"))
    assert not (seeds / "0" / "model").exists()
    assert not (seeds / "0" / "convergence.png").exists()
    assert unreadable_outputs(seeds) == []
