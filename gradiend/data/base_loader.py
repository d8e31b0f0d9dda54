"""Raw texts from a list, a DataFrame, a text/CSV/Parquet/JSONL file (format by suffix; text, CSV and
JSON(L) also compressed, ``corpus.txt.gz``; an unknown one is an error), a local dataset folder or a
Hugging Face dataset id; stripped, shuffled with a seed, capped.

A dataset id or data-file folder read with a cap (``max_size``) is *streamed* through a seeded
shuffle buffer and reading stops at ``max_size`` texts, so a 20 GB dump is never downloaded whole.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import math
import os
import random
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from gradiend.data.mask_token import drop_texts_with_mask
from gradiend.util.io import written_as_path
from gradiend.util.logging import get_logger

logger = get_logger(__name__)

TEXT_FILE_SUFFIXES = (".txt", ".text")
TABLE_FILE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".json")
SUPPORTED_SUFFIXES = TEXT_FILE_SUFFIXES + TABLE_FILE_SUFFIXES
# Compressions a text, CSV/TSV or JSON(L) file may carry (``corpus.txt.gz``): suffix -> name (pandas'
# too). Parquet compresses inside the file.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}
DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError)  # not gzip, truncated, damaged
PARQUET_SUFFIXES = (".parquet", ".pq")
DEFAULT_STREAM_BUFFER_SIZE = 10_000


def file_format(path) -> tuple[str, Optional[str]]:
    """``(format suffix, compression)`` of a data file by its name: ``corpus.txt.gz`` -> ``(".txt", "gzip")``,
    ``texts.csv`` -> ``(".csv", None)``."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        return (suffixes[-2] if len(suffixes) > 1 else ""), COMPRESSIONS[suffixes[-1]]
    return (suffixes[-1] if suffixes else ""), None


def unknown_format_message(path) -> Optional[str]:
    """Why the name of the data file ``path`` names no format it can be read as (None: it names one)."""
    suffix, compression = file_format(path)
    if suffix in PARQUET_SUFFIXES and compression:
        return f"{path} is a compressed Parquet file: Parquet compresses inside the file, so give it uncompressed"
    if suffix not in SUPPORTED_SUFFIXES:
        written = "".join(Path(path).suffixes[-2 if compression else -1:]) or "(none)"
        return (f"{path} has the suffix {written!r}, which names no supported format ({', '.join(SUPPORTED_SUFFIXES)}; "
                f"all but Parquet also compressed as {', '.join(COMPRESSIONS)}, e.g. corpus.txt.gz)")
    return None


def not_utf8_error(path: Path, error: UnicodeDecodeError) -> ValueError:
    byte = error.object[error.start:error.start + 1]
    suffix, compression = file_format(path)
    convert = (f"`iconv -f latin1 -t utf-8 {path.name} > fixed{suffix}`" if compression is None else
               f"decompress it, convert it with `iconv -f latin1 -t utf-8` and compress it again")
    return ValueError(
        f"{path} is not UTF-8 text (byte 0x{byte.hex()} at offset {error.start} is invalid in {error.encoding}"
        f"{', after decompressing' if compression else ''}); texts are read as UTF-8: convert the file, e.g. {convert}")


def _unreadable(path: Path, error: BaseException) -> ValueError:
    suffix, compression = file_format(path)
    what = f"{compression}-compressed {suffix.lstrip('.')}" if compression else suffix.lstrip(".")
    return ValueError(f"{path} is not a readable {what} file "
                      f"({type(error).__name__}: {' '.join(str(error).split())[:200]})")


