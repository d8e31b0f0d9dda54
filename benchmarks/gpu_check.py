"""GPU check: every workflow stage on the device, a bf16 base model, the JVP encoder against one
backward per example, and the peak GPU memory of a BERT-base-shaped model.

Run on a GPU machine (a few minutes)::

    python3 benchmarks/gpu_check.py                      # cuda, bfloat16, stages on a tiny model + BERT-base shape
    python3 benchmarks/gpu_check.py --tiny --device cpu  # the CPU smoke test (tests/test_gpu_check.py, seconds)

Parts, each printed as a table row and collected in ``--json``:

1. **Stages.** The workflow's stage functions in order (data, pre-pruning, one seed's training,
   encoder evaluation, seed choice, the decoder base cell and one learning rate's cells, cell
   choice, a rewrite) on a tiny demo model, in ``training.torch_dtype`` = ``--dtype``. On CUDA
   each stage that loads a model must leave a non-zero peak of allocated GPU memory (a stage that
   silently runs on the CPU fails the check).
2. **JVP vs per-example backward** on ``--model`` (the BERT-base shape by default, ``tiny`` with
   ``--tiny``) in ``--dtype``: ``w·∇L`` of every row of one batch from one forward-mode pass against
   one backward per row; the two must agree (relative to the largest value; bf16 is coarse).
3. **Peak memory** of one GRADIEND training step and of the JVP batch on that model.
4. **A base model split over two devices**: the tiny BERT with its embeddings, first layer and head on
   one device and its second layer on another, the GRADIEND on the last device, in float32. One training
   step, and with the same GRADIEND a batch's gradients, the batched encoding and one rewrite, must give
   the numbers of the same model on one device (bit for bit where both devices are one).
   With two GPUs the split is ``training.device_map`` over cuda:0 and cuda:1 (what a config does); with
   one GPU it is cuda:0 and the CPU, placed with accelerate's hooks (a device map that names ``cpu``
   beside a GPU would offload, which GRADIEND refuses); on the CPU (the smoke test) it is the CPU twice,
   through the same hooks.

Exit status 1 when a check fails. The numbers measured on a GPU go into ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _timed(device: torch.device, fn) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    value = fn()
    _sync(device)
    return time.perf_counter() - start, value


# --- 1. the stages ---------------------------------------------------------------------------------

def check_stages(device: torch.device, dtype: str, workdir: Path) -> list[dict]:
    """Run every stage once on a tiny experiment; per stage: seconds and peak GPU memory."""
    from gradiend import stages
    from gradiend import workflow_config as wfc
    from gradiend.cells import cell_name
    from gradiend.data.demo_corpus import generate_demo_corpus, write_demo_corpus
    from gradiend.demo.models import build_tiny_masked_lm

    corpus = workdir / "corpus.txt"
    write_demo_corpus(corpus, 1500, seed=0)
    model_dir = build_tiny_masked_lm(workdir / "tiny-bert", generate_demo_corpus(1500, seed=0), seed=0)
    experiment = {
        "base_model": str(model_dir),
        "data": {"source": {"path": str(corpus)}, "max_size_per_class": 60,
                 "feature_targets": [{"id": "F", "targets": ["she"]}, {"id": "M", "targets": ["he"]}],
                 "target_classes": ["F", "M"],
                 "neutral": {"max_size": 30, "additional_excluded_words": ["her", "his", "him", "they"]}},
        "training": {"train_batch_size": 8, "eval_batch_size": 16, "max_steps": 6, "eval_steps": 3,
                     "learning_rate": 1.0e-3, "torch_dtype": dtype},
        "seeds": [0],
        "pre_prune": {"n_samples": 8, "topk": 0.5, "source": "diff"},
        "decoder": {"learning_rates": [0.1], "max_size_training_like": 16, "max_size_neutral": 16},
        "rewrite": ["F"],
    }
    exp = wfc.load_and_validate({"results_dir": str(workdir / "results"), "experiments": {"exp": experiment}})
    exp = exp["experiments"]["exp"]
    root = workdir / "results" / "exp"
    p = lambda *parts: str(root.joinpath(*parts))  # noqa: E731
    cut = lambda stage: wfc.stage_config(exp, stage)  # noqa: E731
    lr, factors = 0.1, [float(f) for f in exp["decoder"]["feature_factors"]]
    data = {"training": p("data", "training.parquet"), "neutral": p("data", "neutral.parquet")}
    steps = [
        ("create_training_data", False, lambda: stages.create_training_data(
            cut("create_training_data"), texts=str(corpus), training=data["training"], summary=p("data", "summary.json"))),
        ("create_neutral_data", False, lambda: stages.create_neutral_data(
            cut("create_neutral_data"), texts=str(corpus), neutral=data["neutral"])),
        ("pre_prune", True, lambda: stages.pre_prune(
            cut("pre_prune"), training=data["training"], importance=p("prune", "importance.safetensors"),
            mask=p("prune", "mask.safetensors"), summary=p("prune", "summary.json"))),
        ("train_seed", True, lambda: stages.train_seed(
            cut("train_seed"), seed=0, training=data["training"], mask=p("prune", "mask.safetensors"),
            model=p("seeds", "0", "model"), convergence=p("seeds", "0", "convergence.png"))),
        ("evaluate_encoder", True, lambda: stages.evaluate_encoders(
            cut("evaluate_encoders"), seeds=[0], models=[p("seeds", "0", "model")], **data,
            metrics=[p("seeds", "0", "encoder", "metrics.json")],
            encoded=[p("seeds", "0", "encoder", "encoded.parquet")],
            distributions=[p("seeds", "0", "encoder", "distributions.png")])),
        ("select_seed", False, lambda: stages.select_seed(
            cut("select_seed"), seeds=[0], models=[p("seeds", "0", "model")],
            metrics=[p("seeds", "0", "encoder", "metrics.json")], choice=p("best", "seed.json"),
            best_model=p("best", "model"))),
        ("decoder_base", True, lambda: stages.decoder_grid(
            cut("decoder_grid"), model=None, cells=[p("decoder", "cells", "base.json")], **data)),
        ("decoder_cells", True, lambda: stages.decoder_grid(
            cut("decoder_grid"), model=p("best", "model"),
            cells=[p("decoder", "cells", f"{cell_name(lr, ff)}.json") for ff in factors], **data)),
        ("select_cell", False, lambda: stages.select_cell(
            cut("select_cell"), base=p("decoder", "cells", "base.json"),
            cells=[p("decoder", "cells", f"{cell_name(lr, ff)}.json") for ff in factors],
            seed_choice=p("best", "seed.json"), summary=p("decoder", "summary.json"),
            plot=p("decoder", "probability_shifts.png"))),
        ("rewrite_model", True, lambda: stages.rewrite_models(
            cut("rewrite_models"), targets=["F"], model=p("best", "model"),
            decoder_summary=p("decoder", "summary.json"), output_dirs=[p("rewritten", "F")])),
    ]
    rows = []
    for name, loads_model, run in steps:
        _reset_peak(device)
        seconds, _ = _timed(device, run)
        peak = _peak_mb(device)
        on_device = (not loads_model) or device.type != "cuda" or (peak or 0) > 0
        rows.append({"part": "stage", "name": name, "seconds": round(seconds, 3), "peak_mb": peak,
                     "ok": on_device, "note": "" if on_device else "ran without allocating GPU memory"})
    return rows


# --- 2. and 3. JVP, per-example backward, peak memory ------------------------------------------------

def _model_dir(kind: str, workdir: Path) -> Path:
    from gradiend.data.demo_corpus import generate_demo_corpus
    from gradiend.demo import models

    corpus = generate_demo_corpus(600, seed=0)
    if kind == "tiny":
        return models.build_tiny_masked_lm(workdir / "jvp-tiny", corpus, seed=0)
    return models.build_random_like(kind, workdir / f"jvp-{kind}", corpus=corpus, seed=0)


def check_encoder_and_memory(kind: str, device: torch.device, dtype: str, workdir: Path, rows_n: int) -> list[dict]:
    from gradiend.data.demo_corpus import generate_demo_corpus
    from gradiend.model.memory_plan import memory_pool
    from gradiend.objectives.gradients import jvp_directional, per_example_gradient_dot
    from gradiend.training.arguments import TrainingArguments
    from gradiend.training.trainer import TextPredictionTrainer

    sys.path.insert(0, str(REPO))
    from tests.training_support import she_he_table

    folder = _model_dir(kind, workdir)
    table = she_he_table(generate_demo_corpus(600, seed=1))
    rows = table[table["split"] == "train"].head(rows_n)
    args = TrainingArguments(train_batch_size=8, max_steps=2, eval_steps=2, learning_rate=1e-3, max_seeds=1,
                             torch_dtype=dtype, device=str(device))
    trainer = TextPredictionTrainer(str(folder), data=table, args=args, target_classes=["she", "he"], progress=False)
    mwg = trainer.create_model_with_gradiend(0)
    model, objective = mwg.base_model, mwg.objective
    batch = mwg.prepare(rows["masked"].tolist(), rows["factual"].tolist(), rows["alternative"].tolist())
    params = mwg.mapped_parameters()
    generator = torch.Generator().manual_seed(0)
    tangents = {n: torch.randn(p.shape, generator=generator).to(device=p.device, dtype=p.dtype)
                for n, p in params.items()}
    out = []
    model_param = next(model.parameters())
    plain_rows = min(8, len(rows))
    small = mwg.prepare(rows["masked"].tolist()[:plain_rows], rows["factual"].tolist()[:plain_rows],
                        rows["alternative"].tolist()[:plain_rows])
    jvp_small = jvp_directional(model, tangents, objective, small, "alternative")  # also the warm-up
    _reset_peak(device)
    jvp_s, jvp = _timed(device, lambda: jvp_directional(model, tangents, objective, batch, "alternative"))
    jvp_peak = _peak_mb(device)
    per_example_gradient_dot(model, tangents, objective, small, "alternative")  # warm-up
    plain_s, plain = _timed(device, lambda: per_example_gradient_dot(model, tangents, objective, small,
                                                                      "alternative"))
    scale = float(plain.abs().max()) or 1.0
    error = float((jvp_small.float() - plain.float()).abs().max()) / scale
    tolerance = 5e-2 if model_param.dtype in (torch.bfloat16, torch.float16) else 1e-3
    per_row_jvp, per_row_plain = jvp_s / len(rows), plain_s / plain_rows
    out.append({"part": "encoder", "name": f"{kind} jvp vs per-example backward", "seconds": round(jvp_s, 4),
                "peak_mb": jvp_peak, "ok": error <= tolerance and jvp.device.type == device.type,
                "note": (f"{1e3 * per_row_jvp:.2f} ms/row (JVP, {len(rows)} rows) vs {1e3 * per_row_plain:.2f} ms/row "
                         f"(backward per row): {per_row_plain / per_row_jvp:.1f}x; max rel. difference "
                         f"{error:.1e} (tolerance {tolerance:.0e}); dtype {model_param.dtype}")})
    del mwg, model, batch, small, tangents
    _reset_peak(device)
    train_s, _ = _timed(device, trainer.train)
    trained = trainer.model_with_gradiend
    gradiend_device = next(trained.gradiend.parameters()).device.type
    peak = _peak_mb(device)
    planned = trainer.memory_plan.peaks.get(memory_pool(str(device)), 0) / 2**20
    versus = f"; planned {planned:.0f} MB on {memory_pool(str(device))}" + (f" ({planned / peak:.2f}x)" if peak else "")
    out.append({"part": "memory", "name": f"{kind} training (2 steps + 2 evaluations)", "seconds": round(train_s, 3),
                "peak_mb": peak, "ok": gradiend_device == device.type,
                "note": f"GRADIEND input {trained.gradiend.input_dim:,} entries; GRADIEND on {gradiend_device}{versus}"})
    return out


# --- 4. a base model split over two devices ---------------------------------------------------------

SPLIT = ("bert.embeddings", "bert.encoder.layer.0", "cls")  # on the first device; the rest on the second


def split_devices() -> tuple[str, str]:
    """cuda:0 and cuda:1 with two GPUs, cuda:0 and the CPU with one, else the CPU twice."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ("cuda:0", "cuda:1") if count >= 2 else ("cuda:0", "cpu") if count == 1 else ("cpu", "cpu")


