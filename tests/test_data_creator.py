"""Matching, masking, left context, splits, labels, seeded determinism and clear errors of the creator,
on hand-counted corpora (string filters only; spaCy is in test_data_spacy.py)."""
import pytest

from gradiend.data.creator import TextPredictionDataCreator
from gradiend.data.demo_corpus import generate_demo_corpus
from gradiend.data.filter_config import TextFilterConfig
from gradiend.data.matching import find_class_occurrences, find_neutral, mask_spans
from gradiend.data.tables import read_neutral_data, read_training_data

# words before each target are counted by hand in the comments
CORPUS = [
    "He went home.",  # He@0
    "She said that he would come.",  # She@0, he@3
    "They said it was fine.",  # They@0 (3PL), it@2
    "After the long and tiring meeting with the whole team, they finally went home.",  # they@10
    "The chef tasted the soup, then he added pepper.",  # he@6
    "Nothing to see here.",  # 'here' is not 'he'
    "The theme of the hearing was shelter.",  # 'theme', 'shelter': no whole-word target
    "HE SHOUTED AND SHE LAUGHED.",  # HE@0, SHE@3
    "It is what it is, and they know it.",  # It@0, it@3, they@6, it@8
    "Their house is big.",  # 'their' is not a target
]


def classes(**overrides):
    return [
        TextFilterConfig(targets=["he", "she", "it"], id="3SG", **overrides),
        TextFilterConfig(targets=["they"], id="3PL"),
    ]


def occurrences(min_left, configs=None):
    matchers = find_class_occurrences(CORPUS, configs or classes(), min_left)
    return {m.id: [(i, [s[2] for s in spans]) for i, spans in m.hits] for m in matchers}


# ----------------------------------------------------------------------------- matching
def test_whole_word_case_insensitive_matching_without_left_context():
    found = occurrences(0)
    assert found["3SG"] == [
        (0, ["He"]), (1, ["She", "he"]), (2, ["it"]), (4, ["he"]), (7, ["HE", "SHE"]), (8, ["It", "it", "it"]),
    ]
    assert found["3PL"] == [(2, ["They"]), (3, ["they"]), (8, ["they"])]


@pytest.mark.parametrize(
    "min_left, rows_3sg, rows_3pl",
    [(0, [0, 1, 2, 4, 7, 8], [2, 3, 8]), (3, [1, 4, 7, 8], [3, 8]), (6, [4, 8], [3, 8]), (10, [], [3])],
)
def test_left_context_counts(min_left, rows_3sg, rows_3pl):
    found = occurrences(min_left)
    assert [i for i, _ in found["3SG"]] == rows_3sg
    assert [i for i, _ in found["3PL"]] == rows_3pl


def test_left_context_drops_early_occurrences_inside_a_kept_row():
    found = dict(occurrences(3)["3SG"])
    assert found[1] == ["he"] and found[7] == ["SHE"] and found[8] == ["it", "it"]


def test_per_class_left_context_overrides_the_default():
    found = occurrences(0, [TextFilterConfig(targets=["he", "she", "it"], id="3SG", min_left_context_words=6),
                            TextFilterConfig(targets=["they"], id="3PL")])
    assert [i for i, _ in found["3SG"]] == [4, 8]
    assert [i for i, _ in found["3PL"]] == [2, 3, 8]


def test_mask_replaces_every_kept_occurrence():
    matcher = find_class_occurrences(CORPUS, classes(), 0)[0]
    masked = {i: mask_spans(CORPUS[i], spans, "[MASK]") for i, spans in matcher.hits}
    assert masked[1] == "[MASK] said that [MASK] would come."
    assert masked[8] == "[MASK] is what [MASK] is, and they know [MASK]."


def test_targets_with_punctuation_and_multiple_words_match_whole():
    found = find_class_occurrences(
        ["We met at 3 p.m. today.", "A cup of tea, of tea!", "Tea of teapots."],
        [TextFilterConfig(targets=["p.m."], id="pm"), TextFilterConfig(targets=["of tea"], id="ot")],
    )
    assert [(i, [s[2] for s in spans]) for i, spans in found[0].hits] == [(0, ["p.m."])]
    assert [(i, [s[2] for s in spans]) for i, spans in found[1].hits] == [(1, ["of tea", "of tea"])]


def test_cap_stops_collecting_but_keeps_looking_for_unseen_targets():
    [matcher] = find_class_occurrences(CORPUS, [TextFilterConfig(targets=["he", "it"], id="X")], 0, max_per_class=1)
    assert [i for i, _ in matcher.hits] == [0]
    assert matcher.seen == {"he", "it"}


