"""TextPredictionConfig / load_training_table: every data form → the unified table, class_merge_map,
target pair inference, splits, and local dataset folders (never the hub)."""
import pandas as pd
import pytest

from gradiend.data.creator import TextPredictionDataCreator
from gradiend.data.filter_config import TextFilterConfig
from gradiend.data.ingest import TextPredictionConfig, load_eval_neutral_data, load_training_table
from gradiend.data.tables import UNIFIED_COLUMNS, write_training_data

SPLITS = ["train"] * 8 + ["validation", "test"]


def class_frame(tokens, template="{} went home.", splits=SPLITS):
    return pd.DataFrame({
        "masked": [template.format("[MASK]") + f" ({i})" for i in range(len(tokens))],
        "factual": tokens,
        "split": splits[: len(tokens)],
    })


@pytest.fixture()
def per_class():
    return {
        "3SG": class_frame(["he", "She", "he", "he", "she", "HE", "he", "she", "he", "she"]),
        "3PL": class_frame(["they"] * 10),
    }


def test_per_class_dict_becomes_unified_with_inferred_alphabetical_pair(per_class):
    table = load_training_table(data=per_class)
    assert list(table.columns[:7]) == list(UNIFIED_COLUMNS)
    assert len(table) == 20
    assert table.attrs["target_classes"] == ["3PL", "3SG"]
    assert set(zip(table["factual_class"], table["label"])) == {("3PL", 1), ("3SG", -1)}
    sg = table[table["factual_class"] == "3SG"]
    assert list(sg["alternative"]) == ["they", "They", "they", "they", "they", "THEY", "they", "they", "they", "they"]
    assert table.groupby(["factual_class", "split"]).size().to_dict()[("3SG", "train")] == 8


def test_explicit_target_classes_flip_the_sign(per_class):
    table = load_training_table({"data": per_class, "target_classes": ["3SG", "3PL"]})
    assert set(zip(table["factual_class"], table["label"])) == {("3PL", -1), ("3SG", 1)}


def test_alternatives_are_seeded_by_random_state():
    tokens = ["he", "she", "it", "he", "she", "it", "he", "she", "it", "he"]
    data = {"SG": class_frame(tokens), "PL": class_frame(["they", "we", "you", "they", "we"] * 2)}
    a = load_training_table(data=data, random_state=1)
    assert a.equals(load_training_table(data=data, random_state=1))
    assert not a["alternative"].equals(load_training_table(data=data, random_state=2)["alternative"])


def test_merged_frame_with_alternatives_keeps_them_and_normalises_split_names():
    frame = pd.DataFrame({
        "masked": ["[MASK] ran."] * 4,
        "factual": ["he", "she", "they", "they"],
        "alternative": ["they", "they", "he", "she"],
        "factual_class": ["SG", "SG", "PL", "PL"],
        "alternative_class": ["PL", "PL", "SG", "SG"],
        "split": ["train", "val", "train", "valid"],
        "label": [7, 7, 7, 7],
    })
    table = load_training_table(data=frame)
    assert list(table["alternative"]) == ["they", "they", "he", "she"]
    assert list(table["split"]) == ["train", "validation", "train", "validation"]
    assert list(table["label"]) == [-1, -1, 1, 1]  # stored labels are recomputed from the pair (PL, SG)


def test_legacy_column_names_of_the_original_package():
    frame = pd.DataFrame({
        "masked": ["[MASK] ran."] * 4, "label": ["he", "she", "they", "they"],
        "label_class": ["SG", "SG", "PL", "PL"], "split": ["train", "test", "train", "test"],
    })
    table = load_training_table(data=frame)
    assert list(table["factual"]) == ["he", "she", "they", "they"]
    assert set(table["alternative"][:2]) == {"they"} and set(table["alternative"][2:]) <= {"he", "she"}