def _split_base(folder: Path, first: str, second: str):
    """``(model, tokenizer, objective)`` with :data:`SPLIT` on ``first`` and the second layer on ``second``."""
    from accelerate import dispatch_model

    from gradiend.model.loading import load_base_model

    device_map = {**{name: first for name in SPLIT}, "bert.encoder.layer.1": second}
    if first.startswith("cuda") and second.startswith("cuda"):
        return load_base_model(str(folder), device_map=device_map)
    model, tokenizer, objective = load_base_model(str(folder))
    # main_device "cpu": modules mapped to the CPU run there instead of being offloaded
    dispatch_model(model, device_map, main_device="cpu", force_hooks=True)
    return model, tokenizer, objective


def _trained(base, gradiend_device: str, table):
    """The GRADIEND after one training step (the library's loop) over ``base``, on ``gradiend_device``."""
    from gradiend.model.with_gradiend import ModelWithGradiend
    from gradiend.training.arguments import TrainingArguments
    from gradiend.training.trainer import TextPredictionTrainer

    model, tokenizer, objective = base
    shell = ModelWithGradiend.from_pretrained(model, tokenizer=tokenizer, objective=objective,
                                              gradiend_device=gradiend_device)
    args = TrainingArguments(train_batch_size=8, max_steps=1, eval_steps=1, learning_rate=1e-2, max_seeds=1,
                             gradiend_device=gradiend_device)
    trainer = TextPredictionTrainer(shell, data=table, args=args, target_classes=["she", "he"], progress=False)
    return trainer.train().model_with_gradiend


