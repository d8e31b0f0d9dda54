"""The generated demo corpus: deterministic, varied, and holding every kind of sentence."""
import re
from collections import Counter

from gradiend.data.demo_corpus import (
    DEMO_PRONOUNS,
    FEMALE_NAMES,
    MALE_NAMES,
    TEMPLATES,
    generate_demo_corpus,
    generate_labelled_corpus,
    write_demo_corpus,
)


def _words(text):
    return re.findall(r"\w+", text.lower())


def test_same_seed_same_corpus_other_seed_differs():
    assert generate_demo_corpus(500, seed=3) == generate_demo_corpus(500, seed=3)
    assert generate_demo_corpus(500, seed=3) != generate_demo_corpus(500, seed=4)


def test_does_not_touch_global_random_state():
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate_demo_corpus(200, seed=0)
    assert random.random() == expected


def test_size_and_default_size():
    assert len(generate_demo_corpus(37, seed=1)) == 37
    assert len(generate_demo_corpus()) == 6000


def test_every_kind_is_present_in_fair_shares():
    counts = Counter(sentence.kind for sentence in generate_labelled_corpus(4000, seed=0))
    assert set(counts) == {"female", "male", "plural", "neutral"}
    assert all(800 <= count <= 1200 for count in counts.values()), counts


def test_kinds_use_the_right_pronouns():
    female, male, plural = {"she", "her"}, {"he", "his", "him"}, {"they", "them", "their"}
    for sentence in generate_labelled_corpus(2000, seed=5):
        words = set(_words(sentence.text))
        if sentence.kind == "female":
            assert words & female and not words & male, sentence
            assert words & set(n.lower() for n in FEMALE_NAMES), sentence
        elif sentence.kind == "male":
            assert words & male and not words & female, sentence
        elif sentence.kind == "plural":
            assert words & plural and not words & (female | male), sentence
        else:
            assert not words & set(DEMO_PRONOUNS), sentence


def test_variety_of_templates_and_names():
    corpus = generate_labelled_corpus(6000, seed=0)
    assert sum(len(templates) for templates in TEMPLATES.values()) >= 30
    assert len({sentence.template for sentence in corpus}) >= 30
    words = Counter(word for sentence in corpus for word in _words(sentence.text))
    assert len(FEMALE_NAMES) >= 60 and len(MALE_NAMES) >= 60
    assert sum(words[n.lower()] > 0 for n in FEMALE_NAMES) >= 60
    assert sum(words[n.lower()] > 0 for n in MALE_NAMES) >= 60
    assert not set(n.lower() for n in FEMALE_NAMES) & set(n.lower() for n in MALE_NAMES)
    assert len(set(sentence.text for sentence in corpus)) > 5000


def test_pronouns_start_some_sentences():
    corpus = generate_demo_corpus(2000, seed=0)
    assert any(". She " in text for text in corpus)
    assert any(". He " in text for text in corpus)
    assert any(text.startswith(("The ", "My ", "Our ")) for text in corpus)


def test_write_demo_corpus_one_sentence_per_line(tmp_path):
    path = write_demo_corpus(tmp_path / "sub" / "corpus.txt", n_sentences=50, seed=2)
    assert path.read_text(encoding="utf-8").splitlines() == generate_demo_corpus(50, seed=2)
    assert [p.name for p in path.parent.iterdir()] == ["corpus.txt"]
