"""Parquet tables + summary.json, and reading base data from every accepted source."""
import json

import pandas as pd
import pytest

from gradiend.data.base_loader import resolve_base_data
from gradiend.data.tables import (
    data_summary,
    read_neutral_data,
    read_training_data,
    write_neutral_data,
    write_training_data,
)

TABLE = pd.DataFrame({
    "masked": ["[MASK] ran.", "[MASK] sat.", "[MASK] ran.", "[MASK] sat."],
    "split": ["train", "test", "train", "validation"],
    "factual": ["He", "she", "they", "They"],
    "alternative": ["They", "they", "he", "She"],
    "factual_class": ["SG", "SG", "PL", "PL"],
    "alternative_class": ["PL", "PL", "SG", "SG"],
    "label": [-1, -1, 1, 1],
    "text": ["He ran.", "she sat.", "they ran.", "They sat."],
})


def test_training_table_round_trip_with_summary(tmp_path):
    path = tmp_path / "data" / "training.parquet"
    write_training_data(TABLE[["text", *TABLE.columns[:-1]]], path, summary_path=tmp_path / "data" / "summary.json")
    loaded = read_training_data(path)
    assert list(loaded.columns) == list(TABLE.columns)  # required columns first, extras after
    assert loaded.equals(TABLE)
    summary = json.loads((tmp_path / "data" / "summary.json").read_text())
    assert summary == data_summary(TABLE)
    assert summary["rows_per_class_and_split"] == {"PL": {"train": 1, "validation": 1}, "SG": {"test": 1, "train": 1}}
    assert summary["rows_per_split"] == {"test": 1, "train": 2, "validation": 1}
    assert summary["factual_tokens_per_class"] == {"PL": {"they": 2}, "SG": {"he": 1, "she": 1}}
    assert summary["target_classes"] == ["PL", "SG"] and summary["rows"] == 4


def test_writing_twice_gives_identical_bytes(tmp_path):
    write_training_data(TABLE, tmp_path / "a.parquet")
    write_training_data(TABLE.copy(), tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_missing_column_names_column_and_file(tmp_path):
    with pytest.raises(ValueError, match="missing required column 'alternative'"):
        write_training_data(TABLE.drop(columns=["alternative"]), tmp_path / "x.parquet")
    TABLE.drop(columns=["label"]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad.parquet: missing required column 'label'"):
        read_training_data(tmp_path / "bad.parquet")
    with pytest.raises(FileNotFoundError, match="nothing.parquet"):
        read_training_data(tmp_path / "nothing.parquet")


def test_neutral_round_trip(tmp_path):
    write_neutral_data(["A cat sat.", "Rain fell."], tmp_path / "neutral.parquet")
    assert list(read_neutral_data(tmp_path / "neutral.parquet")["text"]) == ["A cat sat.", "Rain fell."]
    pd.DataFrame({"sentence": ["x"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="missing required column 'text'"):
        read_neutral_data(tmp_path / "bad.parquet")


# ----------------------------------------------------------------------------- base data sources
TEXTS = ["One line.", "Two words here.", "Three is a crowd."]


def test_list_is_stripped_shuffled_with_the_seed_and_capped():
    texts = resolve_base_data([" a ", "", "b", None, "c"], seed=None)
    assert texts == ["a", "b", "c"]
    shuffled = resolve_base_data([str(i) for i in range(20)], seed=3)
    assert shuffled == resolve_base_data([str(i) for i in range(20)], seed=3) != [str(i) for i in range(20)]
    assert len(resolve_base_data([str(i) for i in range(20)], max_size=5)) == 5


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".tsv", ".parquet", ".jsonl"])
def test_files_by_suffix(tmp_path, suffix):
    path = tmp_path / f"base{suffix}"
    frame = pd.DataFrame({"text": TEXTS, "other": [1, 2, 3]})
    if suffix == ".txt":
        path.write_text("\n".join(TEXTS) + "\n\n")
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    assert resolve_base_data(path, seed=None) == TEXTS


def test_dataframe_and_text_column():
    frame = pd.DataFrame({"sentence": TEXTS})
    assert resolve_base_data(frame, text_column="sentence", seed=None) == TEXTS
    with pytest.raises(ValueError, match="no text column 'text'; found \\['sentence'\\]"):
        resolve_base_data(frame)


def test_unknown_format_missing_file_and_empty_data_are_clear_errors(tmp_path):
    (tmp_path / "base.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"base.xlsx has the suffix '.xlsx', which names no supported format"):
        resolve_base_data(tmp_path / "base.xlsx")
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        resolve_base_data(str(tmp_path / "absent.csv"))
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        resolve_base_data(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="texts must be strings"):
        resolve_base_data(["ok", 3])
    with pytest.raises(ValueError, match="base_data must be"):
        resolve_base_data(42)


def test_saved_dataset_and_csv_dataset_folders(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": TEXTS}).save_to_disk(str(tmp_path / "saved"))
    assert resolve_base_data(str(tmp_path / "saved"), seed=None) == TEXTS
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": TEXTS}),
                          "test": datasets.Dataset.from_dict({"text": ["held out"]})}).save_to_disk(str(tmp_path / "dd"))
    assert resolve_base_data(str(tmp_path / "dd"), split="test") == ["held out"]
    with pytest.raises(ValueError, match="no split 'validation'"):
        resolve_base_data(str(tmp_path / "dd"), split="validation")
    (tmp_path / "csvdir").mkdir()
    pd.DataFrame({"text": TEXTS}).to_csv(tmp_path / "csvdir" / "part.csv", index=False)
    assert resolve_base_data(str(tmp_path / "csvdir"), seed=None) == TEXTS


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(ValueError, match="could not load dataset 'someone/not-here'.*network access"):
        resolve_base_data("someone/not-here")