def test_neutral_excludes_every_target_word_in_any_case():
    neutral = find_neutral(CORPUS, ["he", "she", "it", "they"])
    assert neutral == ["Nothing to see here.", "The theme of the hearing was shelter.", "Their house is big."]
    assert find_neutral(CORPUS, ["he", "she", "it", "they", "their"], max_size=1) == ["Nothing to see here."]


# ----------------------------------------------------------------------------- creator
def creator(base=None, **kwargs):
    kwargs.setdefault("feature_targets", classes())
    return TextPredictionDataCreator(base_data=base if base is not None else CORPUS * 5, **kwargs)


def test_per_class_rows_columns_and_split_sizes():
    data = creator().generate_training_data()
    assert set(data) == {"3SG", "3PL"}
    sg, pl = data["3SG"], data["3PL"]
    assert list(sg.columns) == ["text", "masked", "factual", "token_count", "split"]
    assert len(sg) == 30 and len(pl) == 15  # 6 and 3 rows per copy of the corpus
    assert sg["split"].value_counts().to_dict() == {"train": 24, "validation": 3, "test": 3}
    assert pl["split"].value_counts().to_dict() == {"train": 12, "validation": 2, "test": 1}
    assert sorted(sg["token_count"].tolist()) == sorted([1, 2, 1, 1, 2, 3] * 5)
    row = sg[sg["text"] == CORPUS[8]].iloc[0]
    assert row["factual"] == "It" and row["masked"] == "[MASK] is what [MASK] is, and they know [MASK]."


def test_max_size_per_class_caps_each_class():
    data = creator().generate_training_data(max_size_per_class=12)
    assert {c: len(f) for c, f in data.items()} == {"3SG": 12, "3PL": 12}


def test_strict_balance_cuts_to_the_smallest_class():
    data = creator().generate_training_data(balance="strict")
    assert {c: len(f) for c, f in data.items()} == {"3SG": 15, "3PL": 15}


def test_unified_labels_classes_and_alternatives():
    table = creator().generate_training_data(format="unified")
    assert list(table.columns[:7]) == [
        "masked", "split", "factual", "alternative", "factual_class", "alternative_class", "label"
    ]
    assert len(table) == 45  # one row per sentence and other class (2 classes -> 1)
    # two classes, no target_classes: alphabetical pair -> 3PL = +1, 3SG = -1
    assert set(zip(table["factual_class"], table["alternative_class"], table["label"])) == {
        ("3SG", "3PL", -1), ("3PL", "3SG", 1)
    }
    sg = table[table["factual_class"] == "3SG"]
    expected_case = {"He": "They", "he": "they", "it": "they", "It": "They", "She": "They", "HE": "THEY"}
    assert all(expected_case[f] == a for f, a in zip(sg["factual"], sg["alternative"]))
    pl = table[table["factual_class"] == "3PL"]
    assert set(pl["alternative"].str.lower()) <= {"he", "she", "it"}
    assert all(a[0].isupper() == f[0].isupper() for f, a in zip(pl["factual"], pl["alternative"]))


def test_explicit_target_classes_set_the_sign_and_others_get_zero():
    configs = classes() + [TextFilterConfig(targets=["we"], id="1PL")]
    base = CORPUS * 5 + ["We won the match today."] * 10
    table = creator(base, feature_targets=configs).generate_training_data(format="unified", target_classes=["3SG", "3PL"])
    labels = table.groupby("factual_class")["label"].unique().to_dict()
    assert {c: list(v) for c, v in labels.items()} == {"3SG": [1], "3PL": [-1], "1PL": [0]}
    assert len(table) == 2 * (30 + 15 + 10)  # every sentence once per other class
    no_pair = creator(base, feature_targets=configs).generate_training_data(format="unified")
    assert set(no_pair["label"]) == {0}


def test_minimal_format():
    table = creator().generate_training_data(format="minimal")
    assert list(table.columns) == ["masked", "factual", "factual_class", "split"] and len(table) == 45


def test_vocabulary_held_out_split():
    base = [f"Then {w} left." for w in ["he", "she", "it", "him", "her"] for _ in range(4)] + ["Then they left."] * 20
    data = creator(base, feature_targets=[TextFilterConfig(targets=["he", "she", "it", "him", "her"], id="SG"),
                                          TextFilterConfig(targets=["they", "them"], id="PL")]).generate_training_data(
        split_group_col="factual", raise_on_incomplete_classes=False, require_all_targets=False
    )
    sg = data["SG"]
    assert sg.groupby(sg["factual"].str.lower())["split"].nunique().max() == 1
    assert set(sg["split"]) == {"train", "validation", "test"}
    assert "PL" not in data  # one distinct token cannot fill three splits: dropped, and reported