def _numbers(mwg, rows) -> dict:
    """What the placement must not change, on the CPU in float64: a batch's source and target gradients
    (gathered onto the GRADIEND's device), the batched encoding, one rewrite's weights and logits."""
    from gradiend.util.devices import input_device

    batch = mwg.prepare(rows["masked"].tolist(), rows["factual"].tolist(), rows["alternative"].tolist())
    source, target = mwg.source_and_target_gradients(batch)
    rewritten = mwg.rewrite_base_model(1.0, 1.0)
    with torch.no_grad():
        logits = mwg.objective.scored_logits(rewritten, batch.to(input_device(rewritten)))
    as_cpu = lambda t: t.detach().to("cpu", torch.float64)  # noqa: E731
    return {"gradients": {"source": as_cpu(source), "target": as_cpu(target), "device": str(source.device)},
            "encoded": as_cpu(mwg.encode_batch(batch)),
            "rewritten": {n: as_cpu(p) for n, p in rewritten.named_parameters() if n in mwg.gradiend.param_map},
            "logits": as_cpu(logits), "devices": sorted({str(p.device) for p in rewritten.parameters()})}


def _max_relative(a, b) -> float:
    if isinstance(a, dict):
        return max(_max_relative(a[k], b[k]) for k in a if isinstance(a[k], (dict, torch.Tensor)))
    return float((a - b).abs().max()) / (float(b.abs().max()) or 1.0)


