"""Where a GRADIEND checkpoint finds its base model, written so that a moved results folder still loads.

``config.json`` metadata ``base_model`` holds one of

* a hub id (``"bert-base-uncased"``): any string that is not an existing local path, stored as is;
* a path **relative to the checkpoint folder** (``"../../models/tiny-bert"``) when the base model
  folder and the checkpoint share a folder below the filesystem root ("the same tree"), with
  ``base_model_reference = {"kind": "relative", "sha256": {file: digest}}``;
* an absolute path otherwise (``kind "absolute"``), and in checkpoints written before this format.

The SHA-256 of every ``*.safetensors`` file of the base model folder is recorded and checked on
load, so a path that resolves to other weights is an error instead of a silent mismatch. A
relative path that does not resolve from the checkpoint (the checkpoint was copied to another depth
of the same tree, e.g. ``seeds/0/model`` → ``best/model``) is looked up below each ancestor of the
checkpoint, and accepted only when the weights' digests match.
"""
from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path
from typing import Any, Mapping

REFERENCE_KEY = "base_model_reference"


class BaseModelLocationError(FileNotFoundError):
    """The base model recorded in a GRADIEND checkpoint cannot be found (or has other weights)."""


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def weight_digests(folder: Path) -> dict[str, str]:
    """``{file name: SHA-256}`` of the ``*.safetensors`` files of a model folder (sorted by name)."""
    return {p.name: sha256_file(p) for p in sorted(Path(folder).glob("*.safetensors")) if p.is_file()}


def _same_tree(a: Path, b: Path) -> bool:
    try:
        common = Path(os.path.commonpath([a, b]))
    except ValueError:  # different drives
        return False
    return common != Path(common.anchor)


def make_reference(name_or_path: Any, checkpoint_dir, digests: bool = True) -> tuple[str | None, dict | None]:
    """``(value for metadata, reference info or None)`` for a base model id or local folder."""
    if name_or_path is None:
        return None, None
    path = Path(str(name_or_path)).expanduser()
    if not path.exists():
        return str(name_or_path), None  # a hub id
    path, checkpoint = path.resolve(), Path(checkpoint_dir).resolve()
    info: dict[str, Any] = {"kind": "absolute"}
    value = str(path)
    if _same_tree(path, checkpoint):
        info["kind"], value = "relative", Path(os.path.relpath(path, checkpoint)).as_posix()
    if digests and path.is_dir():
        info["sha256"] = weight_digests(path)
    return value, info


def _matches(folder: Path, expected: Mapping[str, str] | None) -> bool:
    return not expected or weight_digests(folder) == dict(expected)


def resolve_reference(metadata: Mapping[str, Any], checkpoint_dir) -> str | None:
    """The base model id or an existing local folder recorded in checkpoint ``metadata``.

    Raises :class:`BaseModelLocationError` naming the checkpoint and the expected path when a
    recorded local base model is not where the checkpoint says (or has different weights).
    """
    value = metadata.get("base_model")
    if not value:
        return None
    info = metadata.get(REFERENCE_KEY) or {}
    checkpoint = Path(checkpoint_dir).resolve()
    expected = info.get("sha256")
    if info.get("kind") == "relative":
        primary = (checkpoint / value).resolve()
        if primary.exists():
            if not _matches(primary, expected):
                raise BaseModelLocationError(
                    f"GRADIEND checkpoint {checkpoint} expects its base model at {primary} ({value!r} relative "
                    f"to the checkpoint), but the weights there have different SHA-256 digests than when it was saved")
            return str(primary)
        tail = Path(*itertools.dropwhile(lambda part: part in ("..", "."), Path(value).parts))
        for ancestor in checkpoint.parents:
            candidate = ancestor / tail
            if str(tail) not in ("", ".") and candidate.is_dir() and _matches(candidate, expected):
                return str(candidate)
        raise BaseModelLocationError(
            f"GRADIEND checkpoint {checkpoint} records its base model at {value!r} relative to itself, i.e. "
            f"{primary}, which does not exist (nor does {tail} below any folder above the checkpoint); "
            "move the base model there or pass base_model=")
    path = Path(str(value))
    if path.is_absolute():
        if not path.exists():
            raise BaseModelLocationError(
                f"GRADIEND checkpoint {checkpoint} records its base model at the absolute path {path}, which "
                "does not exist on this machine; copy the base model there or pass base_model=")
        if not _matches(path, expected):
            raise BaseModelLocationError(
                f"the base model at {path} (recorded by GRADIEND checkpoint {checkpoint}) has weights with "
                "different SHA-256 digests than when the checkpoint was saved")
    return str(value)
