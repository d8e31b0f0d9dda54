"""The reduced default config, end to end, through a real single-node SLURM (opt-in: -m slurm).

tests/slurm_cluster.py installs (if missing) and starts munge, slurmctld and slurmd on this
machine; Snakemake then runs with a copy of workflow/profiles/slurm adapted to that cluster (its
partition, no accounting: `slurm-no-account`, `slurm-status-command: squeue`, quick status polls),
so every non-local rule is submitted with `sbatch` and runs its script as a SLURM job on this
machine. Checked: the run succeeds, the final outputs have content, and the jobs really went
through SLURM (one SLURM log per submitted job, SLURM job ids in Snakemake's output, the jobs in
`squeue`'s history as COMPLETED).

    python3 -m pytest -m slurm tests/test_workflow_slurm.py      # as root; a few minutes on 2 cores
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.slurm_cluster import local_slurm
from tests.test_workflow_e2e import EXPERIMENT, REPO, reduced_config

pytestmark = pytest.mark.slurm

RUN_TIMEOUT_S = 1800
# Rules that run inside the Snakemake process (Snakefile `localrules`), never through sbatch.
LOCAL_RULES = {"all", "demo_corpus", "select_cell", "provenance", "report", "summary"}


def slurm_config(results: Path) -> dict:
    """The e2e test's reduced default, with small memory requests so jobs share the one node."""
    config = reduced_config(results, [1.0, 0.1])
    config["resources"] = {"default": {"gpu": 0, "mem_mb": 1500, "runtime": 30, "threads": 1}}
    return config


def local_profile(folder: Path, partition: str, slurm_logs: Path) -> Path:
    """workflow/profiles/slurm with this cluster's partition and the no-accounting settings."""
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = partition
    for resources in profile.get("set-resources", {}).values():
        resources["slurm_partition"] = partition
    profile.update({
        "jobs": 4,
        # --cores is a per-submission limit on a cluster: the decoder cells of the group job run
        # one after another in one 1-CPU allocation instead of asking the 2-CPU node for 5 CPUs.
        "cores": 1,
        "keep-going": False,
        "latency-wait": 10,
        "slurm-no-account": True,
        "slurm-status-command": "squeue",
        "slurm-init-seconds-before-status-checks": 2,
        "slurm-logdir": str(slurm_logs),
        "slurm-keep-successful-logs": True,
    })
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    config_file = root / "config.yaml"
    config_file.write_text(yaml.safe_dump(slurm_config(root / "results")))
    with local_slurm() as cluster:
        profile = local_profile(root / "profile", cluster.partition, root / "slurm_logs")
        # sbatch exports this environment to the jobs: the same python, with gradiend importable.
        env = {**cluster.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{cluster.env['PATH']}"}
        command = [sys.executable, "-m", "snakemake", "--workflow-profile", str(profile),
                   "--configfile", str(config_file), "--config", f"results_dir={root / 'results'}",
                   "--jobs", "4"]
        start = time.monotonic()
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
        elapsed = time.monotonic() - start
        output = done.stdout + done.stderr
        history = cluster.run("squeue", "--states=all", "--noheader", "--format=%i %T %j")
    (root / "snakemake.log").write_text(output)
    print(f"SLURM end-to-end run: {elapsed:.0f} s")
    assert done.returncode == 0, output[-8000:]
    return root, output, history


def test_final_outputs_have_content(slurm_run):
    root, _, _ = slurm_run
    exp = root / "results" / EXPERIMENT
    summary = json.loads((exp / "decoder" / "summary.json").read_text())
    assert {"F", "F_weaken", "base", "policy"} <= set(summary)
    report = (exp / "report.md").read_text()
    assert "Chosen seed: **" in report
    for target in ("F", "F_weaken"):
        folder = exp / "rewritten" / target
        assert (folder / "config.json").is_file() and "GRADIEND" in (folder / "README.md").read_text()
        assert any(path.stat().st_size > 0 for path in folder.glob("*.safetensors"))
    assert (root / "results" / "summary.csv").read_text().count("\n") >= 2


def test_jobs_went_through_slurm(slurm_run):
    root, output, history = slurm_run
    job_ids = set(re.findall(r"submitted with SLURM jobid (\d+)", output))
    assert job_ids, "no SLURM job id in Snakemake's output"
    states = dict(line.split()[:2] for line in history.splitlines() if line.strip())
    assert job_ids <= set(states), f"job ids {sorted(job_ids)} not all in squeue history {states}"
    assert set(states.values()) == {"COMPLETED"}, states
    logs = list((root / "slurm_logs").rglob("*.log"))
    rules = {path.relative_to(root / "slurm_logs").parts[0].removeprefix("rule_") for path in logs}
    # every stage that is not a local rule ran as a SLURM job (the decoder cells as one group job)
    assert {"demo_model", "create_training_data", "pre_prune", "train_seed", "evaluate_encoder",
            "select_seed", "rewrite_model"} <= rules, sorted(rules)
    assert any("decoder_grid" in rule for rule in rules), sorted(rules)
    assert not rules & LOCAL_RULES
    assert len(logs) == len(states), (sorted(map(str, logs)), states)