def test_same_seed_gives_identical_parquet_bytes(tmp_path):
    base = generate_demo_corpus(400, seed=1)
    paths = []
    for run in range(2):
        path = tmp_path / str(run) / "training.parquet"
        creator(base, seed=7).generate_training_data(format="unified", output=path)
        paths.append(path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert (tmp_path / "0" / "summary.json").read_bytes() == (tmp_path / "1" / "summary.json").read_bytes()
    other = tmp_path / "other" / "training.parquet"
    creator(base, seed=8).generate_training_data(format="unified", output=other)
    assert other.read_bytes() != paths[0].read_bytes()
    table = read_training_data(paths[0])
    assert len(table) > 0 and table["label"].dtype == "int64"


def test_output_writes_summary_with_rows_per_class_and_split(tmp_path):
    import json

    c = creator()
    c.generate_training_data(output=tmp_path / "training.parquet")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rows_per_class_and_split"]["3SG"] == {"test": 3, "train": 24, "validation": 3}
    assert summary["rows_per_class"] == {"3PL": 15, "3SG": 30}
    assert summary["factual_tokens_per_class"]["3SG"] == {"he": 15, "it": 10, "she": 5}
    assert summary["target_classes"] == ["3PL", "3SG"]
    assert summary["creator"]["sentences"] == 50


def test_neutral_data(tmp_path):
    c = creator()
    neutral = c.generate_neutral_data()
    assert list(neutral.columns) == ["text"] and len(neutral) == 15
    assert set(neutral["text"]) == {"Nothing to see here.", "The theme of the hearing was shelter.", "Their house is big."}
    capped = c.generate_neutral_data(max_size=4, additional_excluded_words=["their"], output=tmp_path / "n.parquet")
    assert len(capped) == 4 and "Their house is big." not in set(capped["text"])
    assert list(read_neutral_data(tmp_path / "n.parquet")["text"]) == list(capped["text"])


def test_base_data_is_shuffled_with_the_seed():
    a = creator(seed=1).sentences()
    assert a == creator(seed=1).sentences() and a != creator(seed=2).sentences()
    assert sorted(a) == sorted(CORPUS * 5)


def test_seed_document_example_runs_unchanged():
    base_data = ["The chef tasted the soup, then he added pepper."] + generate_demo_corpus(300, seed=0)
    creator = TextPredictionDataCreator(
        base_data=base_data,
        feature_targets=[
            TextFilterConfig(targets=["he", "she", "it"], id="3SG"),
            TextFilterConfig(targets=["they"], id="3PL"),
        ],
    )
    training = creator.generate_training_data(max_size_per_class=10)
    neutral = creator.generate_neutral_data(max_size=15)
    assert {c: len(f) for c, f in training.items()} == {"3SG": 10, "3PL": 10}
    assert training["3SG"]["split"].value_counts().to_dict() == {"train": 8, "validation": 1, "test": 1}
    assert len(neutral) == 15


def test_seed_example_sentence_yields_a_row_with_the_default_left_context():
    [sg, _] = find_class_occurrences(["The chef tasted the soup, then he added pepper."], classes())
    assert [s[2] for _, spans in sg.hits for s in spans] == ["he"]
    assert TextPredictionDataCreator(base_data=["x"]).min_left_context_words == 0


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("base", [[], ["", "   ", "\n"]])
def test_empty_base_data_is_one_clear_error(base):
    with pytest.raises(ValueError, match="empty"):
        creator(base).generate_training_data()


def test_a_target_that_never_occurs_names_target_and_class():
    configs = [TextFilterConfig(targets=["he", "xyzzy"], id="3SG"), TextFilterConfig(targets=["they"], id="3PL")]
    with pytest.raises(ValueError, match=r"target 'xyzzy' of class '3SG' never occurs"):
        creator(feature_targets=configs).generate_training_data(strict=True)
    c = creator(feature_targets=configs)
    data = c.generate_training_data(require_all_targets=False)
    assert len(data["3SG"]) == 20 and c.report["unseen_targets"] == {"3SG": ["xyzzy"]}


def test_a_class_without_any_occurrence_is_an_error_when_strict_even_when_targets_are_optional():
    configs = classes() + [TextFilterConfig(targets=["xyzzy"], id="NONE")]
    with pytest.raises(ValueError, match="'xyzzy' of class 'NONE' never occurs"):
        creator(feature_targets=configs).generate_training_data(require_all_targets=False, strict=True)


def test_a_class_below_the_minimum_names_class_count_and_minimum():
    with pytest.raises(ValueError, match=r"class '3PL' has 6 rows, fewer than the minimum of 10"):
        creator(CORPUS * 2).generate_training_data(strict=True)


def test_small_classes_can_be_dropped_and_are_reported():
    c = creator(CORPUS * 2)
    data = c.generate_training_data(raise_on_incomplete_classes=False)
    assert list(data) == ["3SG"]
    assert c.report["dropped_classes"]["3PL"]["rows"] == 6


def test_a_class_missing_from_a_split_is_an_error():
    with pytest.raises(ValueError, match=r"class '3SG' has no row in split 'test' \(6 rows"):
        creator(CORPUS).generate_training_data(min_rows_per_class_for_split=1, strict=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"format": "wide"}, "format"), ({"balance": "yes"}, "balance"), ({"train_ratio": 0.5}, "sum to 1"),
     ({"max_size_per_class": 0}, "max_size_per_class"), ({"output": "x.csv"}, ".parquet")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        creator().generate_training_data(**kwargs)