def _open_binary(path: Path, compression: Optional[str]):
    return {None: open, "gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}[compression](path, "rb")


def _is_empty(path: Path, compression: Optional[str]) -> bool:
    """True for a file of 0 bytes, or a compressed one that holds 0 bytes."""
    if compression is None:
        return path.stat().st_size == 0
    try:
        with _open_binary(path, compression) as handle:
            return not handle.read(1)
    except DECOMPRESSION_ERRORS as error:
        raise _unreadable(path, error) from None


def read_text_file(path: Path) -> list[str]:
    """The lines of a (possibly compressed) UTF-8 text file; not UTF-8 or not decompressible: an error naming it."""
    try:
        with _open_binary(path, file_format(path)[1]) as handle:
            return handle.read().decode("utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise not_utf8_error(path, error) from None
    except DECOMPRESSION_ERRORS as error:
        raise _unreadable(path, error) from None


def read_table_file(path: Path):
    """A DataFrame from a CSV/TSV/Parquet/JSON(L) file (CSV/TSV/JSON(L) possibly compressed), chosen by
    suffix. An empty file, a table with a header but no rows, text that is not UTF-8, or an unreadable
    file is one error naming the file."""
    import pandas as pd
    from pandas.errors import EmptyDataError, ParserError

    suffix, compression = file_format(path)
    if suffix not in TABLE_FILE_SUFFIXES or (compression and suffix in PARQUET_SUFFIXES):
        raise ValueError(unknown_format_message(path) or f"{path} is not a table file "
                         f"({', '.join(TABLE_FILE_SUFFIXES)})")
    if path.is_file() and _is_empty(path, compression):
        raise ValueError(f"{path} is empty (0 bytes{' after decompressing' if compression else ''}): it holds no texts")
    try:
        if suffix in (".csv", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False,
                                compression=compression)
        elif suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=suffix == ".jsonl", compression=compression)
    except UnicodeDecodeError as error:
        raise not_utf8_error(path, error) from None
    except EmptyDataError:
        raise ValueError(f"{path} holds no header and no rows") from None
    except (ParserError, ValueError, *DECOMPRESSION_ERRORS) as error:
        if str(path) in str(error):
            raise
        raise _unreadable(path, error) from error
    if len(frame) == 0:
        raise ValueError(f"{path} has a header ({list(frame.columns)}) but no rows: it holds no texts")
    return frame


def looks_like_path(value: str) -> bool:
    """True for strings that name a file rather than a hub id (known suffix or explicit path prefix)."""
    return file_format(value)[0] in SUPPORTED_SUFFIXES or written_as_path(value)


def is_saved_dataset_dir(path: Path) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _import_datasets(source: str):
    try:
        import datasets
    except ImportError as err:
        raise ImportError(f"loading {source!r} needs the `datasets` package: pip install gradiend[data]") from err
    return datasets


def _load_dataset(source: str, hf_config: Optional[str], split: Optional[str], streaming: bool = False):
    datasets = _import_datasets(source)
    try:
        return datasets.load_dataset(str(source), name=hf_config, split=split, streaming=streaming)
    except Exception as err:  # datasets raises many types (ConnectionError, FileNotFoundError, ...)
        raise ValueError(
            f"could not {'stream' if streaming else 'load'} dataset {source!r} (config={hf_config!r}, "
            f"split={split!r}): {err}. Hub ids need network access; offline, use a local file or dataset "
            f"folder.") from err


def _require_column(columns: Sequence[str], text_column: str, source: str) -> None:
    if text_column not in columns:
        raise ValueError(f"{source}: no text column {text_column!r}; found {list(columns)}")


def load_hf_dataset(source: str, hf_config: Optional[str] = None, split: Optional[str] = "train"):
    """A ``datasets`` Dataset (or DatasetDict when ``split`` is None) from a saved folder or an id."""
    datasets = _import_datasets(source)
    path = Path(source).expanduser()
    if path.is_dir() and is_saved_dataset_dir(path):
        loaded = datasets.load_from_disk(str(path))
        if split is not None and isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"{path}: no split {split!r}; found {sorted(loaded)}")
            return loaded[split]
        return loaded
    return _load_dataset(source, hf_config, split)


def stream_hf_texts(source: str, text_column: str, max_size: int, seed: Optional[int],
                    hf_config: Optional[str] = None, split: str = "train",
                    buffer_size: int = DEFAULT_STREAM_BUFFER_SIZE) -> list[str]:
    """The first ``max_size`` non-empty stripped texts of a streamed dataset, through a shuffle buffer
    of ``buffer_size`` rows seeded with ``seed`` (shard order too; ``None``: stream order)."""
    if max_size < 1:
        raise ValueError(f"max_size must be at least 1 to stream {source!r}, got {max_size}")
    stream = _load_dataset(source, hf_config, split, streaming=True)
    if getattr(stream, "column_names", None) is not None:
        _require_column(stream.column_names, text_column, source)
    if seed is not None:
        stream = stream.shuffle(seed=seed, buffer_size=buffer_size)

    def values():
        for row in stream:
            _require_column(sorted(row), text_column, source)
            yield row[text_column]

    texts = _non_empty_texts(values(), source, max_size)
    logger.info("base data: %d texts streamed from %s (shuffle buffer %s)", len(texts), source,
                buffer_size if seed is not None else "off")
    return texts