def test_custom_column_names(per_class):
    renamed = {c: f.rename(columns={"masked": "text_with_mask", "split": "fold"}) for c, f in per_class.items()}
    table = load_training_table(data=renamed, masked_col="text_with_mask", split_col="fold")
    assert len(table) == 20 and set(table["split"]) == {"train", "validation", "test"}


def test_missing_split_column_is_split_seeded_by_sentence(per_class):
    data = {c: f.drop(columns=["split"]) for c, f in per_class.items()}
    table = load_training_table(data=data)
    assert table.groupby("factual_class")["split"].value_counts().to_dict()[("3SG", "train")] == 8


def test_split_col_none_holds_out_whole_tokens():
    tokens = ["he", "she", "it", "him", "her"] * 2
    data = {"SG": class_frame(tokens), "PL": class_frame(["they", "them", "we", "us", "you"] * 2)}
    table = load_training_table(data=data, split_col=None)
    assert table.groupby(table["factual"].str.lower())["split"].nunique().max() == 1
    with pytest.raises(ValueError, match="target class '3PL' has no row in split .*only 1 distinct token"):
        load_training_table(data={"3SG": class_frame(tokens), "3PL": class_frame(["they"] * 10)}, split_col=None)


def test_class_merge_map_on_per_class_frames():
    data = {
        "1SG": class_frame(["I"] * 10), "3SG": class_frame(["he"] * 10),
        "1PL": class_frame(["we"] * 10), "3PL": class_frame(["they"] * 10),
    }
    table = load_training_table(data=data, class_merge_map={"singular": ["1SG", "3SG"], "plural": ["1PL", "3PL"]})
    assert table.attrs["target_classes"] == ["singular", "plural"]  # the two keys, in map order
    assert len(table) == 40
    sg = table[table["factual_class"] == "singular"]
    assert set(sg["raw_factual_class"]) == {"1SG", "3SG"} and set(sg["label"]) == {1}
    assert set(sg["alternative"].str.lower()) <= {"we", "they"} and set(sg["alternative_class"]) == {"plural"}
    assert set(table.loc[table["factual_class"] == "plural", "label"]) == {-1}


def test_class_merge_map_on_a_merged_table_drops_same_group_transitions(tmp_path):
    base = (["I left."] * 10 + ["He left."] * 10 + ["We left."] * 10 + ["They left."] * 10)
    creator = TextPredictionDataCreator(base_data=base, feature_targets=[
        TextFilterConfig(target="I", id="1SG"), TextFilterConfig(target="he", id="3SG"),
        TextFilterConfig(target="we", id="1PL"), TextFilterConfig(target="they", id="3PL"),
    ])
    path = tmp_path / "training.parquet"
    creator.generate_training_data(format="unified", output=path)  # 3 rows per sentence
    table = load_training_table(data=str(path), class_merge_map={"singular": ["1SG", "3SG"], "plural": ["1PL", "3PL"]})
    assert len(table) == 80  # the same-group row of each sentence is gone
    assert (table["factual_class"] != table["alternative_class"]).all()
    assert set(zip(table["raw_factual_class"], table["raw_alternative_class"])) >= {("1SG", "1PL"), ("3PL", "1SG")}


@pytest.mark.parametrize(
    "merge_map, message",
    [({"a": ["3SG"], "b": ["3SG"]}, "'3SG' is in both 'a' and 'b'"), ({"a": "3SG"}, "non-empty list"),
     ({"a": ["3SG"], "b": ["2SG"]}, "class '2SG' is not in the data")],
)
def test_bad_class_merge_map(per_class, merge_map, message):
    with pytest.raises(ValueError, match=message):
        load_training_table(data=per_class, class_merge_map=merge_map)


def test_all_classes_restricts_and_more_than_two_classes_give_no_pair(per_class):
    data = {**per_class, "1PL": class_frame(["we"] * 10)}
    table = load_training_table(data=data)
    assert table.attrs["target_classes"] is None and set(table["label"]) == {0}
    assert len(table) == 60
    restricted = load_training_table(data=data, all_classes=["3SG", "1PL"])
    assert restricted.attrs["target_classes"] == ["1PL", "3SG"] and len(restricted) == 20
    with pytest.raises(ValueError, match="all_classes: class 'XX' is not in the data"):
        load_training_table(data=data, all_classes=["3SG", "XX"])


