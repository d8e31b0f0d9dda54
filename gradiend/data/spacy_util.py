"""spaCy, loaded only when a filter needs tags, lemmas or sentence splitting, and never downloaded
(a pipeline must not depend on a network): a missing model is one error saying how to install it.
"""
from __future__ import annotations

import functools

from gradiend.data.filter_config import TOKEN_ATTRIBUTE_KEYS, SpacyTagSpec


def _import_spacy():
    try:
        import spacy
    except ImportError as err:
        raise ImportError("spaCy is needed for spacy_tags, use_lemma, excluded_spacy_tags or spaCy sentence "
                          "splitting; install it with `pip install gradiend[data]`") from err
    return spacy


def install_hint(model_name: str) -> str:
    """How a user installs ``model_name``: spaCy's official pipelines come from its own releases
    (not PyPI, where same-named packages are third-party uploads); a saved pipeline folder works too."""
    return (f"`python -m spacy download {model_name}` (spaCy's official pipeline), or pass the folder of a "
            f"pipeline saved with `nlp.to_disk`")


@functools.lru_cache(maxsize=4)
def load_spacy_model(model_name: str):
    """The loaded spaCy pipeline ``model_name``, an installed package name or a pipeline folder (cached per
    process); OSError if it is not installed."""
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"spacy_model must be a model name such as 'en_core_web_sm' or a pipeline folder, "
                         f"got {model_name!r}")
    try:
        return _import_spacy().load(model_name)
    except OSError as err:
        raise OSError(f"spaCy model '{model_name}' is not installed; install it with "
                      f"{install_hint(model_name)} (it is never downloaded at run time)") from err


@functools.lru_cache(maxsize=4)
def load_sentence_splitter(model_name: str):
    """A blank pipeline in the model's language with only a rule-based sentencizer (fast splitting)."""
    nlp = _import_spacy().blank(load_spacy_model(model_name).lang)
    nlp.add_pipe("sentencizer")
    return nlp


def require_spacy_model(spacy_model, reason: str) -> str:
    if not spacy_model:
        raise ValueError(f"spacy_model required: {reason}. Pass e.g. spacy_model='en_core_web_sm' "
                         f"(installed with {install_hint('en_core_web_sm')})")
    return spacy_model


def token_matches_tags(token, tags: SpacyTagSpec) -> bool:
    """True if ``token`` satisfies every constraint: pos/tag/dep by name, others as morph features."""
    return all(
        getattr(token, key.lower() + "_") == value if key.lower() in TOKEN_ATTRIBUTE_KEYS
        else token.morph.get(key) == [value]
        for key, value in tags.items()
    )
