"""Peak memory of pre-pruning and training against the floor any implementation must pay.

Each stage runs in a fresh child process (the library path, :class:`TextPredictionTrainer`) and is
measured by that process's peak resident memory (``VmHWM`` of ``/proc/self/status``), the Python
interpreter with torch and transformers included. Floors (what a stage cannot do without):

- pre-pruning: the base model's weights + one gradient of the mapped parameters (model dtype);
- training: those + the kept GRADIEND with its two AdamW states (float32, ``3 × 3k`` values).

Each child also prints the memory plan the trainer made before loading the model
(:mod:`gradiend.model.memory_plan`), so the table shows plan ÷ peak too. Target: peak ÷ floor ≤ 1.5.
It asserts nothing: peaks depend on the allocator and the load.

Models (random weights, built once into ``--workdir``; tokenizers from the demo corpus, so the
vocabulary rows beyond the tokenizer's are never looked up but have their full-size cost):

- ``bert-base``: the BERT-base shape (12 × 768, vocabulary 30,522);
- ``llama-1b``: the Llama-3.2-1B shape (``LlamaConfig``: hidden 2048, 16 layers, 32 heads, 8 key-value
  heads, intermediate 8192, vocabulary 128,256, tied embeddings; 1.24 B parameters), or
  ``--vocab`` a smaller vocabulary.

Run (one model and dtype at a time; the 1B model needs ~12 GiB in float32)::

    python3 benchmarks/bench_memory.py --model bert-base --dtype float32 --stages train
    python3 benchmarks/bench_memory.py --model llama-1b --dtype bfloat16 --stages pre_prune train --keep 0.01

Results: benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GIB = 1 << 30
LLAMA_1B = {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
            "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True,
            "max_position_embeddings": 131072, "rope_theta": 500000.0}


def status(key: str) -> int:
    """A ``/proc/self/status`` value in bytes (``VmHWM``: peak resident memory, ``VmRSS``: now)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _table(corpus):
    from tests.training_support import she_he_table

    return she_he_table(corpus, left_context=True)


def build(model: str, folder: Path, dtype: str, vocab: int | None) -> Path:
    """The random model folder (in its dtype, so loading it costs what the run costs)."""
    import torch

    from gradiend.data.demo_corpus import generate_demo_corpus
    from gradiend.demo import models

    corpus = generate_demo_corpus(2000, seed=0)
    if model == "bert-base":
        models.build_random_like("bert-base", folder, corpus=corpus, seed=0)
        if dtype != "float32":
            from transformers import AutoModelForMaskedLM

            AutoModelForMaskedLM.from_pretrained(folder).to(getattr(torch, dtype)).save_pretrained(folder)
        return folder
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = models._causal_tokenizer(corpus, 256)
    config = LlamaConfig(**{**LLAMA_1B, "vocab_size": vocab or LLAMA_1B["vocab_size"]},
                         bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.eos_token_id)
    torch.set_default_dtype(getattr(torch, dtype))  # initialised in its dtype: half the memory in bfloat16
    model = models._seeded_model(LlamaForCausalLM, config, seed=0)
    torch.set_default_dtype(torch.float32)
    return models.save_model_folder(model, tokenizer, folder)


def floors(model_dir: Path, dtype: str, kept: int | None) -> dict:
    """Floor bytes of each stage, from the model's shapes (meta device)."""
    import torch

    from gradiend.model.backbone import mapped_parameters
    from gradiend.model.loading import load_meta_model

    meta = load_meta_model(model_dir, torch_dtype=dtype)[0]
    size = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    weights = sum(p.numel() for p in meta.parameters()) * size
    mapped = sum(p.numel() for p in mapped_parameters(meta).values())
    k = mapped if kept is None else kept
    return {"pre_prune": weights + mapped * size, "train": weights + mapped * size + 9 * k * 4, "mapped": mapped}


