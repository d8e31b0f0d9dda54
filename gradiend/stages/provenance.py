"""The ``provenance`` stage: how an experiment's results were made, without timestamps.

An unchanged environment, config and input data give a byte-identical file, so a diff of two
``provenance.json`` files shows exactly what differs between two runs.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Mapping

from gradiend.model.base_reference import sha256_file, weight_digests
from gradiend.model.base_source import model_folder

PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "datasets", "numpy", "pandas", "pyarrow",
            "matplotlib", "spacy", "snakemake", "huggingface_hub")


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit checked out in the repository holding this library, or None."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[2],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def devices() -> list[str]:
    """``cpu`` and every visible CUDA device by name."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    return found


def model_hashes(reference: str) -> dict:
    """SHA-256 of the base model's weight files and config, by file name."""
    folder = model_folder(reference)
    if folder is None:
        return {"found": False, "files": {}}
    files = weight_digests(folder)
    if (folder / "config.json").is_file():
        files["config.json"] = sha256_file(folder / "config.json")
    return {"found": True, "files": dict(sorted(files.items()))}


def provenance(config: dict, *, inputs: Mapping[str, str | None], provenance_file: str) -> None:
    """Record how an experiment's results were made.

    Config: the whole resolved experiment (without ``resources``).
    Reads ``inputs``: ``{name: file}`` of the experiment's input data (``texts`` when the raw texts
    are a local file, ``training``, ``neutral``); each is hashed. The base model
    (``base_model_path``: a local folder, or the Hub cache's snapshot of an id) has its weight files
    and ``config.json`` hashed.
    Writes ``provenance_file``: JSON ``{"experiment", "config", "gradiend_version", "python",
    "platform", "packages": {torch, transformers, ...}, "git_commit" (or null), "devices",
    "inputs": {name: {"file", "sha256"}}, "base_model": {"reference", "found", "files": {name:
    sha256}}}`` (no timestamps, so an unchanged environment gives the same file).
    """
    from gradiend import __version__
    from gradiend.util.io import write_json

    hashed = {name: {"file": Path(path).name, "sha256": sha256_file(path)}
              for name, path in sorted(inputs.items()) if path is not None}
    write_json(provenance_file, {
        "experiment": config["name"],
        "config": config,
        "gradiend_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "devices": devices(),
        "inputs": hashed,
        "base_model": {"reference": config["base_model"], **model_hashes(config["base_model_path"])},
    })
