"""spaCy tag / lemma filtering, spaCy sentence splitting and the missing-model error, with a
rule-based English pipeline the tests build and load from its folder (``tests/spacy_support.py``)."""
import pytest

from gradiend.data.creator import TextPredictionDataCreator
from gradiend.data.filter_config import TextFilterConfig
from gradiend.data.matching import find_class_occurrences
from gradiend.data.preprocess import TextPreprocessConfig, preprocess_texts
from gradiend.data.spacy_util import load_spacy_model
from tests.spacy_support import build_rule_pipeline

pytest.importorskip("spacy")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The pipeline's folder, passed wherever gradiend takes a spaCy model name."""
    return str(build_rule_pipeline(tmp_path_factory.mktemp("spacy") / "en_rules"))


@pytest.fixture(scope="module")
def nlp(model):
    return load_spacy_model(model)


SENTENCES = [
    "I saw her yesterday.",  # her: PRP, Case=Acc
    "Her dog barked loudly.",  # Her: PRP$, Poss=Yes
    "She will book a flight.",  # book: VERB
    "The book is red.",  # book: NOUN; is: lemma be
    "We gave him the keys.",  # him: Case=Acc, lemma he
    "He is tired and they were happy.",  # He: Case=Nom; is/were: lemma be
]


def hits(configs, nlp, min_left=0):
    return {m.id: [(i, [s[2] for s in spans]) for i, spans in m.hits]
            for m in find_class_occurrences(SENTENCES, configs, min_left, nlp=nlp)}


def test_morphological_tags_separate_object_her_from_possessive_her(nlp):
    found = hits([
        TextFilterConfig(targets=["her"], spacy_tags={"Case": "Acc"}, id="her_obj"),
        TextFilterConfig(targets=["her"], spacy_tags={"Poss": "Yes"}, id="her_poss"),
    ], nlp)
    assert found == {"her_obj": [(0, ["her"])], "her_poss": [(1, ["Her"])]}


def test_pos_and_tag_keys(nlp):
    found = hits([
        TextFilterConfig(targets=["book"], spacy_tags={"pos": "VERB"}, id="verb"),
        TextFilterConfig(targets=["book"], spacy_tags={"TAG": "NN"}, id="noun"),
    ], nlp)
    assert found == {"verb": [(2, ["book"])], "noun": [(3, ["book"])]}


def test_lemma_matching_stores_the_surface_token(nlp):
    found = hits([TextFilterConfig(targets=["be"], use_lemma=True, id="BE")], nlp)
    assert found == {"BE": [(3, ["is"]), (5, ["is", "were"])]}


def test_nested_configs_inherit_and_override_tags(nlp):
    config = TextFilterConfig(
        targets=["him", TextFilterConfig(targets=["he"], spacy_tags={"Case": "Nom"})],
        spacy_tags={"pos": "PRON", "Case": "Acc"},
        id="MASC",
    )
    assert hits([config], nlp) == {"MASC": [(4, ["him"]), (5, ["He"])]}
    wrong_case = TextFilterConfig(targets=["he"], spacy_tags={"Case": "Acc"}, id="X")
    assert hits([wrong_case], nlp) == {"X": []}


def test_left_context_applies_to_spacy_matches(nlp):
    found = hits([TextFilterConfig(targets=["be"], use_lemma=True, id="BE")], nlp, min_left=2)
    assert found == {"BE": [(3, ["is"]), (5, ["were"])]}


def test_string_and_spacy_classes_in_one_creator(model):
    base = SENTENCES * 10
    creator = TextPredictionDataCreator(
        base_data=base,
        feature_targets=[
            TextFilterConfig(targets=["book"], spacy_tags={"pos": "NOUN"}, id="NOUN"),
            TextFilterConfig(targets=["book"], id="ANY"),
        ],
        spacy_model=model,
    )
    data = creator.generate_training_data()
    assert len(data["NOUN"]) == 10 and set(data["NOUN"]["text"]) == {"The book is red."}
    assert len(data["ANY"]) == 20


def test_tags_that_never_match_a_target_name_target_and_class(model):
    creator = TextPredictionDataCreator(
        base_data=SENTENCES * 4,
        feature_targets=[TextFilterConfig(targets=["book", "keys"], spacy_tags={"pos": "NOUN"}, id="N"),
                         TextFilterConfig(targets=["her"], spacy_tags={"pos": "VERB"}, id="V")],
        spacy_model=model,
    )
    with pytest.raises(ValueError, match="target 'her' of class 'V' never occurs"):
        creator.generate_training_data(min_rows_per_class_for_split=1, strict=True)


def test_neutral_data_with_excluded_spacy_tags(model):
    creator = TextPredictionDataCreator(
        base_data=SENTENCES + ["The cat sat on the mat.", "Rain fell all day."],
        feature_targets=[TextFilterConfig(targets=["book"], id="B")],
        spacy_model=model,
    )
    neutral = creator.generate_neutral_data(excluded_spacy_tags={"pos": "PRON"})
    assert sorted(neutral["text"]) == ["Rain fell all day.", "The cat sat on the mat."]
    with pytest.raises(ValueError, match=r"excluded_spacy_tags\[0\]: unknown spaCy tag key 'Cas'"):
        creator.generate_neutral_data(excluded_spacy_tags=[{"Cas": "Nom"}])


def test_excluded_spacy_tags_need_a_model():
    creator = TextPredictionDataCreator(base_data=SENTENCES, feature_targets=[TextFilterConfig(target="book")])
    with pytest.raises(ValueError, match="spacy_model required"):
        creator.generate_neutral_data(excluded_spacy_tags={"pos": "PRON"})


def test_spacy_sentence_splitting_keeps_abbreviations_the_regex_would_cut(model):
    text = ["Dr. Smith arrived. She sat down!"]
    config = TextPreprocessConfig(split_to_sentences=True)
    assert preprocess_texts(text, config) == ["Dr.", "Smith arrived.", "She sat down!"]
    assert preprocess_texts(text, config, spacy_model=model) == ["Dr. Smith arrived.", "She sat down!"]


def test_a_missing_model_is_one_error_naming_it_and_how_to_install():
    creator = TextPredictionDataCreator(
        base_data=SENTENCES,
        feature_targets=[TextFilterConfig(targets=["her"], spacy_tags={"Case": "Acc"}, id="obj")],
        spacy_model="xx_no_such_model_sm",
    )
    with pytest.raises(OSError) as err:
        creator.generate_training_data()
    message = str(err.value)
    assert "'xx_no_such_model_sm' is not installed" in message
    assert "python -m spacy download xx_no_such_model_sm" in message and "nlp.to_disk" in message


def test_string_filters_never_load_spacy(monkeypatch):
    import gradiend.data.creator as creator_module

    def fail(name):
        raise AssertionError(f"spaCy model {name} loaded for string filters")

    monkeypatch.setattr(creator_module, "load_spacy_model", fail)
    creator = TextPredictionDataCreator(
        base_data=SENTENCES * 4, feature_targets=[TextFilterConfig(target="book")], spacy_model="xx_absent"
    )
    assert len(creator.generate_training_data(min_rows_per_class_for_split=1)["book"]) == 8