def child(stage: str, model_dir: Path, dtype: str, keep: float | None, steps: int, batch: int, eval_rows: int,
          mask_dir: Path, out: Path) -> dict:
    """One stage, measured: ``pre_prune`` writes the mask folder, ``train`` trains ``steps`` steps on it
    (``batch`` rows each; the encoder evaluated on ``eval_rows`` rows at step 0 and at the end)."""
    from gradiend.data.demo_corpus import generate_demo_corpus
    from gradiend.training.arguments import PrePruneConfig, TrainingArguments
    from gradiend.training.pruning import PrePruneResult
    from gradiend.training.trainer import TextPredictionTrainer

    corpus = generate_demo_corpus(2000, seed=0)
    table = _table(corpus)
    baseline = status("VmRSS")
    pre = PrePruneConfig(keep_top_k=keep, n_samples=batch, batch_size=batch) if keep is not None else None
    args = TrainingArguments(torch_dtype=dtype, train_batch_size=batch, eval_batch_size=batch, max_steps=steps,
                             eval_steps=steps, encoder_eval_max_size=eval_rows, max_seeds=1, learning_rate=1e-4,
                             pre_prune_config=pre if stage == "pre_prune" else None)
    trainer = TextPredictionTrainer(str(model_dir), data=table, args=args, target_classes=["she", "he"],
                                    progress=False)
    start = time.perf_counter()
    if stage == "pre_prune":
        trainer.compute_pre_prune_mask().save(mask_dir)
        kept = PrePruneResult.load(mask_dir, importance=False).n_kept
    else:
        result = trainer.train_seed(0, output_dir=out, pre_prune_importance=mask_dir if keep is not None else None)
        kept = result.model_with_gradiend.unpruned_length if keep is None else result.training["input_dim"]["trained"]
    plan = trainer.memory_plan.stage(stage).total if getattr(trainer, "memory_plan", None) else float("nan")
    return {"stage": stage, "peak": status("VmHWM"), "baseline": baseline, "plan": plan, "kept": kept,
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("bert-base", "llama-1b"), default="bert-base")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--stages", nargs="+", choices=("pre_prune", "train"), default=["train"])
    parser.add_argument("--keep", type=float, default=None, help="pre-pruning keep_top_k (None: train unpruned)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="rows per training step and per pre-pruning backward")
    parser.add_argument("--eval-rows", type=int, default=16, help="encoder evaluation rows (step 0 and the end)")
    parser.add_argument("--vocab", type=int, default=None, help="llama-1b: a smaller vocabulary")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gradiend-bench-memory"))
    parser.add_argument("--child", choices=("pre_prune", "train", "build"), default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    name = f"{options.model}{'-v' + str(options.vocab) if options.vocab else ''}-{options.dtype}"
    model_dir, mask_dir = options.workdir / name, options.workdir / f"{name}-mask-{options.keep}"
    if options.child == "build":
        build(options.model, model_dir, options.dtype, options.vocab)
        return
    if options.child is not None:
        print(json.dumps(child(options.child, model_dir, options.dtype, options.keep, options.steps, options.batch,
                               options.eval_rows, mask_dir, options.workdir / f"{name}-trained")))
        return
    forwarded = ["--model", options.model, "--dtype", options.dtype, "--steps", str(options.steps),
                 "--batch", str(options.batch), "--eval-rows", str(options.eval_rows), "--workdir", str(options.workdir)]
    forwarded += [*(["--keep", str(options.keep)] if options.keep is not None else []),
                  *(["--vocab", str(options.vocab)] if options.vocab else [])]
    if not model_dir.exists():
        subprocess.run([sys.executable, __file__, *forwarded, "--child", "build"], check=True)
    rows = []
    for stage in options.stages:
        done = subprocess.run([sys.executable, __file__, *forwarded, "--child", stage], check=True,
                              capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    floor = floors(model_dir, options.dtype, rows[-1]["kept"] if options.keep is not None else None)
    print(f"{'model':<22} {'stage':<9} {'kept':>13} {'floor GiB':>9} {'peak GiB':>9} {'peak/floor':>10} "
          f"{'plan GiB':>9} {'plan/peak':>9} {'process GiB':>11} {'seconds':>8}")
    for row in rows:
        f = floor[row["stage"]]
        print(f"{name:<22} {row['stage']:<9} {row['kept']:>13,} {f / GIB:>9.2f} {row['peak'] / GIB:>9.2f} "
              f"{row['peak'] / f:>10.2f} {row['plan'] / GIB:>9.2f} {row['plan'] / row['peak']:>9.2f} "
              f"{row['baseline'] / GIB:>11.2f} {row['seconds']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
