"""A small rule-based English spaCy pipeline, built and saved by the tests themselves.

The tests exercise gradiend's use of spaCy (tag, morphology and lemma filters, sentence splitting,
loading a pipeline by name or folder), not the accuracy of a statistical tagger, so they need no
model package: a blank English pipeline with an ``attribute_ruler`` that assigns the annotations
of the test sentences, and a rule-based sentencizer (English tokenizer exceptions keep "Dr." one
token, so it does not end a sentence). Real runs use spaCy's official pipelines
(``python -m spacy download en_core_web_sm``; README "spaCy models").
"""
from pathlib import Path

# (token patterns, index of the annotated token, its annotations)
_RULES = [
    ([{"LOWER": "saw"}, {"LOWER": "her"}], 1, {"POS": "PRON", "TAG": "PRP", "MORPH": "Case=Acc|Gender=Fem"}),
    ([{"LOWER": "her"}, {"LOWER": "dog"}], 0, {"POS": "PRON", "TAG": "PRP$", "MORPH": "Gender=Fem|Poss=Yes"}),
    ([{"LOWER": "will"}, {"LOWER": "book"}], 1, {"POS": "VERB", "TAG": "VB", "LEMMA": "book"}),
    ([{"LOWER": "the"}, {"LOWER": "book"}], 1, {"POS": "NOUN", "TAG": "NN", "LEMMA": "book"}),
    ([{"LOWER": "keys"}], 0, {"POS": "NOUN", "TAG": "NNS", "LEMMA": "key"}),
    ([{"LOWER": "him"}], 0, {"POS": "PRON", "TAG": "PRP", "MORPH": "Case=Acc|Gender=Masc", "LEMMA": "he"}),
    ([{"LOWER": "he"}], 0, {"POS": "PRON", "TAG": "PRP", "MORPH": "Case=Nom|Gender=Masc", "LEMMA": "he"}),
    ([{"LOWER": "she"}], 0, {"POS": "PRON", "TAG": "PRP", "MORPH": "Case=Nom|Gender=Fem", "LEMMA": "she"}),
    ([{"LOWER": {"IN": ["i", "we", "they"]}}], 0, {"POS": "PRON", "TAG": "PRP", "MORPH": "Case=Nom"}),
    ([{"LOWER": "is"}], 0, {"POS": "AUX", "TAG": "VBZ", "LEMMA": "be"}),
    ([{"LOWER": "were"}], 0, {"POS": "AUX", "TAG": "VBD", "LEMMA": "be"}),
]


def build_rule_pipeline(folder: Path) -> Path:
    """Write the pipeline to ``folder`` (loadable with ``spacy.load(folder)``) and return it."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("attribute_ruler")
    for patterns, index, attrs in _RULES:
        ruler.add([patterns], attrs, index=index)
    nlp.add_pipe("sentencizer")
    nlp.to_disk(folder)
    return folder
