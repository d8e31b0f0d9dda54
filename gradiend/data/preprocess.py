"""The sentence stream: raw texts → stripped lines → (optional) sentences or sentence windows → filters.
Sentences are split by a regex after ``.!?``, or by spaCy's sentencizer when a spaCy model is given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Union

_SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+")


@dataclass
class TextPreprocessConfig:
    """How texts become segments (no default instance on purpose). ``split_to_sentences``: ``False``
    keeps lines whole, ``True`` splits sentences, an int ``k > 1`` joins windows of ``k`` sentences.
    Segments failing ``min_chars``, ``max_chars``, ``exclude_chars`` or ``custom_filter`` are dropped.
    """

    split_to_sentences: Union[bool, int] = False
    min_chars: Optional[int] = None
    max_chars: Optional[int] = None
    exclude_chars: Optional[str] = None
    custom_filter: Optional[Callable[[str], bool]] = None

    def __post_init__(self) -> None:
        split = self.split_to_sentences
        if not isinstance(split, bool) and (not isinstance(split, int) or split < 1):
            raise ValueError(f"TextPreprocessConfig: split_to_sentences must be a bool or an int >= 1, got {split!r}")
        for name in ("min_chars", "max_chars"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"TextPreprocessConfig: {name} must be an int >= 0, got {value!r}")
        if self.min_chars is not None and self.max_chars is not None and self.min_chars > self.max_chars:
            raise ValueError(f"TextPreprocessConfig: min_chars ({self.min_chars}) is larger than max_chars "
                             f"({self.max_chars})")
        if self.custom_filter is not None and not callable(self.custom_filter):
            raise ValueError("TextPreprocessConfig: custom_filter must be a callable str -> bool")

    @property
    def window(self) -> int:
        """Sentences per segment; 0 means no sentence splitting (``False`` is 0, ``True`` is 1)."""
        return int(self.split_to_sentences)

    def keep(self, segment: str) -> bool:
        return ((self.min_chars is None or len(segment) >= self.min_chars)
                and (self.max_chars is None or len(segment) <= self.max_chars)
                and not (self.exclude_chars and any(ch in segment for ch in self.exclude_chars))
                and (self.custom_filter is None or bool(self.custom_filter(segment))))


def _sentence_lists(lines: list[str], spacy_model: Optional[str]) -> Iterable[list[str]]:
    """The sentences of each line, by spaCy's sentencizer (batched) or by the regex."""
    if not spacy_model:
        return ([s for s in _SENTENCE_BOUNDARY.split(line) if s] for line in lines)
    from gradiend.data.spacy_util import load_sentence_splitter

    docs = load_sentence_splitter(spacy_model).pipe(lines, batch_size=256)
    return ([s.text.strip() for s in doc.sents if s.text.strip()] for doc in docs)


def preprocess_texts(
    texts: Iterable[str],
    config: Optional[TextPreprocessConfig] = None,
    spacy_model: Optional[str] = None,
) -> list[str]:
    """The segments of ``texts`` after ``config`` (``None``: every non-empty stripped line as is)."""
    lines = [line.strip() for text in texts for line in text.split("\n") if line.strip()]
    if config is None:
        return lines
    step = max(config.window, 1)
    groups = ([line] for line in lines) if config.window == 0 else _sentence_lists(lines, spacy_model)
    segments = (" ".join(sentences[i:i + step]) for sentences in groups for i in range(0, len(sentences), step))
    return [segment for segment in segments if config.keep(segment)]