def test_duplicate_class_ids_and_spacy_without_model_are_rejected_at_construction():
    with pytest.raises(ValueError, match="'X' is used by more than one"):
        TextPredictionDataCreator(CORPUS, [TextFilterConfig(target="a", id="X"), TextFilterConfig(target="b", id="X")])
    with pytest.raises(ValueError, match="spacy_model required: class 'P'"):
        TextPredictionDataCreator(CORPUS, [TextFilterConfig(target="he", id="P", spacy_tags={"pos": "PRON"})])


def test_no_neutral_sentence_is_an_error():
    with pytest.raises(ValueError, match="no neutral sentence"):
        creator(CORPUS[:5]).generate_neutral_data(strict=True)


# ----------------------------------------------------------------------------- lenient default (documented)
SEED_SENTENCE = ["The chef tasted the soup, then he added pepper."]


def test_default_returns_what_exists_and_warns_about_each_problem():
    from gradiend.data.creator import DataCreationWarning

    c = creator(SEED_SENTENCE)
    with pytest.warns(DataCreationWarning) as caught:
        data = c.generate_training_data(max_size_per_class=10)
        neutral = c.generate_neutral_data(max_size=15)
    messages = [str(w.message) for w in caught]
    for expected in ("target 'she' of class '3SG' never occurs", "target 'it' of class '3SG' never occurs",
                     "target 'they' of class '3PL' never occurs", "class '3PL' is empty",
                     "class '3SG' has 1 rows, fewer than the minimum of 10", "no neutral sentence"):
        assert sum(expected in m for m in messages) == 1, expected
    assert list(data) == ["3SG", "3PL"] and len(data["3PL"]) == 0
    assert data["3SG"].to_dict("records") == [{
        "text": SEED_SENTENCE[0], "masked": "The chef tasted the soup, then [MASK] added pepper.", "factual": "he",
        "token_count": 1, "split": "train"}]
    assert list(neutral.columns) == ["text"] and len(neutral) == 0
    assert c.report["unseen_targets"] == {"3SG": ["she", "it"], "3PL": ["they"]}
    assert c.report["empty_classes"] == ["3PL"] and c.report["small_classes"] == {"3SG": 1}
    with pytest.warns(DataCreationWarning, match="unified table is empty"):
        unified = c.generate_training_data(format="unified")
    assert len(unified) == 0 and list(unified.columns) == ["masked", "split", "factual", "alternative",
                                                           "factual_class", "alternative_class", "label"]


def test_training_refuses_an_empty_class_by_name(tiny_masked_lm_dir):
    from gradiend import TextPredictionTrainer, TrainingArguments

    c = creator(SEED_SENTENCE)
    with pytest.warns(UserWarning):
        data = c.generate_training_data()
        unified = c.generate_training_data(format="unified")
    args = TrainingArguments(max_steps=1, train_batch_size=2)
    with pytest.raises(ValueError, match=r"class '3PL' has no training rows \(rows per class: \{'3SG': 1, '3PL': 0\}\)"):
        TextPredictionTrainer(str(tiny_masked_lm_dir), data=data, args=args).train()
    with pytest.raises(ValueError, match="the training data has no rows"):
        TextPredictionTrainer(str(tiny_masked_lm_dir), data=unified, args=args).train()
    two = creator(SEED_SENTENCE + ["Later they left."])
    with pytest.warns(UserWarning):
        data = two.generate_training_data()
    with pytest.raises(ValueError, match=r"target class '3PL' has no row in split 'validation' or 'test'"):
        TextPredictionTrainer(str(tiny_masked_lm_dir), data=data, args=args).train()


def test_the_same_target_in_two_classes_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"target 'He' is in class 'M' and in class 'X'"):
        TextPredictionDataCreator(base_data=["he went home ."], feature_targets=[
            TextFilterConfig(targets=["he"], id="M"), TextFilterConfig(targets=["She", "He"], id="X")])
    # German `der`: the same word with different tags is two classes on purpose
    TextPredictionDataCreator(base_data=["der Hund ."], feature_targets=[
        TextFilterConfig(targets=["der"], spacy_tags={"Case": "Nom"}, id="nom"),
        TextFilterConfig(targets=["der"], spacy_tags={"Case": "Dat"}, id="dat")], spacy_model="de_core_news_sm")
