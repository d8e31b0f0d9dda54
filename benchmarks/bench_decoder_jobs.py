"""What a decoder-grid job costs: one process per cell, per learning rate, or per experiment.

Each variant runs the stage the way a Snakemake job does, in a fresh Python process (interpreter,
imports, model load, tokenising, scoring), and is measured by the CPU time (user + system) of that
child process, which barely moves when other processes compete for the cores. Also timed: the
start-up floor every job pays before it scores anything (``import torch``; ``+ transformers`` and
the base model loaded), and the in-process cost of scoring one more cell.

Run after a workflow run has produced an experiment's data and a GRADIEND checkpoint::

    python3 benchmarks/bench_decoder_jobs.py --experiment-dir results/gender_tiny_bert \\
        [--checkpoint results/gender_tiny_bert/best/model] [--config config/config.yaml] [--repeats 3]

Output: CPU seconds per job and per cell for ``stages.decoder_grid`` scoring ``per-cell`` (one (lr, ff)),
``per-lr`` (every feature factor of one learning rate; the cluster fan-out), ``base`` (no checkpoint),
and ``per-experiment`` (the whole grid with base, no cache; the job on one machine).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_JOB = """
import json, sys, torch
torch.set_num_threads(1)
from gradiend import stages
spec = json.loads(sys.argv[1])
getattr(stages, spec.pop("stage"))(spec.pop("config"), **spec)
"""

_FLOORS = {
    "python": "pass",
    "import torch": "import torch",
    "torch + transformers + base model": (
        "import sys, torch\ntorch.set_num_threads(1)\nfrom gradiend.model.loading import load_base_model\n"
        "load_base_model(sys.argv[1])"),
}


def _child_cpu(code: str, *args: str) -> float:
    """CPU seconds (user + system) of one fresh ``python -c code args`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _median_cpu(repeats: int, code: str, *args: str) -> float:
    return statistics.median(_child_cpu(code, *args) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment-dir", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: <experiment-dir>/best/model")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()

    from gradiend import workflow_config as wfc
    from gradiend.cells import cell_name

    exp_dir = options.experiment_dir.resolve()
    cfg = wfc.load_config_file(options.config)
    experiment = dict(cfg["experiments"][exp_dir.name])
    experiment["base_model_path"] = str(exp_dir.parent / "_demo" / "models" / experiment["demo_model"]) \
        if experiment["demo_model"] else experiment["base_model_path"]
    cut = wfc.stage_config(experiment, "decoder_grid")
    checkpoint = str((options.checkpoint or exp_dir / "best" / "model").resolve())
    factors = [float(f) for f in experiment["decoder"]["feature_factors"]]
    data = {"training": str(exp_dir / "data" / "training.parquet"), "neutral": str(exp_dir / "data" / "neutral.parquet")}
    lr = options.learning_rate
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-decoder-jobs-") as tmp:
        out = Path(tmp)
        for name, code in _FLOORS.items():
            rows.append((f"floor: {name}", _median_cpu(options.repeats, code, cut["base_model_path"]), None))
        per_cell = {"stage": "decoder_grid", "config": cut, "model": checkpoint,
                    "cells": [str(out / "one" / f"{cell_name(lr, factors[0])}.json")], **data}
        cpu = _median_cpu(options.repeats, _JOB, json.dumps(per_cell))
        rows.append(("per-cell job (1 cell)", cpu, cpu))
        per_lr = {"stage": "decoder_grid", "config": cut, "model": checkpoint,
                  "cells": [str(out / f"{cell_name(lr, ff)}.json") for ff in factors], **data}
        cpu = _median_cpu(options.repeats, _JOB, json.dumps(per_lr))
        rows.append((f"per-lr job ({len(factors)} cells)", cpu, cpu / len(factors)))
        base = {"stage": "decoder_grid", "config": cut, "model": None, "cells": [str(out / "base.json")], **data}
        cpu = _median_cpu(options.repeats, _JOB, json.dumps(base))
        rows.append(("base job", cpu, cpu))
        names = ["base", *(cell_name(rate, ff) for ff in factors for rate in experiment["decoder"]["learning_rates"])]
        whole = {"stage": "decoder_grid", "config": cut, "model": checkpoint,
                 "cells": [str(out / "grid" / f"{name}.json") for name in names], **data}
        cpu = _median_cpu(options.repeats, _JOB, json.dumps(whole))
        rows.append((f"per-experiment job ({len(names)} cells)", cpu, cpu / len(names)))
    print(f"experiment {exp_dir.name}, learning rate {lr}, feature factors {factors}; CPU s (median of {options.repeats})")
    print(f"{'variant':<40} {'job':>7} {'per cell':>9}")
    for name, job, cell in rows:
        print(f"{name:<40} {job:>7.2f} {'' if cell is None else f'{cell:>9.2f}'}")


if __name__ == "__main__":
    main()
