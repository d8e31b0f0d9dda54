"""Training-step time against its floor: how much a GRADIEND step costs beyond the base-model gradients.

Floor = one forward plus the backwards that the source and target gradients need (one per kind,
on the retained graph), on the same batch padded to its longest row, each gradient dropped as soon
as autograd returns it (no GRADIEND, no gradient dicts). Also timed: "dicts",
:func:`gradiend.objectives.parameter_gradients`, which holds both full gradient dicts and is heavier
than the step on large models, so not a floor. Step = a full :class:`TrainingRun` step: the
gradients copied into the GRADIEND input space, finiteness checks, GRADIEND forward/backward and
the AdamW update. Target: step / floor <= 1.3 (numbers: benchmarks/README.md).

Run: ``python3 benchmarks/bench_training_step.py [--models tiny-masked tiny-causal bert-base]``.
Floor and step are timed interleaved (median of ``--repeats``), so load from other processes
affects both alike.

Measured (CPU, ``--threads 1 --repeats 5``, batch 32, source alternative / target diff, on a shared
2-core machine at load ~8: wall times are inflated by the load, CPU times of this process are the
steadier comparison). Before = commit c9ddedd (autograd gradients concatenated into fresh flat vectors,
both checked for NaN, GRADIEND loss through autograd); after = gradients copied once into reused flat
buffers, only the source checked (the target only when the loss is not finite), the reconstruction
gradients written by hand into reused ``.grad`` tensors (:mod:`gradiend.training.reconstruction`):

                                       before                   after
    model            input_dim  clock  floor ms  step ms ratio   floor ms  step ms ratio
    bert-base      108,891,648  cpu      5936.9  10204.3  1.72     6133.3   6466.9  1.05
    bert-base      108,891,648  wall    15001.9  42613.4  2.84    16188.7  18311.7  1.13
    bert-base-1%     1,088,917  cpu      5756.5   5663.5  0.98     5743.2   5404.1  0.94
    tiny-masked        344,320  cpu        31.7     35.4  1.12       28.6     31.0  1.09
    tiny-causal        409,600  cpu        27.3     30.2  1.11       24.8     27.5  1.11

Before, a fresh input-sized allocation per intermediate (two flat gradient copies, the decoded
vector, the squared error and each autograd gradient) cost more in page faults than the arithmetic;
the remaining overhead on unpruned BERT-base is the fused AdamW update over 3 x 109M weights and one
pass each for the gradient copy, the NaN check and the reconstruction maths.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend.data.demo_corpus import generate_demo_corpus  # noqa: E402
from gradiend.objectives.gradients import parameter_gradients  # noqa: E402
from gradiend.objectives.losses import batch_loss  # noqa: E402
from gradiend.training.arguments import PrePruneConfig, TrainingArguments  # noqa: E402
from gradiend.data.rows import FEATURE_CLASS_ID, TRAINING_LABEL  # noqa: E402
from gradiend.training.scheduler import BatchScheduler  # noqa: E402
from gradiend.training.trainer import TextPredictionTrainer  # noqa: E402
from gradiend.training.training_loop import TrainingRun, make_optimizer  # noqa: E402

# name -> (builder, pre-prune fraction or None)
MODELS = {
    "tiny-masked": ("build_tiny_masked_lm", None),
    "tiny-causal": ("build_tiny_causal_lm", None),
    "bert-base": ("bert-base", None),
    "bert-base-1%": ("bert-base", 0.01),
}


def _she_he_table(corpus):
    from tests.training_support import she_he_table

    return she_he_table(corpus)


def _build(kind: str, folder: Path, corpus) -> Path:
    from gradiend.demo import models

    if kind == "bert-base":
        return models.build_random_like("bert-base", folder, corpus=corpus, seed=0)
    return getattr(models, kind)(folder, corpus, seed=0)


def _time(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is the steadier one on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(name: str, batch_size: int, repeats: int, workdir: Path) -> dict:
    builder, fraction = MODELS[name]
    corpus = generate_demo_corpus(2000, seed=0)
    model_dir = _build(builder, workdir / builder, corpus) if not (workdir / builder).exists() else workdir / builder
    pre = PrePruneConfig(topk=fraction, n_samples=8) if fraction else None
    args = TrainingArguments(train_batch_size=batch_size, max_steps=repeats, learning_rate=1e-3, max_seeds=1,
                             pre_prune_config=pre)
    trainer = TextPredictionTrainer(str(model_dir), data=_she_he_table(corpus), args=args,
                                    target_classes=["she", "he"], progress=False)
    rows = trainer.train_rows()
    scheduler = BatchScheduler(rows.frame[FEATURE_CLASS_ID].tolist(), rows.frame[TRAINING_LABEL].tolist(),
                               batch_size, seed=0)
    pre_prune = trainer.compute_pre_prune_mask() if pre else None
    mwg = trainer.create_model_with_gradiend(0, pre_prune)
    run = TrainingRun(mwg, scheduler, rows, None, args, trainer.target_classes, progress=False)
    run.prepare_batches()
    optimizer = make_optimizer(mwg.gradiend.parameters(), args)
    params = mwg.mapped_parameters()
    kinds = list(dict.fromkeys([args.source, args.target]))

    names, tensors = list(params), list(params.values())

    def floor(step):
        """The honest floor: one forward and the backward passes the step needs (one per gradient
        kind, on the retained graph), each gradient dropped as soon as autograd returns it; no
        gradient dicts, no casts, no GRADIEND."""
        batch = run._batches[scheduler.key(step - 1)]
        with torch.enable_grad():
            logits = mwg.objective.scored_logits(mwg.base_model, batch)
            for i, kind in enumerate(kinds):
                loss = batch_loss(logits, batch, kind, "positions")
                torch.autograd.grad(loss, tensors, retain_graph=i < len(kinds) - 1, allow_unused=True)

    def gradient_dicts(step):
        batch = run._batches[scheduler.key(step - 1)]
        parameter_gradients(mwg.base_model, params, mwg.objective, batch, kinds)

    for param in tensors:
        param.requires_grad_(True)
    floor(1)
    gradient_dicts(1)
    run.train_step(1, optimizer)  # warm-up (allocations, head check)
    floors, dicts, steps = [], [], []
    for step in range(1, repeats + 1):
        floors.append(_time(lambda: floor(step)))
        dicts.append(_time(lambda: gradient_dicts(step)))
        steps.append(_time(lambda: run.train_step(step, optimizer)))
    result = {"model": name, "input_dim": mwg.gradiend.input_dim, "batch": batch_size,
              "tokens": int(run._batches[scheduler.key(0)].inputs["input_ids"].shape[1])}
    for i, clock in enumerate(("wall", "cpu")):
        floor_s = statistics.median(t[i] for t in floors)
        dicts_s = statistics.median(t[i] for t in dicts)
        step_s = statistics.median(t[i] for t in steps)
        result.update({f"{clock}_floor_ms": 1e3 * floor_s, f"{clock}_dicts_ms": 1e3 * dicts_s,
                       f"{clock}_step_ms": 1e3 * step_s, f"{clock}_ratio": step_s / floor_s,
                       f"{clock}_dicts_ratio": step_s / dicts_s})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny-masked", "tiny-causal", "bert-base-1%"],
                        choices=sorted(MODELS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is stable on a shared machine; OpenMP spinning makes more unstable)")
    parser.add_argument("--workdir", type=Path, default=None, help="where models are built (default: temp)")
    options = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(options.threads)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        workdir = options.workdir or Path(tmp)
        results = [bench(name, options.batch_size, options.repeats, workdir) for name in options.models]
    print(f"{'model':<14} {'input_dim':>11} {'batch':>5} {'tokens':>6} {'clock':>5} {'floor ms':>9} {'dicts ms':>9} "
          f"{'step ms':>9} {'step/floor':>10} {'step/dicts':>10}")
    for r in results:
        for clock in ("wall", "cpu"):
            print(f"{r['model']:<14} {r['input_dim']:>11,} {r['batch']:>5} {r['tokens']:>6} {clock:>5} "
                  f"{r[clock + '_floor_ms']:>9.1f} {r[clock + '_dicts_ms']:>9.1f} {r[clock + '_step_ms']:>9.1f} "
                  f"{r[clock + '_ratio']:>10.2f} {r[clock + '_dicts_ratio']:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
