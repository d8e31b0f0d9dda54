"""Write a rewritten base model as an ordinary Hugging Face folder with a model card.

The folder holds ``config.json``, safetensors weights, the tokenizer, ``README.md`` (how the model
was made: base model, feature, direction, chosen cell, LMS before and after, library version) and
``gradiend_rewrite.json`` (the same facts for programs). It is written atomically: a killed job
never leaves a folder that looks complete.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from gradiend._version import __version__
from gradiend.util.io import PathLike, atomic_dir, to_json_text

CARD_FILE = "README.md"
PROVENANCE_FILE = "gradiend_rewrite.json"


def rewrite_provenance(model_with_gradiend, entry: Mapping, feature_description: str | None = None) -> dict:
    """The facts the card states, JSON-ready."""
    directions = model_with_gradiend.feature_class_encoding_direction or {}
    gradiend = model_with_gradiend.gradiend
    return {
        "gradiend_version": __version__,
        "base_model": str(model_with_gradiend.base_model_id),
        "objective": getattr(model_with_gradiend.objective, "name", None),
        "feature_classes": sorted(directions),
        "feature_description": feature_description,
        "target_class": entry.get("target_class"),
        "strengthen": bool(entry.get("strengthen", True)),
        "learning_rate": float(entry["learning_rate"]),
        "feature_factor": float(entry["feature_factor"]),
        "part": entry.get("part", "decoder"),
        "lms_before": entry.get("base_lms"),
        "lms_after": entry.get("lms"),
        "kl_to_base": entry.get("kl"),
        "perplexity_kind": (entry.get("damage") or {}).get("perplexity_kind"),
        "perplexity_before": entry.get("base_perplexity"),
        "perplexity_after": entry.get("perplexity"),
        "metric_before": entry.get("base_value"),
        "metric_after": entry.get("value"),
        "selection_policy": entry.get("policy"),
        "selection_fallback": bool(entry.get("fallback", False)),
        "source": model_with_gradiend.source,
        "target": model_with_gradiend.target,
        "n_mapped_tensors": len(gradiend.param_map),
        "n_mapped_entries": int(gradiend.input_dim),
    }


def _number(value) -> str:
    return "n/a" if value is None else f"{float(value):.6g}"


def model_card(facts: Mapping) -> str:
    """The README.md text for a rewritten model."""
    cls = facts["target_class"]
    others = [c for c in facts["feature_classes"] if c != cls]
    if facts["strengthen"]:
        direction, metric = f"strengthen `{cls}`", f"P({cls} tokens) on held-out rows of {', '.join(others) or 'the other class'}"
    else:
        direction, metric = f"weaken `{cls}`", f"1 − P({cls} tokens) on held-out rows of {cls}"
    feature = facts.get("feature_description") or " vs ".join(f"`{c}`" for c in facts["feature_classes"])
    fallback = " (fallback: no cell kept the LMS threshold; the smallest learning rate was taken)" \
        if facts["selection_fallback"] else ""
    rows = [
        ("base model", f"`{facts['base_model']}`"),
        ("objective", facts["objective"]),
        ("feature", feature),
        ("direction", direction),
        ("learning rate", _number(facts["learning_rate"])),
        ("feature factor", _number(facts["feature_factor"])),
        ("update", f"θ + lr · decoder(ff) on {facts['n_mapped_entries']} entries of "
                   f"{facts['n_mapped_tensors']} parameter tensors (part `{facts['part']}`)"),
        ("LMS before → after", f"{_number(facts['lms_before'])} → {_number(facts['lms_after'])}"),
        ("KL(base ‖ rewritten) on neutral text", _number(facts["kl_to_base"])),
        (f"{facts['perplexity_kind'] or 'perplexity'} before → after",
         f"{_number(facts['perplexity_before'])} → {_number(facts['perplexity_after'])}"),
        ("selection metric before → after", f"{_number(facts['metric_before'])} → {_number(facts['metric_after'])}"),
        ("metric", metric),
        ("selection", f"{facts['selection_policy'] or 'n/a'}{fallback}"),
        ("GRADIEND source / target gradients", f"{facts['source']} / {facts['target']}"),
        ("gradiend version", facts["gradiend_version"]),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        "---\nlibrary_name: transformers\ntags:\n- gradiend\n- model-editing\n---\n\n"
        f"# {facts['base_model']} rewritten with GRADIEND: {direction}\n\n"
        "This model is its base model with one GRADIEND update added to its weights: a GRADIEND "
        "autoencoder was trained on the base model's gradients for the feature below, and its "
        "decoder output, scaled by the learning rate, was added to the mapped parameters. The "
        "learning rate and feature factor were chosen on a grid by their effect on the target "
        "class's probability while keeping the language modelling score (LMS) on neutral text.\n\n"
        "| | |\n|---|---|\n" + table + "\n\n"
        f"Machine-readable: `{PROVENANCE_FILE}`.\n"
    )


def _fix_tokenizer_limit(folder: Path, model) -> None:
    """Some tokenizers save an effectively infinite ``model_max_length``; write the model's own."""
    from gradiend.objectives.base import UNBOUNDED, model_max_positions  # here: the report stage must not load torch

    path, limit = folder / "tokenizer_config.json", model_max_positions(model)
    if limit is None or not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config.get("model_max_length"), int) or config["model_max_length"] >= UNBOUNDED:
        config["model_max_length"] = limit
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_rewritten_model(model_with_gradiend, summary_entry: Mapping, out_dir: PathLike,
                         feature_description: str | None = None) -> Path:
    """Rewrite the base model with the entry's cell and save it (weights, tokenizer, card) to ``out_dir``."""
    facts = rewrite_provenance(model_with_gradiend, summary_entry, feature_description)
    rewritten = model_with_gradiend.rewrite_base_model(facts["learning_rate"], facts["feature_factor"], part=facts["part"])
    with atomic_dir(out_dir) as tmp:
        rewritten.save_pretrained(tmp)
        if model_with_gradiend.tokenizer is not None:
            model_with_gradiend.tokenizer.save_pretrained(tmp)
            _fix_tokenizer_limit(tmp, rewritten)
        (tmp / CARD_FILE).write_text(model_card(facts), encoding="utf-8")
        (tmp / PROVENANCE_FILE).write_text(to_json_text(facts), encoding="utf-8")
    return Path(out_dir)
