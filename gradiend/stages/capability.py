"""Capability stage: the base model and each rewritten model outside the feature they were rewritten for.

``capability_model`` runs once per evaluated model (``base`` and every ``rewrite`` target) of an
experiment with a ``capability`` block and writes ``results/<experiment>/capability/<model>.json``;
the report puts them side by side. Scoring: :mod:`gradiend.evaluation.capability`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from gradiend.stages.report import fmt, table, with_interval
from gradiend.util.logging import get_logger

logger = get_logger("gradiend.stages")

OUTPUT_PLACEHOLDER = "<output_path>"


def _check_lm_eval(config: Mapping, reference: str) -> None:
    """lm-evaluation-harness is installed and the model is a causal LM (from its config.json, before
    any weights load)."""
    import importlib.util

    from transformers import AutoConfig

    tasks = config["capability"]["lm_eval"]["tasks"]
    if importlib.util.find_spec("lm_eval") is None:
        raise ModuleNotFoundError(f"capability.lm_eval of experiment {config['name']!r} names tasks {tasks}, but "
                                  f"lm-evaluation-harness is not installed (pip install lm-eval)")
    model_config = AutoConfig.from_pretrained(reference, trust_remote_code=bool(config["trust_remote_code"]))
    names = model_config.architectures or []
    if not (getattr(model_config, "is_decoder", False) or any("CausalLM" in n or "LMHead" in n for n in names)):
        raise ValueError(f"capability.lm_eval of experiment {config['name']!r}: lm-evaluation-harness's `hf` model "
                         f"evaluates causal LMs, and {config['base_model']!r} ({', '.join(names) or 'no architecture'}) "
                         f"is not one; remove `lm_eval`")


def _lm_eval(config: Mapping, block: Mapping, reference: str) -> dict:
    """The lm-evaluation-harness hand-off for one model folder (or hub id)."""
    import tempfile

    from gradiend.evaluation.capability import lm_eval_command, run_lm_eval
    from gradiend.util.devices import default_device

    with tempfile.TemporaryDirectory(prefix="gradiend-lm-eval-") as folder:
        command = lm_eval_command(
            reference, block["tasks"], folder, include_path=block["include_path"], num_fewshot=block["num_fewshot"],
            limit=block["limit"], batch_size=block["batch_size"],
            device=default_device(), dtype=config["training"]["torch_dtype"],
            trust_remote_code=bool(config["trust_remote_code"]))
        logger.info("lm-evaluation-harness: %s", " ".join(command))
        result = run_lm_eval(command, folder)
    return {"tasks": list(block["tasks"]), "command": [OUTPUT_PLACEHOLDER if c == folder else c for c in command],
            **result}


def capability_model(config: dict, *, model_name: str, model_dir: str | None, text: str, output: str) -> None:
    """Score one model on the experiment's capability checks.

    Config: ``base_model, base_model_path, trust_remote_code, training.{torch_dtype, device_map}, capability``
    (``capability.{text, max_texts, batch_size, bootstrap, seed, lm_eval.{tasks, include_path,
    num_fewshot, limit, batch_size}}``).
    Reads: ``text`` (the held-out file, one text per line; read and checked before the model
    loads) and ``model_dir`` (a rewritten model folder; ``None`` = ``base_model_path``).
    Writes ``output`` (``results/<experiment>/capability/<model_name>.json``): ``experiment, model,
    base_model, text: {path, sha256}``, ``heldout: {kind, measure (perplexity for causal LMs,
    pseudo-perplexity for masked LMs), perplexity, ci, n_texts, n_tokens, bootstrap, confidence}``
    and ``lm_eval`` (None without the block, else ``{tasks, command, results: {task: {metric:
    value}}, versions, n_shot, n_samples, lm_eval_version}``).
    """
    import torch

    from gradiend.evaluation.capability import heldout_perplexity, read_texts
    from gradiend.model.base_reference import sha256_file
    from gradiend.stages.models import load_base
    from gradiend.util.io import write_json

    block = config["capability"]
    texts = read_texts(text, block["max_texts"])
    lm_eval = block["lm_eval"]
    reference = model_dir or config["base_model_path"]
    if lm_eval is not None:
        _check_lm_eval(config, reference)
    base = load_base(config, reference)
    heldout = heldout_perplexity(base.model, base.tokenizer, texts, batch_size=block["batch_size"],
                                 bootstrap=block["bootstrap"], seed=block["seed"])
    logger.info("%s on %s: %s %.4g", model_name, text, heldout["measure"], heldout["perplexity"])
    del base  # lm-eval loads the model again in its own process
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the allocator would keep the freed GPU memory from that process
    result = {"experiment": config["name"], "model": model_name, "base_model": config["base_model"],
              "text": {"path": str(text), "sha256": sha256_file(Path(text).expanduser())}, "heldout": heldout,
              "lm_eval": None if lm_eval is None else _lm_eval(config, lm_eval, reference)}
    write_json(output, result)


def capability_report_section(results: Sequence[str], link) -> list[str]:
    """The report's "Capability" section for one experiment's result files (empty without any)."""
    from gradiend.util.io import read_json

    if not results:
        return []
    loaded = [read_json(path) for path in results]
    first = loaded[0]
    tasks = [(task, metric) for task, metrics in ((first.get("lm_eval") or {}).get("results") or {}).items()
             for metric in metrics if "stderr" not in metric]
    rows = []
    for result, path in zip(loaded, results):
        heldout = result["heldout"]
        ci = heldout["ci"] or (None, None)
        scores = ((result.get("lm_eval") or {}).get("results") or {})
        rows.append([f"[{result['model']}]({link(path)})", with_interval(heldout["perplexity"], *ci, digits=4),
                     *(fmt(scores.get(task, {}).get(metric)) for task, metric in tasks)])
    heldout = first["heldout"]
    return ["## Capability", "",
            f"{heldout['measure'].capitalize()} on {heldout['n_texts']} held-out texts ({heldout['n_tokens']} tokens) "
            f"of `{Path(first['text']['path']).name}`; brackets: bootstrap {int(heldout['confidence'] * 100)} % "
            f"intervals over {heldout['bootstrap']} resamples of the texts"
            + (f"; lm-evaluation-harness tasks {first['lm_eval']['tasks']}" if first.get("lm_eval") else "") + ".", "",
            table(["model", heldout["measure"], *(f"{task} {metric}" for task, metric in tasks)], rows), ""]
