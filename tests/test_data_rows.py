"""Training rows: transition ids, labels with source inversion, identity rows, caps, clear errors."""
import pandas as pd
import pytest

from gradiend.data.rows import evaluation_rows, select_rows, training_rows


def _table():
    rows = []
    for split, n in (("train", 6), ("validation", 2)):
        for i in range(n):
            rows.append(("She [MASK] x%d" % i, split, "she", "he", "she", "he"))
            rows.append(("He [MASK] y%d" % i, split, "he", "she", "he", "she"))
        rows.append(("It [MASK] z", split, "it", "it", "it", "it"))
    frame = pd.DataFrame(rows, columns=["masked", "split", "factual", "alternative", "factual_class",
                                        "alternative_class"])
    frame["label"] = frame["factual_class"].map({"she": 1, "he": -1}).fillna(0).astype(int)
    return frame


@pytest.mark.parametrize("source, she_label", [("factual", 1), ("diff", 1), ("alternative", -1)])
def test_labels_and_transition_ids(source, she_label):
    rows = select_rows(_table(), ["she", "he"], "train", source)
    frame = rows.frame
    assert len(frame) == 12
    she = frame[frame.factual_class == "she"]
    assert set(she.feature_class_id) == {0} and set(she.label) == {she_label}
    assert set(frame[frame.factual_class == "he"].label) == {-she_label}
    assert rows.transition_names == {0: "she\u2192he", 1: "he\u2192she"}


def test_identity_rows_and_cap():
    rows = select_rows(_table(), ["she", "he"], "train", "alternative", add_identity=True, max_size=4, seed=1)
    frame = rows.frame
    ident = frame[frame.feature_class_id == 2]
    assert len(ident) == 1 and ident.label.tolist() == [0] and (ident.factual == ident.alternative).all()
    assert frame.groupby("feature_class_id").size().tolist() == [4, 4, 1]
    again = select_rows(_table(), ["she", "he"], "train", "alternative", add_identity=True, max_size=4, seed=1)
    assert again.frame.equals(frame)


def test_evaluation_rows_fall_back_to_test():
    table = _table()
    assert evaluation_rows(table, ["she", "he"], "alternative", max_size=None, seed=0).split == "validation"
    table["split"] = table["split"].replace({"validation": "test"})
    assert evaluation_rows(table, ["she", "he"], "alternative", max_size=None, seed=0).split == "test"
    table = table[table.split == "train"]
    with pytest.raises(ValueError, match="validation.*test"):
        evaluation_rows(table, ["she", "he"], "alternative", max_size=None, seed=0)


def test_missing_class_and_column_errors():
    table = _table()
    with pytest.raises(ValueError, match="'they' has no rows"):
        training_rows(table, ["she", "they"], "alternative", add_identity=False, max_size=None, seed=0)
    with pytest.raises(ValueError, match="'alternative_class'"):
        training_rows(table.drop(columns="alternative_class"), ["she", "he"], "alternative",
                      add_identity=False, max_size=None, seed=0)
    only_she_train = table[~((table.split == "train") & (table.factual_class == "he"))]
    with pytest.raises(ValueError, match="he\u2192she"):
        training_rows(only_she_train, ["she", "he"], "alternative", add_identity=False, max_size=None, seed=0)
