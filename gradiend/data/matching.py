"""Finding a class's targets in sentences: whole-word, case-insensitive, optionally spaCy-checked.

One combined regex skips sentences without any target. Classes with tags or lemmas are parsed by
spaCy once per sentence for all of them, only where a regex prefilter passes (not for lemma classes:
"is" has lemma "be").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import islice
from typing import Iterable, Optional, Sequence

from gradiend.data.filter_config import SpacyTagSpec, TextFilterConfig
from gradiend.data.spacy_util import token_matches_tags

Span = tuple[int, int, str]
"""(start, end, matched text in its original casing)."""

_WORD = re.compile(r"\w+")
_PARSE_BATCH = 256


def whole_word_regex(words: Iterable[str]) -> re.Pattern:
    """One case-insensitive regex matching any of ``words`` as a whole word (longest first); look-arounds,
    not ``\\b``, so targets that start or end with punctuation still match."""
    unique = sorted({w.lower() for w in words}, key=lambda w: (-len(w), w))
    alternation = "|".join(re.escape(w) for w in unique)
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)


@dataclass
class ClassMatcher:
    """The compiled matching rules of one class, plus what it has collected so far."""

    config: TextFilterConfig
    min_left_context_words: int
    cap: Optional[int] = None
    hits: list = field(default_factory=list)  # (sentence index, spans)
    seen: set = field(default_factory=set)  # lower-cased targets (lemmas) that matched at least once

    def __post_init__(self) -> None:
        flat = self.config.flatten_targets_with_tags()
        self.id = self.config.id
        self.targets = list(dict.fromkeys(t.lower() for t, _ in flat))
        self.regex = whole_word_regex(self.targets)
        self.uses_spacy = self.config.needs_spacy
        self.use_lemma = self.config.use_lemma
        self.specs: dict[str, list[SpacyTagSpec]] = {}
        for target, tags in flat:
            self.specs.setdefault(target.lower(), []).append(tags)
        multi = [t for t in self.targets if len(t.split()) != 1]
        if self.uses_spacy and multi:
            raise ValueError(f"class '{self.id}': spaCy matching compares single tokens, but target(s) "
                             f"{multi} contain whitespace")

    @property
    def full(self) -> bool:
        return self.cap is not None and len(self.hits) >= self.cap

    @property
    def done(self) -> bool:
        """Nothing left to learn: the class is full and every target has been seen."""
        return self.full and len(self.seen) == len(self.targets)

    def _has_left_context(self, sentence: str, start: int) -> bool:
        """At least ``min_left_context_words`` words (``\\w+`` runs) precede ``start``."""
        needed = self.min_left_context_words
        return needed <= 0 or len(_WORD.findall(sentence, 0, start)) >= needed

    def token_spans(self, sentence: str, doc) -> tuple[list[Span], set]:
        """Spans of matching tokens and the keys (text or lemma, lower-cased) they matched."""
        spans, keys = [], set()
        for token in doc:
            key = (token.lemma_ if self.use_lemma else token.text).lower()
            if (any(token_matches_tags(token, tags) for tags in self.specs.get(key, ()))
                    and self._has_left_context(sentence, token.idx)):
                spans.append((token.idx, token.idx + len(token.text), token.text))
                keys.add(key)
        return spans, keys

    def record(self, index: int, spans: list[Span], keys: Iterable[str]) -> None:
        if not spans:
            return
        self.seen.update(keys)
        if not self.full:
            self.hits.append((index, spans))


def _match_strings(sentences: Sequence[str], matchers: list[ClassMatcher]) -> None:
    if not matchers:
        return
    any_target = whole_word_regex(t for m in matchers for t in m.targets)
    active = list(matchers)
    for index, sentence in enumerate(sentences):
        if any_target.search(sentence) is None:
            continue
        for matcher in active:
            spans = [(m.start(), m.end(), m.group()) for m in matcher.regex.finditer(sentence)
                     if matcher._has_left_context(sentence, m.start())]
            matcher.record(index, spans, (s[2].lower() for s in spans))
        active = [m for m in active if not m.done]
        if not active:
            return


def parse_pipes_to_disable(nlp, tag_specs: Iterable[SpacyTagSpec]) -> list[str]:
    """Pipes whose output no tag or lemma check reads (NER always; the parser unless ``dep`` is used)."""
    need_dep = any(key.lower() == "dep" for tags in tag_specs for key in tags)
    unused = {"ner"} if need_dep else {"ner", "parser"}
    return [name for name in nlp.pipe_names if name in unused]


def _match_tokens(sentences: Sequence[str], matchers: list[ClassMatcher], nlp) -> None:
    if not matchers:
        return
    specs = [tags for m in matchers for tag_specs in m.specs.values() for tags in tag_specs]
    # lazily, so a class that is done stops asking for parses; lemma classes cannot be prefiltered
    candidates = ((sentence, index) for index, sentence in enumerate(sentences)
                  if any(not m.done and (m.use_lemma or m.regex.search(sentence)) for m in matchers))
    with nlp.select_pipes(disable=parse_pipes_to_disable(nlp, specs)):
        docs = nlp.pipe(candidates, as_tuples=True, batch_size=_PARSE_BATCH)
        for doc, index in docs:
            for matcher in matchers:
                if not matcher.done:
                    spans, keys = matcher.token_spans(sentences[index], doc)
                    matcher.record(index, spans, keys)
            if all(m.done for m in matchers):
                return


def find_class_occurrences(
    sentences: Sequence[str],
    configs: Sequence[TextFilterConfig],
    default_min_left_context_words: int = 0,
    max_per_class: Optional[int] = None,
    nlp=None,
) -> list[ClassMatcher]:
    """Scan ``sentences`` once for every class: each matcher holds its ``hits`` (at most ``max_per_class``,
    in sentence order) and the targets ``seen``; a class stops once full with every target seen."""
    default = default_min_left_context_words
    matchers = [ClassMatcher(c, default if c.min_left_context_words is None else c.min_left_context_words,
                             max_per_class) for c in configs]
    _match_strings(sentences, [m for m in matchers if not m.uses_spacy])
    spacy_matchers = [m for m in matchers if m.uses_spacy]
    if spacy_matchers and nlp is None:
        raise ValueError(f"class '{spacy_matchers[0].id}' uses spaCy tags or lemmas but no spaCy model was given")
    _match_tokens(sentences, spacy_matchers, nlp)
    return matchers


def mask_spans(sentence: str, spans: Sequence[Span], mask: str) -> str:
    """``sentence`` with every span replaced by ``mask`` (spans sorted and non-overlapping)."""
    for start, end, _ in reversed(spans):  # from the end, so earlier offsets stay valid
        sentence = sentence[:start] + mask + sentence[end:]
    return sentence


def find_neutral(
    sentences: Sequence[str],
    excluded_words: Sequence[str],
    excluded_tag_specs: Sequence[SpacyTagSpec] = (),
    max_size: Optional[int] = None,
    nlp=None,
) -> list[str]:
    """Sentences with none of ``excluded_words`` (whole word, any case) and, when tag specs are given,
    no token matching any of them; at most ``max_size``, in input order."""
    if max_size is not None and max_size <= 0:
        return []
    excluded = whole_word_regex(excluded_words) if excluded_words else None
    word_free = (s for s in sentences if excluded is None or excluded.search(s) is None)
    if excluded_tag_specs:
        if nlp is None:
            raise ValueError("excluded_spacy_tags need a spaCy model")
        with nlp.select_pipes(disable=parse_pipes_to_disable(nlp, excluded_tag_specs)):
            tag_free = (doc.text for doc in nlp.pipe(word_free, batch_size=_PARSE_BATCH)
                        if not any(token_matches_tags(t, tags) for t in doc for tags in excluded_tag_specs))
            return list(islice(tag_free, max_size))
    return list(islice(word_free, max_size))
