"""Where a base model comes from, told so that another lab can get the same weights.

A rewritten model is a derivative of its base model: its card must name a base model a reader can
resolve (a Hub id, or a local folder with the SHA-256 of its weights, or the pipeline step that built
it) and the license that binds the derivative, which is the base model's own. Nothing here loads
weights or needs the network: a Hub id is looked up in the local cache only.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from gradiend.model.base_reference import weight_digests

CARD_FILE = "README.md"
# The project's own license: what a model built from scratch by this pipeline (a demo model) carries.
PROJECT_LICENSE = "apache-2.0"


def model_folder(reference: str) -> Path | None:
    """A local model folder, or the cached snapshot of a Hub id (None when neither exists)."""
    path = Path(reference).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(reference, local_files_only=True))
    except Exception:  # not cached, not a valid id, or no huggingface_hub: nothing to read
        return None


def card_metadata(folder: Path | None) -> dict:
    """The YAML front matter of a Hugging Face model card (``README.md``) in ``folder``; ``{}`` if none."""
    path = Path(folder) / CARD_FILE if folder is not None else None
    if path is None or not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    header, closed, _ = text[4:].partition("\n---") if text.startswith("---\n") else ("", "", "")
    if not closed:
        return {}
    try:
        found = yaml.safe_load(header)
    except yaml.YAMLError:
        return {}
    return found if isinstance(found, dict) else {}


def describe_base_model(reference: str, folder: str | Path | None = None, built_by: str | None = None) -> dict:
    """What a card states about the base model.

    ``reference`` is what the user named (a Hub id or a local path); ``folder`` is where the weights
    were loaded from (default: ``reference`` itself, or its Hub cache snapshot); ``built_by`` says
    which step built the model when this pipeline made it (a demo model), which then carries the
    project's license. Returns ``{"reference", "kind": "hub" | "local" | "built", "folder",
    "weights_sha256": {file: digest}, "license"}`` (``license`` None when the base model states none).
    """
    found = model_folder(str(folder if folder is not None else reference))
    if built_by:
        kind, license_ = "built", PROJECT_LICENSE
    else:
        kind = "local" if Path(str(reference)).expanduser().is_dir() else "hub"
        license_ = card_metadata(found).get("license")
    return {"reference": str(reference), "kind": kind,
            "folder": str(Path(found).resolve()) if found is not None else None,
            "weights_sha256": weight_digests(found) if found is not None else {},
            "license": str(license_) if license_ else None, "built_by": built_by}
