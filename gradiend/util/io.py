"""Atomic, deterministic file writers, and readers that name a corrupt file and how to rebuild it.

Every artefact is written to a temporary name in its own folder and renamed into place, so a
killed job never leaves a file that looks complete (docs/design.md §1). JSON and Parquet are written
deterministically so that the same inputs give byte-identical files. The temporary file or folder
gets the permissions an ordinary ``open``/``mkdir`` would give under the process's umask (``mkstemp``
alone would leave 0600 files and 0700 folders that nobody else on a shared cluster can read), and so
does everything written into an atomic folder, whoever wrote it.

A file the readers cannot parse (truncated JSON, Parquet or safetensors) is one ``ValueError``
naming the file and, for a workflow output, the rule that writes it and the command that rebuilds
it (``snakemake --forcerun <rule>``).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

PathLike = str | os.PathLike


def written_as_path(name: str) -> bool:
    """A name written as a filesystem path (``/x``, ``./x``, ``../x``, ``~/x``): never a Hugging Face id,
    which cannot start with ``.``, ``~`` or ``/``."""
    return os.path.isabs(name) or str(name).startswith((".", "~"))

# Workflow outputs (paths relative to results/<experiment>/ or results/) -> the rule that writes them.
_PRODUCERS: tuple[tuple[str, str], ...] = (
    (r"(^|/)_demo/corpus\.txt$", "demo_corpus"),
    (r"(^|/)_demo/models/[^/]+(/|$)", "demo_model"),
    (r"(^|/)data/(training\.parquet|summary\.json)$", "create_training_data"),
    (r"(^|/)data/neutral\.parquet$", "create_neutral_data"),
    (r"(^|/)prune/[^/]+$", "pre_prune"),
    (r"(^|/)seeds/\d+/model(/|$)", "train_seed"),
    (r"(^|/)seeds/\d+/encoder/[^/]+$", "evaluate_encoders"),
    (r"(^|/)best/(seed\.json|model(/|$))", "select_seed"),
    (r"(^|/)decoder/cells/[^/]+\.json$", "decoder_grid"),
    (r"(^|/)decoder/(summary\.json|probability_shifts\.png)$", "select_cell"),
    (r"(^|/)rewritten/[^/]+(/|$)", "rewrite_models"),
    (r"(^|/)provenance\.json$", "provenance"),
    (r"(^|/)summary\.(csv|tex)$", "summary"),
)
# The rule on a cluster, where the scoring jobs fan out (the workflow's `job_layout`).
_FAN_OUT_RULES = {"evaluate_encoders": "evaluate_encoder", "decoder_grid": "decoder_cell",
                  "rewrite_models": "rewrite_model"}


def producing_rule(path: PathLike) -> str | None:
    """The workflow rule that writes ``path`` (judged by its place under the results folder), if any."""
    text = Path(path).as_posix()
    for pattern, rule in _PRODUCERS:
        if re.search(pattern, text):
            return rule
    return None


def rebuild_hint(path: PathLike) -> str:
    """How to rebuild ``path``: the ``snakemake --forcerun`` command of its rule, or a plain hint."""
    rule = producing_rule(path)
    if rule is None:
        return "write it again or restore it from a good copy"
    hint = f"it is written by the workflow rule `{rule}`; rebuild it with `snakemake --forcerun {rule}`"
    return hint + (f" (`{_FAN_OUT_RULES[rule]}` when the jobs fan out)" if rule in _FAN_OUT_RULES else "")


def corrupt_file_error(path: PathLike, kind: str, error: BaseException) -> ValueError:
    """A ``ValueError`` naming a file that is not readable as ``kind``, and how to rebuild it."""
    detail = " ".join(str(error).split())[:300]
    return ValueError(f"{path} is not a readable {kind} file ({type(error).__name__}: {detail}); it may be "
                      f"truncated or damaged: {rebuild_hint(path)}")


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, directory: bool) -> None:
    """Give a ``mkstemp``/``mkdtemp`` result the mode ``open``/``mkdir`` would have given it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def _usual_modes_inside(folder: Path) -> None:
    """Give everything written into ``folder`` the usual mode: third-party writers such as
    transformers' ``save_pretrained`` write ``model.safetensors`` through ``mkstemp`` (0600), which
    colleagues on a shared cluster could not read."""
    for entry in folder.rglob("*"):
        if not entry.is_symlink():
            _usual_mode(entry, directory=entry.is_dir())


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        _usual_mode(tmp_path, directory=False)
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _usual_mode(tmp_dir, directory=True)
        yield tmp_dir
        _usual_modes_inside(tmp_dir)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp_dir, target)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)


def _json_default(value: Any) -> Any:
    """Make numpy / torch scalars and paths JSON-serialisable."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def to_json_text(obj: Any) -> str:
    """Canonical JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=True) + "\n"


def write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as canonical JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(to_json_text(obj), encoding="utf-8")
    return Path(path)


def read_json(path: PathLike) -> Any:
    """Read a JSON file; unparsable content is one ``ValueError`` naming the file and its rebuild."""
    with open(path, encoding="utf-8", errors="strict") as handle:
        try:
            return json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise corrupt_file_error(path, "JSON", error) from error


def write_parquet(frame, path: PathLike) -> Path:
    """Write a DataFrame as Parquet without the pandas index, atomically and deterministically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(None)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)
    return Path(path)


def read_parquet(path: PathLike, required_columns: tuple[str, ...] = ()):
    """Read a Parquet file; a missing file or column is one clear error naming it."""
    import pandas as pd

    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Parquet file not found: {path}")
    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise corrupt_file_error(path, "Parquet", error) from error
    missing = [c for c in required_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def save_safetensors(tensors: dict, path: PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Save a dict of tensors with safetensors, atomically (contiguous CPU copies)."""
    from safetensors.torch import save_file

    ready = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(ready, str(tmp), metadata=metadata)
    return Path(path)


def load_safetensors(path: PathLike, device: str = "cpu") -> dict:
    """Load a safetensors file; a missing or corrupt file is one clear error naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"safetensors file not found: {path}")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        raise corrupt_file_error(path, "safetensors", err) from err


def iter_safetensors(path: PathLike, device: str = "cpu") -> Iterator[tuple[str, Any]]:
    """``(name, tensor)`` of a safetensors file one at a time (only one tensor in memory), with the
    errors of :func:`load_safetensors`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"safetensors file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device=device) as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name)
    except (SafetensorError, OSError, ValueError) as err:
        raise corrupt_file_error(path, "safetensors", err) from err