def check_split(workdir: Path) -> list[dict]:
    """Part 4: the tiny BERT split over two devices (GRADIEND on the second) against one device: one
    training step each, then the single device's GRADIEND over both for gradients, encoding and a rewrite."""
    from gradiend.data.demo_corpus import generate_demo_corpus
    from gradiend.model.loading import load_base_model
    from tests.training_support import she_he_table

    first, second = split_devices()
    folder = _model_dir("tiny", workdir)
    table = she_he_table(generate_demo_corpus(600, seed=1))
    rows = table[table["split"] == "test"].head(16)
    started = time.perf_counter()
    single = _trained(load_base_model(str(folder), device=first), first, table)
    split = _trained(_split_base(folder, first, second), second, table)
    trained = {"gradiend": (_max_relative({k: v.double().cpu() for k, v in split.gradiend.state_dict().items()},
                                          {k: v.double().cpu() for k, v in single.gradiend.state_dict().items()}))}
    split.gradiend.load_state_dict(single.gradiend.state_dict())  # the same GRADIEND over both placements
    got, want = _numbers(split, rows), _numbers(single, rows)
    seconds = time.perf_counter() - started
    exact = first == second  # the same kernels on one device: bit for bit
    # Adam's first step is lr·g/(|g| + eps): where g is rounding noise, another device's kernels move it
    tolerances = {"gradiend": 0.0 if exact else 1e-3, **{k: 0.0 if exact else 1e-4 for k in
                                                          ("gradients", "encoded", "rewritten", "logits")}}
    errors = {**trained, **{k: _max_relative(got[k], want[k]) for k in ("gradients", "encoded", "rewritten", "logits")}}
    placed = (str(split.gradiend.device) == str(torch.device(second)) == got["gradients"]["device"]
              and len(got["devices"]) == len({first, second}))
    return [{"part": "split", "name": f"{first} + {second}: {key}", "seconds": round(seconds, 3), "peak_mb": None,
             "ok": errors[key] <= tolerances[key] and placed,
             "note": f"max rel. difference {errors[key]:.1e} (tolerance {tolerances[key]:.0e}); base model on "
                     f"{', '.join(got['devices'])}, GRADIEND on {split.gradiend.device}"}
            for key in tolerances]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="base-model dtype; default bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny model only (the CPU smoke test)")
    parser.add_argument("--model", default=None, help="model shape for parts 2-3 (default bert-base, tiny with --tiny)")
    parser.add_argument("--rows", type=int, default=32, help="rows of the JVP batch")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    options = parser.parse_args(argv)
    device = torch.device(options.device)
    dtype = options.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    kind = options.model or ("tiny" if options.tiny else "bert-base")
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        workdir = Path(tmp)
        rows += check_stages(device, dtype, workdir)
        rows += check_encoder_and_memory(kind, device, dtype, workdir, options.rows)
        rows += check_split(workdir)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), base-model dtype {dtype}, torch {torch.__version__}")
    print(f"{'part':<8} {'name':<44} {'s':>8} {'peak MB':>9}  ok  note")
    for row in rows:
        peak = "-" if row["peak_mb"] is None else f"{row['peak_mb']:.0f}"
        print(f"{row['part']:<8} {row['name']:<44} {row['seconds']:>8.3f} {peak:>9}  {'yes' if row['ok'] else 'NO ':<3} "
              f"{row['note']}")
    if options.json is not None:
        options.json.write_text(json.dumps({"device": str(device), "device_name": name, "dtype": dtype, "rows": rows},
                                           indent=2))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