def test_paths_files_and_folders(tmp_path, per_class):
    table = load_training_table(data=per_class)
    write_training_data(table, tmp_path / "run" / "training.parquet")
    table.to_csv(tmp_path / "t.csv", index=False)
    for source in (tmp_path / "run", tmp_path / "run" / "training.parquet", str(tmp_path / "t.csv")):
        loaded = load_training_table(data=source)
        assert list(loaded["alternative"]) == list(table["alternative"]) and len(loaded) == 20


def test_saved_dataset_folder_with_splits(tmp_path, per_class):
    import datasets

    table = load_training_table(data=per_class).drop(columns=["label"])
    splits = {name: datasets.Dataset.from_pandas(part.drop(columns=["split"]), preserve_index=False)
              for name, part in table.groupby("split")}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "ds"))
    loaded = load_training_table(data=str(tmp_path / "ds"))
    assert len(loaded) == 20 and loaded.groupby("split").size().to_dict() == {"test": 2, "train": 16, "validation": 2}


def test_local_dataset_folder_with_one_config_per_class(tmp_path, per_class):
    readme = ["---", "configs:"]
    for cls, frame in per_class.items():
        (tmp_path / cls).mkdir()
        frame.to_csv(tmp_path / cls / "train.csv", index=False)
        readme += [f"- config_name: {cls}", f"  data_files: {cls}/*.csv"]
    (tmp_path / "README.md").write_text("\n".join(readme + ["---", ""]))
    table = load_training_table(data=str(tmp_path))
    assert sorted(table.attrs["all_classes"]) == ["3PL", "3SG"] and len(table) == 20
    assert table.groupby(["factual_class", "split"]).size()[("3PL", "validation")] == 1


def test_hub_id_offline_and_missing_file_are_clear_errors():
    with pytest.raises(ValueError, match="'someone/not-a-local-dataset'.*network"):
        load_training_table(data="someone/not-a-local-dataset")
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        load_training_table(data="data/missing.parquet")


@pytest.mark.parametrize(
    "kwargs, message",
    [({"data": None}, "no training data"), ({"dataa": 1}, "unknown key 'dataa'; did you mean 'data'"),
     ({"target_classes": ["a"]}, "two different class ids"), ({"random_state": None}, "always seeded"),
     ({"split_train_ratio": 0.9}, "sum to 1")],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_training_table(kwargs)


def test_data_errors_name_the_class_or_column(per_class):
    with pytest.raises(ValueError, match=r"target class\(es\) \['1SG'\] not in the data"):
        load_training_table(data=per_class, target_classes=["1SG", "3PL"])
    only_train = {c: f.assign(split="train") for c, f in per_class.items()}
    with pytest.raises(ValueError, match="target class '3PL' has no row in split 'validation' or 'test'"):
        load_training_table(data=only_train)
    with pytest.raises(ValueError, match="no column 'masked'"):
        load_training_table(data=pd.DataFrame({"factual": ["he"], "factual_class": ["A"]}))


def test_eval_neutral_data_from_frame_and_file(tmp_path):
    assert load_eval_neutral_data(TextPredictionConfig()) is None
    frame = pd.DataFrame({"text": ["A cat sat.", " ", "Rain fell.", "The sun rose."]})
    config = TextPredictionConfig(eval_neutral_data=frame, eval_neutral_max_rows=2)
    assert list(load_eval_neutral_data(config)["text"]) == ["A cat sat.", "Rain fell."]
    frame.to_parquet(tmp_path / "neutral.parquet")
    config = TextPredictionConfig(eval_neutral_data=str(tmp_path / "neutral.parquet"))
    assert len(load_eval_neutral_data(config)) == 3
