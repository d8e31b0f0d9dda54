"""TextFilterConfig, TextPreprocessConfig, splitting arithmetic and alternative casing (no spaCy)."""
import numpy as np
import pytest

from gradiend.data.alternatives import apply_factual_casing, per_class_to_unified
from gradiend.data.filter_config import TextFilterConfig
from gradiend.data.preprocess import TextPreprocessConfig, preprocess_texts
from gradiend.data.splitting import assign_group_splits, assign_row_splits, split_sizes


# ----------------------------------------------------------------------------- TextFilterConfig
def test_target_shorthand_and_default_id():
    config = TextFilterConfig(target="he")
    assert config.targets == ["he"] and config.id == "he" and config.mask == "[MASK]"
    assert not config.needs_spacy


def test_target_and_targets_together_is_an_error():
    with pytest.raises(ValueError, match="either 'target' or 'targets'"):
        TextFilterConfig(target="he", targets=["she"])


@pytest.mark.parametrize("targets", [[], None, [""]])
def test_empty_targets_are_an_error(targets):
    with pytest.raises(ValueError, match="empty"):
        TextFilterConfig(targets=targets, id="X")


def test_nested_configs_inherit_tags_and_child_keys_win():
    config = TextFilterConfig(
        targets=[
            "him",
            TextFilterConfig(targets=["he"], spacy_tags={"Case": "Nom"}),
            TextFilterConfig(targets=["her"], spacy_tags={"Case": "Acc", "Gender": "Fem"}),
        ],
        spacy_tags={"pos": "PRON", "Case": "Acc"},
        id="3SG",
    )
    assert config.flatten_targets_with_tags() == [
        ("him", {"pos": "PRON", "Case": "Acc"}),
        ("he", {"pos": "PRON", "Case": "Nom"}),
        ("her", {"pos": "PRON", "Case": "Acc", "Gender": "Fem"}),
    ]
    assert config.target_strings == ["him", "he", "her"]
    assert config.needs_spacy


def test_nested_tags_make_a_class_need_spacy_even_without_parent_tags():
    config = TextFilterConfig(targets=["it", TextFilterConfig(targets=["he"], spacy_tags={"pos": "PRON"})], id="X")
    assert config.needs_spacy
    assert config.flatten_targets_with_tags() == [("it", {}), ("he", {"pos": "PRON"})]


def test_id_defaults_to_first_string_target_of_a_nested_config():
    assert TextFilterConfig(targets=[TextFilterConfig(targets=["der"])]).id == "der"


@pytest.mark.parametrize(
    "key, hint", [("case", "Case"), ("Gendr", "Gender"), ("colour", None)]
)
def test_unknown_spacy_tag_key_is_one_error_naming_it(key, hint):
    with pytest.raises(ValueError, match=f"unknown spaCy tag key '{key}'") as err:
        TextFilterConfig(targets=["he"], spacy_tags={key: "Nom"}, id="3SG")
    assert "3SG" in str(err.value)
    if hint:
        assert f"Did you mean '{hint}'" in str(err.value)


def test_known_tag_keys_are_accepted():
    TextFilterConfig(targets=["he"], spacy_tags={"POS": "PRON", "tag": "PRP", "dep": "nsubj", "Gender[psor]": "Fem"})


def test_nested_unknown_tag_key_is_caught_too():
    with pytest.raises(ValueError, match="'Kase'"):
        TextFilterConfig(targets=[TextFilterConfig(targets=["he"], spacy_tags={"Kase": "Nom"})])


@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_min_left_context_words_must_be_a_non_negative_int(value):
    with pytest.raises(ValueError, match="min_left_context_words"):
        TextFilterConfig(targets=["he"], min_left_context_words=value)


# ----------------------------------------------------------------------------- preprocessing
TEXTS = [
    "First sentence here. Second one! A third?\n\n  Another line without end  ",
    "",
    "Short. x",
]


def test_no_config_keeps_each_nonempty_line():
    assert preprocess_texts(TEXTS) == [
        "First sentence here. Second one! A third?",
        "Another line without end",
        "Short. x",
    ]


