"""Training data from where a user keeps it, as a merged table (one table with a class column) or
per-class frames (a dict, or a dataset with one config per class); :mod:`.ingest` samples and labels.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

from gradiend.data.base_loader import is_saved_dataset_dir, load_hf_dataset, looks_like_path, read_table_file
from gradiend.util.logging import get_logger

logger = get_logger(__name__)

TRAINING_FILE_NAMES = ("training.parquet", "training.csv")


def _dataset_to_frame(dataset, split_col: str):
    """A DataFrame from a Dataset, or from a DatasetDict or ``{split: Dataset}`` (splits concatenated, the
    split name in ``split_col`` unless the data has that column)."""
    import pandas as pd

    if hasattr(dataset, "to_pandas"):
        return dataset.to_pandas()
    frames = {name: part.to_pandas() for name, part in dataset.items()}
    return pd.concat([frame if split_col in frame.columns else frame.assign(**{split_col: name})
                      for name, frame in frames.items()], ignore_index=True)


def load_hf_merged(source: str, subset: Optional[str], splits: Optional[Sequence[str]], split_col: str):
    """A merged table from a dataset id or folder; ``splits=None`` loads every split."""
    if splits is None:
        return _dataset_to_frame(load_hf_dataset(source, subset, split=None), split_col)
    return _dataset_to_frame({split: load_hf_dataset(source, subset, split=split) for split in splits}, split_col)


def _config_names(source: str) -> list[str]:
    import datasets

    try:
        return list(datasets.get_dataset_config_names(source))
    except Exception as err:  # offline hub ids fail with several exception types
        raise ValueError(f"could not read the configs of dataset {source!r}: {err}. Hub ids need network "
                         f"access; offline, use a local file or dataset folder.") from err


def read_training_source(
    data: Any,
    *,
    hf_dataset: Optional[str] = None,
    hf_subset: Optional[str] = None,
    hf_splits: Optional[Sequence[str]] = None,
    classes: Optional[Sequence[str]] = None,
    split_col: str = "split",
):
    """``("merged", DataFrame)`` or ``("per_class", {class: DataFrame})`` from any accepted source."""
    import pandas as pd

    if hf_dataset is not None:
        return "merged", load_hf_merged(hf_dataset, hf_subset, hf_splits, split_col)
    if data is None:
        raise ValueError("no training data: set 'data' (DataFrame, dict, path or dataset id) or 'hf_dataset'")
    if isinstance(data, pd.DataFrame):
        return "merged", data
    if isinstance(data, dict):
        bad = [k for k, v in data.items() if not isinstance(v, pd.DataFrame)]
        if bad:
            raise ValueError(f"data dict: the value for class {bad[0]!r} is not a DataFrame")
        if not data:
            raise ValueError("data dict is empty: give one DataFrame per class")
        return "per_class", dict(data)
    if not isinstance(data, (str, os.PathLike)):
        raise ValueError(f"data must be a DataFrame, a dict of DataFrames, a path or a dataset id, "
                         f"got {type(data).__name__}")
    source = str(data)
    path = Path(source).expanduser()
    if path.is_file():
        return "merged", read_table_file(path)
    if path.is_dir():
        for name in TRAINING_FILE_NAMES:
            if (path / name).is_file():
                return "merged", read_table_file(path / name)
        if is_saved_dataset_dir(path):
            return "merged", _dataset_to_frame(load_hf_dataset(source, split=None), split_col)
    elif looks_like_path(source):
        raise FileNotFoundError(f"training data file not found: {path}")
    names = _config_names(source)
    wanted = list(classes) if classes else names
    if len(names) > 1 and all(c in names for c in wanted):
        logger.info("loading %s as one dataset config per class: %s", source, wanted)
        return "per_class", {name: _dataset_to_frame(load_hf_dataset(source, name, split=None), split_col)
                             for name in wanted}
    return "merged", load_hf_merged(source, hf_subset, hf_splits, split_col)
