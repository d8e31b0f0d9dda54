"""Write a rewritten base model as an ordinary Hugging Face folder with a model card.

The folder holds ``config.json``, safetensors weights, the tokenizer, ``README.md`` (how the model
was made: base model, feature, direction, chosen cell, LMS before and after, library version; the
base model a reader can resolve, the license, the limitations and how to cite) and
``gradiend_rewrite.json`` (the same facts for programs). It is written atomically: a killed job
never leaves a folder that looks complete.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from gradiend._version import __version__
from gradiend.model.base_source import CARD_FILE, describe_base_model
from gradiend.util.io import PathLike, atomic_dir, to_json_text

PROVENANCE_FILE = "gradiend_rewrite.json"

# The method's papers and this software; CITATION.cff at the repository root says the same.
CITATION_BIBTEX = """@article{drechsel2025gradiend,
  title   = {{GRADIEND}: Feature Learning within Neural Networks Exemplified through Biases},
  author  = {Drechsel, Jonathan and Herbold, Steffen},
  journal = {arXiv preprint arXiv:2502.01406},
  year    = {2025},
  url     = {https://arxiv.org/abs/2502.01406}
}

@article{drechsel2026understanding,
  title   = {Understanding or Memorizing? {A} Case Study of {German} Definite Articles in Language Models},
  author  = {Drechsel, Jonathan and Bytyqi, Erisa and Herbold, Steffen},
  journal = {arXiv preprint arXiv:2601.09313},
  year    = {2026},
  url     = {https://arxiv.org/abs/2601.09313}
}

@software{gradiend_pipeline,
  title   = {{GRADIEND} pipeline: gradient-based feature learning in language models as cached, restartable stages},
  version = {%s},
  license = {Apache-2.0}
}""" % __version__


def rewrite_provenance(model_with_gradiend, entry: Mapping, feature_description: str | None = None,
                       base: Mapping | None = None) -> dict:
    """The facts the card states, JSON-ready. ``base`` is :func:`describe_base_model`'s account of the
    base model (default: described from the model's ``base_model_id``)."""
    directions = model_with_gradiend.feature_class_encoding_direction or {}
    gradiend = model_with_gradiend.gradiend
    return {
        "gradiend_version": __version__,
        "base_model": str(model_with_gradiend.base_model_id),
        "base_model_source": dict(base) if base is not None else describe_base_model(model_with_gradiend.base_model_id),
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
    source = facts["base_model_source"]
    return (
        _front_matter(source) + "\n"
        f"# {facts['base_model']} rewritten with GRADIEND: {direction}\n\n"
        "This model is its base model with one GRADIEND update added to its weights: a GRADIEND "
        "autoencoder was trained on the base model's gradients for the feature below, and its "
        "decoder output, scaled by the learning rate, was added to the mapped parameters. The "
        "learning rate and feature factor were chosen on a grid by their effect on the target "
        "class's probability while keeping the language modelling score (LMS) on neutral text.\n\n"
        "| | |\n|---|---|\n" + table + "\n\n"
        f"Machine-readable: `{PROVENANCE_FILE}`.\n\n"
        "## Base model\n\n" + _base_model_text(source) + "\n\n"
        "## License\n\n" + _license_text(source) + "\n\n"
        "## Limitations\n\n" + _limitations(facts, metric) + "\n\n"
        "## Citation\n\nIf you use this model, cite the GRADIEND papers and the software:\n\n"
        f"```bibtex\n{CITATION_BIBTEX}\n```\n"
    )


def _front_matter(source: Mapping) -> str:
    """Hub card metadata: ``base_model`` only where it is a Hub id (the Hub resolves nothing else)."""
    lines = ["---", "library_name: transformers", f"license: {source['license'] or 'other'}"]
    if source["kind"] == "hub":
        lines += [f"base_model: {source['reference']}", "base_model_relation: finetune"]
    return "\n".join(lines + ["tags:", "- gradiend", "- model-editing", "---", ""])


def _base_model_text(source: Mapping) -> str:
    digests = "; ".join(f"`{name}` SHA-256 `{digest}`" for name, digest in source["weights_sha256"].items())
    weights = f" Its weights: {digests}." if digests else ""
    if source["kind"] == "hub":
        return (f"[`{source['reference']}`](https://huggingface.co/{source['reference']}) on the Hugging Face "
                f"Hub.{weights}")
    if source["kind"] == "built":
        return (f"`{source['reference']}`, a small model built from scratch by {source['built_by']}, "
                f"saved at `{source['folder']}`; rerunning that step rebuilds the same weights.{weights}")
    return f"The local model folder `{source['folder']}`.{weights}"


def _license_text(source: Mapping) -> str:
    if source["kind"] == "built":
        return (f"`{source['license']}`: the base model was built by this project's pipeline, which is "
                "licensed under it.")
    if source["license"]:
        return (f"`{source['license']}`, the base model's license (read from its model card): this model is "
                "a derivative of the base model's weights and is bound by it.")
    return ("`other`: the base model's license applies, since this model is a derivative of its weights; "
            "its folder states none, so check the base model's terms before you share this model.")


def _limitations(facts: Mapping, metric: str) -> str:
    fallback = ("\n- No grid cell kept the LMS threshold, so the smallest learning rate was taken: the "
                "rewrite may not reach the intended effect." if facts["selection_fallback"] else "")
    demo = ("\n- The base model is a tiny model trained on a generated demo corpus: it shows how the pipeline "
            "works and is not a language model for any use." if facts["base_model_source"]["kind"] == "built"
            else "")
    return (
        f"- The effect was measured as {metric}, on the held-out rows of the data the GRADIEND was trained on; "
        "other words, phrasings, languages or domains may shift less, or the other way."
        "\n- Damage was measured as the LMS on neutral rows of the same corpus. It does not show that other "
        "capabilities (knowledge, reasoning, safety behaviour, generation quality) are unchanged; evaluate them "
        "before you deploy this model."
        "\n- One GRADIEND neuron captures one direction of one feature as the training data define it; "
        "weakening a bias on these words does not make the model unbiased."
        + fallback + demo
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
                         feature_description: str | None = None, base: Mapping | None = None) -> Path:
    """Rewrite the base model with the entry's cell and save it (weights, tokenizer, card) to ``out_dir``;
    ``base`` as in :func:`rewrite_provenance`."""
    facts = rewrite_provenance(model_with_gradiend, summary_entry, feature_description, base)
    rewritten = model_with_gradiend.rewrite_base_model(facts["learning_rate"], facts["feature_factor"], part=facts["part"])
    with atomic_dir(out_dir) as tmp:
        rewritten.save_pretrained(tmp)
        if model_with_gradiend.tokenizer is not None:
            model_with_gradiend.tokenizer.save_pretrained(tmp)
            _fix_tokenizer_limit(tmp, rewritten)
        (tmp / CARD_FILE).write_text(model_card(facts), encoding="utf-8")
        (tmp / PROVENANCE_FILE).write_text(to_json_text(facts), encoding="utf-8")
    return Path(out_dir)
