"""The training step of this library against the original package (gradiend 0.2.3 from PyPI).

Both packages are called through the documented API only (``TextPredictionTrainer(model=..., data=...,
target_classes=..., args=TrainingArguments(...)).train()``) on the same tiny demo model and the same
training table. The two share the import name ``gradiend``, so each run is a fresh process (the
reference from ``--reference-site``, a ``pip install --no-deps --target`` folder), interleaved.

The reference pads every row to 256 tokens, longer than the demo model's 128 positions, so both
run on a copy of the model with 512 position embeddings (the first 128 the trained ones).

The cost of a step is marginal, so that model loading, data preparation and the process start-up
cancel out: ``(time of train() with 2·N steps − time with N steps) / N``, both runs evaluating every
``--eval-steps`` steps (in-training evaluation included, as in a real run). CPU time of the process
(user + system) and wall clock are both reported; the ratio is reference ÷ this library.

    pip download --no-deps gradiend==0.2.3 -d /tmp/ref && pip install --no-deps --target /tmp/refsite /tmp/ref/*.whl
    python3 benchmarks/bench_reference_training.py --reference-site /tmp/refsite --model results/_demo/models/tiny-bert \\
        --data results/gender_tiny_bert/data/training.parquet [--steps 100] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, time
import torch
spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
import pandas as pd
import gradiend
from gradiend import TextPredictionTrainer, TrainingArguments
data = pd.read_parquet(spec["data"])
args = TrainingArguments(train_batch_size=8, eval_batch_size=32, max_steps=spec["steps"], eval_steps=spec["eval_steps"],
                         learning_rate=1e-3, experiment_dir=spec["out"], seed=0, max_seeds=1)
trainer = TextPredictionTrainer(model=spec["model"], data=data, target_classes=["F", "M"], args=args)
usage = lambda: (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))
cpu, wall = usage(), time.perf_counter()
trainer.train()
print(json.dumps({"cpu": usage() - cpu, "wall": time.perf_counter() - wall, "package": gradiend.__file__}))
"""


def _with_positions(model_dir: str, positions: int, out_dir: Path) -> str:
    """A copy of a BERT-like masked LM with ``positions`` position embeddings (the old rows kept)."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(model_dir)
    old = AutoModelForMaskedLM.from_pretrained(model_dir)
    config.max_position_embeddings = positions
    torch.manual_seed(0)
    new = AutoModelForMaskedLM.from_config(config)
    state = {k: v for k, v in old.state_dict().items() if "position" not in k and "token_type_ids" not in k}
    new.load_state_dict(state, strict=False)
    with torch.no_grad():
        rows = old.base_model.embeddings.position_embeddings.weight.detach().clone()
        new.base_model.embeddings.position_embeddings.weight[: len(rows)] = rows
    new.save_pretrained(out_dir)
    for tokenizer_file in Path(model_dir).glob("*token*"):
        shutil.copy(tokenizer_file, out_dir / tokenizer_file.name)
    return str(out_dir)


def _train(site: str | None, spec: dict) -> dict:
    """One fresh process running ``train()``; its CPU and wall seconds (the reference when ``site``)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if site:
        env["PYTHONPATH"] = os.pathsep.join([site, env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as out:
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps({**spec, "out": out})], cwd=tempfile.gettempdir(),
                              env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({'reference' if site else 'this library'}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = site if site else str(REPO)
    if not result["package"].startswith(str(Path(expected).resolve())):
        raise SystemExit(f"imported {result['package']}, expected the package under {expected}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-site", required=True, help="folder with the reference package (pip --target)")
    parser.add_argument("--model", required=True, help="a local BERT-like model folder (the tiny demo BERT)")
    parser.add_argument("--data", required=True,
                        help="a table with columns masked, split, label_class, label (the factual class and word)")
    parser.add_argument("--steps", type=int, default=100, help="N: runs of N and 2N steps")
    parser.add_argument("--eval-steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    options = parser.parse_args()
    folder = tempfile.TemporaryDirectory(prefix="bench-ref-model-")
    model = _with_positions(options.model, 512, Path(folder.name))
    base = {"model": model, "data": str(Path(options.data).resolve()), "eval_steps": options.eval_steps,
            "threads": options.threads}
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(options.repeats):  # interleaved, so a change of machine load hits both packages alike
        for name, site in (("this library", None), ("reference 0.2.3", options.reference_site)):
            for steps in (options.steps, 2 * options.steps):
                runs.setdefault((name, steps), []).append(_train(site, {**base, "steps": steps}))
    print(f"ms per training step (batch 8, eval every {options.eval_steps} steps; median of {options.repeats}, "
          f"(t(2N) - t(N)) / N with N = {options.steps}; {options.threads} thread(s))")
    print(f"{'package':<18} {'cpu ms/step':>12} {'wall ms/step':>13}")
    per_step = {}
    for name in ("this library", "reference 0.2.3"):
        per_step[name] = {
            clock: statistics.median(long[clock] - short[clock] for short, long in
                                     zip(runs[(name, options.steps)], runs[(name, 2 * options.steps)]))
            / options.steps * 1000 for clock in ("cpu", "wall")}
        print(f"{name:<18} {per_step[name]['cpu']:>12.1f} {per_step[name]['wall']:>13.1f}")
    ours, reference = per_step["this library"], per_step["reference 0.2.3"]
    print(f"{'reference / ours':<18} {reference['cpu'] / ours['cpu']:>12.1f} {reference['wall'] / ours['wall']:>13.1f}")


if __name__ == "__main__":
    main()
