"""Capability checks of a model outside its feature: held-out text, and lm-evaluation-harness tasks.

Held-out text: a local file, one text per line. A causal LM's **perplexity** is
``exp(−Σ log P(s_i | s_<i) / n)`` over every token after a beginning-of-text token; a masked LM's
**pseudo-perplexity** (Salazar et al., 2020) masks each token in turn,
``exp(−Σ log P(s_i | s without s_i) / n)``. Both come from
:class:`~gradiend.evaluation.bias.likelihood.SentenceScorer` (special tokens never scored), with a
percentile-bootstrap interval over the texts.

lm-evaluation-harness: the saved model folder (or the base model's id) is handed to its command line,
``python -m lm_eval --model hf --model_args pretrained=<folder>,...``, with the configured tasks
(``include_path``: a folder of local task YAMLs); the results JSON it writes is read back. It
evaluates causal LMs; the package is imported only by its own process.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from gradiend.evaluation.bias.scores import CONFIDENCE, bootstrap_ci


def read_texts(path: str | Path, max_texts: int | None = None) -> list[str]:
    """The non-empty lines of a UTF-8 text file (stripped; ``.gz``, ``.bz2``, ``.xz`` read as the corpora
    are: :func:`~gradiend.data.base_loader.read_text_file`), at most ``max_texts`` (the first ones)."""
    from gradiend.data.base_loader import read_text_file

    path = Path(path).expanduser()
    texts = [line.strip() for line in read_text_file(path) if line.strip()]
    if not texts:
        raise ValueError(f"held-out text file {path} has no text (one text per line)")
    return texts[:max_texts] if max_texts else texts


def heldout_perplexity(model, tokenizer, texts: Sequence[str], *, batch_size: int = 32, bootstrap: int = 1000,
                       seed: int = 0) -> dict:
    """``{"kind", "measure", "perplexity", "ci", "n_texts", "n_tokens", "bootstrap", "confidence"}``."""
    from gradiend.evaluation.bias.likelihood import SentenceScorer
    from gradiend.evaluation.lms import MASKED

    scorer = SentenceScorer(model, tokenizer, batch_size=batch_size)
    counts = np.array([len(scorer.encode(text)[1]) for text in texts], dtype=float)
    log_likelihoods = np.array(scorer(list(texts)), dtype=float)

    def perplexity(index):
        return np.exp(-log_likelihoods[index].sum(axis=-1) / counts[index].sum(axis=-1))

    value = float(perplexity(np.arange(len(texts))))
    return {"kind": scorer.kind, "measure": "pseudo-perplexity" if scorer.kind == MASKED else "perplexity",
            "perplexity": value, "n_texts": len(texts), "n_tokens": int(counts.sum()),
            "ci": bootstrap_ci(perplexity, len(texts), bootstrap, seed) if math.isfinite(value) else None,
            "bootstrap": bootstrap, "confidence": CONFIDENCE}


def lm_eval_command(pretrained: str, tasks: Sequence[str], output_dir: str | Path, *, include_path: str | None = None,
                    num_fewshot: int | None = None, limit: int | None = None, batch_size: int = 8,
                    device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False,
                    seed: int = 0) -> list[str]:
    """The lm-evaluation-harness command line that evaluates the model at ``pretrained``."""
    model_args = f"pretrained={pretrained},dtype={dtype}" + (",trust_remote_code=True" if trust_remote_code else "")
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", model_args,
               "--tasks", ",".join(tasks), "--output_path", str(output_dir), "--batch_size", str(batch_size),
               "--device", device, "--seed", str(seed)]
    if include_path is not None:
        command += ["--include_path", str(Path(include_path).expanduser())]
    if num_fewshot is not None:
        command += ["--num_fewshot", str(num_fewshot)]
    if limit is not None:
        command += ["--limit", str(limit)]
    return command


def run_lm_eval(command: Sequence[str], output_dir: str | Path) -> dict:
    """Run the command and read back what it wrote: ``{"results": {task: {metric: value}}, "versions",
    "n_shot", "n_samples", "lm_eval_version"}`` (metric names as lm-eval writes them, e.g. ``acc,none``)."""
    done = subprocess.run(list(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"lm-evaluation-harness failed (exit {done.returncode}): {' '.join(command)}\n"
                           f"{done.stderr[-3000:]}")
    found = sorted(Path(output_dir).rglob("results*.json"))
    if not found:
        raise RuntimeError(f"lm-evaluation-harness wrote no results*.json under {output_dir}: {' '.join(command)}")
    data = json.loads(found[-1].read_text(encoding="utf-8"))
    results = {task: {k: v for k, v in metrics.items()  # lm-eval names a metric "<metric>,<filter>"
                      if "," in k and isinstance(v, (int, float)) and not isinstance(v, bool)}
               for task, metrics in data["results"].items()}
    return {"results": results, "versions": data.get("versions"), "n_shot": data.get("n-shot"),
            "n_samples": data.get("n-samples"), "lm_eval_version": data.get("lm_eval_version")}