def _streams(base_data: Any, max_size: Optional[int]) -> bool:
    """True when ``base_data`` is a dataset id or a data-file folder read with a cap (streamed)."""
    if max_size is None or not isinstance(base_data, (str, os.PathLike)):
        return False
    path = Path(str(base_data)).expanduser()
    if path.is_file() or (path.is_dir() and is_saved_dataset_dir(path)):
        return False
    return path.is_dir() or not looks_like_path(str(base_data))


def _raw_texts(base_data: Any, text_column: str, hf_config: Optional[str], split: str) -> tuple[list, str]:
    """(texts, description of the source) for every accepted kind of base data."""
    import pandas as pd

    if isinstance(base_data, (str, os.PathLike)):
        source = str(base_data)
        path = Path(source).expanduser()
        unknown = unknown_format_message(path) if path.is_file() else None
        if unknown:
            raise ValueError(unknown)
        if path.is_file() and file_format(path)[0] in TEXT_FILE_SUFFIXES:
            return read_text_file(path), source
        if not path.is_file() and not path.is_dir() and looks_like_path(source):
            raise FileNotFoundError(f"base data file not found: {path}")
        table = read_table_file(path) if path.is_file() else load_hf_dataset(source, hf_config, split)
    elif isinstance(base_data, pd.DataFrame):
        table, source = base_data, "base DataFrame"
    elif hasattr(base_data, "column_names") and hasattr(base_data, "to_pandas"):  # a datasets.Dataset
        table, source = base_data.to_pandas(), "base Dataset"
    elif isinstance(base_data, Sequence):
        return list(base_data), "base text list"
    else:
        raise ValueError(f"base_data must be a list of strings, a DataFrame, a file path or a dataset id, "
                         f"got {type(base_data).__name__}")
    if isinstance(table, pd.DataFrame):
        _require_column(table.columns, text_column, source)
        return table[text_column].tolist(), source
    _require_column(table.column_names, text_column, source)
    return list(table[text_column]), source


def resolve_base_data(
    base_data: Any,
    text_column: str = "text",
    max_size: Optional[int] = None,
    seed: Optional[int] = 42,
    hf_config: Optional[str] = None,
    split: str = "train",
    stream_buffer_size: int = DEFAULT_STREAM_BUFFER_SIZE,
) -> list[str]:
    """The base texts: stripped, empties and those holding ``[MASK]`` dropped, shuffled with
    ``random.Random(seed)`` (``None``: input order), capped at ``max_size`` (a dataset id or data-file
    folder is then streamed, :func:`stream_hf_texts`). Empty base data is an error."""
    streamed = _streams(base_data, max_size)
    if streamed:
        source = str(base_data)
        texts = stream_hf_texts(source, text_column, max_size, seed, hf_config, split, stream_buffer_size)
    else:
        raw, source = _raw_texts(base_data, text_column, hf_config, split)
        texts = _non_empty_texts(raw, source)
    texts = drop_texts_with_mask(texts, source)
    if not texts:
        raise ValueError(f"{source}: every text contains the mask placeholder [MASK]; none can be used")
    if streamed:
        return texts
    if seed is not None:
        random.Random(seed).shuffle(texts)
    if max_size is not None:
        texts = texts[:max_size]
    logger.info("base data: %d texts from %s", len(texts), source)
    return texts


def _non_empty_texts(values: Iterable, source: str, limit: Optional[int] = None) -> list[str]:
    """The first ``limit`` stripped non-empty strings of ``values``; None and NaN are skipped, any
    other non-string is an error, and so is finding no text at all."""
    def stripped():
        for value in values:
            if isinstance(value, str):
                if value.strip():
                    yield value.strip()
            elif not (value is None or (isinstance(value, float) and math.isnan(value))):
                raise ValueError(f"{source}: texts must be strings, got {type(value).__name__} ({value!r})")

    texts = list(islice(stripped(), limit))
    if not texts:
        raise ValueError(f"{source} is empty: it holds no non-empty text")
    return texts
