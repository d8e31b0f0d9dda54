"""What one feature class is: its target words, optional spaCy constraints, its id and mask.
Tag keys are checked at construction, so a typo (``case`` for ``Case``) fails before any text is read.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

SpacyTagSpec = Dict[str, str]
"""spaCy constraints for a token: ``pos`` / ``tag`` / ``dep`` or a morphological feature (``Case``)."""

TOKEN_ATTRIBUTE_KEYS = ("pos", "tag", "dep")
"""Keys compared with ``token.pos_`` / ``token.tag_`` / ``token.dep_`` (key case does not matter)."""

MORPH_FEATURES = frozenset({
    # Universal Dependencies v2 features (lexical, inflectional nominal and verbal)
    "PronType", "NumType", "Poss", "Reflex", "Abbr", "Typo", "Foreign", "ExtPos",
    "Gender", "Animacy", "NounClass", "Number", "Case", "Definite", "Deixis", "DeixisRef", "Degree",
    "VerbForm", "Mood", "Tense", "Aspect", "Voice", "Evident", "Polarity", "Person", "Polite",
    "Clusivity",
    # language-specific features emitted by spaCy's pipelines
    "ConjType", "PunctType", "PunctSide", "AdvType", "AdpType", "NounType", "PartType", "VerbType",
    "NumForm", "Hyph", "Style", "Variant", "Position", "Strength", "InflClass", "Emph",
})
"""Morphological feature names accepted as tag keys (compared exactly, case-sensitive)."""


def validate_tag_spec(tags: SpacyTagSpec, where: str) -> None:
    """One clear ValueError unless every key of ``tags`` is known and every value a string."""
    if not isinstance(tags, dict):
        raise ValueError(f"{where}: spacy_tags must be a dict of key -> value, got {type(tags).__name__}")
    for key, value in tags.items():
        if not _is_known_tag_key(key):
            choices = [*TOKEN_ATTRIBUTE_KEYS, *sorted(MORPH_FEATURES)]
            close = difflib.get_close_matches(str(key), choices, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{where}: unknown spaCy tag key {key!r}.{hint} Use one of pos, tag, dep or a "
                             f"morphological feature such as Case, Gender, Number, Person (case-sensitive).")
        if not isinstance(value, str):
            raise ValueError(f"{where}: spaCy tag {key!r} must have a string value, got {value!r}")


def _is_known_tag_key(key) -> bool:
    if not isinstance(key, str):
        return False
    base = key.split("[", 1)[0] if key.endswith("]") else key  # layered features, e.g. Gender[psor]
    return key.lower() in TOKEN_ATTRIBUTE_KEYS or base in MORPH_FEATURES


@dataclass
class TextFilterConfig:
    """One feature class.

    ``targets``: strings and/or nested configs, which inherit ``spacy_tags`` (their own keys win);
    ``target`` is shorthand for one string; ``id`` defaults to the first target. ``use_lemma`` applies to
    the whole class. ``min_left_context_words`` overrides the creator's default for this class.
    ``weight`` is accepted for compatibility with the original package, where it has no effect either.
    """

    targets: Optional[List[Union[str, "TextFilterConfig"]]] = None
    target: Optional[str] = None
    spacy_tags: Optional[SpacyTagSpec] = None
    id: Optional[str] = None
    use_lemma: bool = False
    mask: str = "[MASK]"
    weight: float = 1.0
    min_left_context_words: Optional[int] = None

    def __post_init__(self) -> None:
        if self.target is not None and self.targets is not None:
            raise ValueError("TextFilterConfig: give either 'target' or 'targets', not both")
        if self.target is not None or isinstance(self.targets, (str, TextFilterConfig)):
            self.targets = [self.targets if self.target is None else self.target]
        where = f"TextFilterConfig '{self.id}'" if self.id else "TextFilterConfig"
        if not self.targets:
            raise ValueError(f"{where}: 'targets' is empty; give at least one target")
        for item in self.targets:
            if isinstance(item, str):
                if not item.strip():
                    raise ValueError(f"{where}: empty target string in {self.targets!r}")
            elif not isinstance(item, TextFilterConfig):
                raise ValueError(f"{where}: a target must be a string or a TextFilterConfig, "
                                 f"got {type(item).__name__}")
        if self.spacy_tags is not None:
            validate_tag_spec(self.spacy_tags, where)
        if self.id is None:
            first = self.targets[0]
            self.id = first if isinstance(first, str) else first.id
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"TextFilterConfig: 'id' must be a non-empty string, got {self.id!r}")
        if not isinstance(self.mask, str) or not self.mask:
            raise ValueError(f"TextFilterConfig '{self.id}': 'mask' must be a non-empty string")
        m = self.min_left_context_words
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 0):
            raise ValueError(f"TextFilterConfig '{self.id}': min_left_context_words must be an int >= 0, "
                             f"got {m!r}")

    def flatten_targets_with_tags(self, inherited: Optional[SpacyTagSpec] = None) -> list[tuple[str, SpacyTagSpec]]:
        """Every target string with its effective tags (parent tags overridden by the child's)."""
        tags = {**(inherited or {}), **(self.spacy_tags or {})}
        flat: list[tuple[str, SpacyTagSpec]] = []
        for item in self.targets:
            if isinstance(item, str):
                flat.append((item, dict(tags)))
            else:
                flat.extend(item.flatten_targets_with_tags(tags))
        return flat

    @property
    def target_strings(self) -> list[str]:
        """The flattened target strings, first occurrence order, without duplicates."""
        return list(dict.fromkeys(t for t, _ in self.flatten_targets_with_tags()))

    @property
    def needs_spacy(self) -> bool:
        """True when matching needs a parse: lemma matching or any (inherited) tag constraint."""
        return self.use_lemma or any(tags for _, tags in self.flatten_targets_with_tags())