def test_sentence_splitting_and_filters():
    config = TextPreprocessConfig(split_to_sentences=True, min_chars=6, exclude_chars="?")
    assert preprocess_texts(TEXTS, config) == [
        "First sentence here.",
        "Second one!",
        "Another line without end",
        "Short.",
    ]


def test_sentence_windows_and_custom_filter():
    config = TextPreprocessConfig(split_to_sentences=2, max_chars=40, custom_filter=lambda s: "x" not in s)
    assert preprocess_texts(TEXTS, config) == [
        "First sentence here. Second one!",
        "A third?",
        "Another line without end",
    ]


@pytest.mark.parametrize(
    "kwargs, name",
    [({"split_to_sentences": 0}, "split_to_sentences"), ({"min_chars": -1}, "min_chars"),
     ({"min_chars": 5, "max_chars": 2}, "min_chars"), ({"custom_filter": "no"}, "custom_filter")],
)
def test_preprocess_config_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TextPreprocessConfig(**kwargs)


# ----------------------------------------------------------------------------- splitting
@pytest.mark.parametrize("n, sizes", [(10, (8, 1, 1)), (25, (20, 2, 3)), (15, (12, 2, 1)), (38, (30, 4, 4)), (1, (1, 0, 0))])
def test_split_sizes_round_80_10_10(n, sizes):
    assert split_sizes(n, (0.8, 0.1, 0.1)) == sizes


def test_row_splits_are_seeded():
    a = assign_row_splits(50, (0.8, 0.1, 0.1), seed=1)
    assert list(a) == list(assign_row_splits(50, (0.8, 0.1, 0.1), seed=1))
    assert list(a) != list(assign_row_splits(50, (0.8, 0.1, 0.1), seed=2))
    assert sorted(np.unique(a, return_counts=True)[1]) == [5, 5, 40]


def test_group_splits_keep_a_token_in_one_split_and_fill_every_split():
    values = ["He", "he", " he", "she", "It", "it", "him"]
    splits = assign_group_splits(values, (0.8, 0.1, 0.1), seed=3)
    assert len({splits[0], splits[1], splits[2]}) == 1 and splits[4] == splits[5]
    assert set(splits) == {"train", "validation", "test"}  # 4 groups: each split gets at least one


# ----------------------------------------------------------------------------- casing / alternatives
@pytest.mark.parametrize(
    "factual, alternative, expected",
    [("he", "they", "they"), ("He", "they", "They"), ("HE", "they", "THEY"), ("She", "THEY", "They"),
     ("I", "we", "We"), ("hE", "They", "they")],
)
def test_alternative_takes_the_factual_casing(factual, alternative, expected):
    assert apply_factual_casing(factual, alternative) == expected


def test_per_class_to_unified_samples_from_the_other_class_with_casing():
    import pandas as pd

    per_class = {
        "A": pd.DataFrame({"masked": ["[MASK] x", "y [MASK]", "[MASK] z"], "factual": ["He", "he", "HE"]}),
        "B": pd.DataFrame({"masked": ["[MASK] q", "r [MASK]"], "factual": ["they", "They"]}),
    }
    table = per_class_to_unified(per_class, seed=0)
    assert list(table["alternative"]) == ["They", "they", "THEY", "he", "He"]
    assert list(table["factual_class"]) == ["A"] * 3 + ["B"] * 2
    assert list(table["alternative_class"]) == ["B"] * 3 + ["A"] * 2


def test_per_class_to_unified_draws_k_distinct_alternatives():
    import pandas as pd

    per_class = {
        "A": pd.DataFrame({"masked": ["[MASK] x"], "factual": ["he"]}),
        "B": pd.DataFrame({"masked": ["[MASK] q"] * 4, "factual": ["they", "we", "you", "they"]}),
    }
    table = per_class_to_unified(per_class, seed=0, max_counterfactuals_per_sentence=2)
    a_rows = table[table["factual_class"] == "A"]
    assert len(a_rows) == 2 and a_rows["alternative"].nunique() == 2
    assert set(a_rows["alternative"]) <= {"they", "we", "you"}
