"""The released benchmark formats, read into plain items; every problem is one error naming the file.

StereoSet (Nadeem et al., 2021), ``test.json`` / ``dev.json``::

    {"version": "1.0", "data": {"intrasentence": [ENTRY, ...], "intersentence": [ENTRY, ...]}}
    ENTRY = {"id", "target", "bias_type", "context",
             "sentences": [{"id", "sentence", "labels": [...], "gold_label": "stereotype"}, ...]}

with exactly one sentence per ``gold_label`` ``stereotype``, ``anti-stereotype`` and ``unrelated``.
Intrasentence contexts hold a ``BLANK`` that each sentence fills (the sentences are scored alone);
intersentence sentences continue the context (scored given it). The Hugging Face version
(``McGill-NLP/stereoset``, configs ``intrasentence`` / ``intersentence``, split ``validation``)
stores ``sentences`` as columns and ``gold_label`` as class indices
(0 anti-stereotype, 1 stereotype, 2 unrelated); both are read.

CrowS-Pairs (Nangia et al., 2020), ``crows_pairs_anonymized.csv``: columns ``sent_more`` (the
more stereotypical sentence), ``sent_less``, ``stereo_antistereo`` (``stereo``: ``sent_more`` is
about the disadvantaged group; ``antistereo``: it is about the advantaged one) and ``bias_type``
(``gender``, ``race-color``, ...). The Hugging Face version stores the last two as class indices.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

STEREOTYPE, ANTI_STEREOTYPE, UNRELATED = "stereotype", "anti-stereotype", "unrelated"
GOLD_LABELS = (STEREOTYPE, ANTI_STEREOTYPE, UNRELATED)
HF_GOLD_LABELS = (ANTI_STEREOTYPE, STEREOTYPE, UNRELATED)  # ClassLabel order of the HF dataset
SUBSETS = ("intrasentence", "intersentence")
CROWS_COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")
HF_CROWS_DIRECTIONS = ("stereo", "antistereo")
HF_CROWS_BIAS_TYPES = ("race-color", "socioeconomic", "gender", "disability", "nationality",
                       "sexual-orientation", "physical-appearance", "religion", "age")


class BenchmarkFormatError(ValueError):
    """A benchmark file is not in the released format, or holds no item of a requested bias type."""


@dataclass(frozen=True)
class StereoSetItem:
    """One StereoSet example: the three sentences and, for intersentence, the context they follow."""

    id: str
    subset: str
    bias_type: str
    target: str
    context: str | None
    stereotype: str
    anti_stereotype: str
    unrelated: str


@dataclass(frozen=True)
class CrowsPair:
    """One CrowS-Pairs pair with its stereotypical sentence resolved from ``stereo_antistereo``."""

    index: int
    bias_type: str
    direction: str
    sent_more: str
    sent_less: str

    @property
    def stereotypical(self) -> str:
        """``sent_more`` for ``stereo`` pairs, ``sent_less`` for ``antistereo`` pairs."""
        return self.sent_more if self.direction == "stereo" else self.sent_less

    @property
    def other(self) -> str:
        return self.sent_less if self.direction == "stereo" else self.sent_more


def read_benchmark_file(path: Path, name: str, kind: str, file_format: str = "JSON", read=None, errors=()):
    """The parsed benchmark file (JSON unless ``read`` is given, which raises ``errors`` on a bad file);
    a missing or unparsable file is one error naming it."""
    if not path.is_file():
        raise BenchmarkFormatError(f"{name}: {kind} file not found")
    try:
        return read(path) if read else json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, *errors) as err:
        raise BenchmarkFormatError(f"{name}: not a {kind} {file_format} file ({err})") from None


def _path(source: Any) -> Path:
    return Path(str(source["path"] if isinstance(source, Mapping) else source)).expanduser()


def _describe(source: Any) -> str:
    if isinstance(source, Mapping):
        if "path" in source:
            return str(source["path"])
        return f"{source.get('hf_dataset')} (config {source.get('hf_config')!r}, split {source.get('split')!r})"
    return str(source)


def _only_bias_types(items: list, bias_types: Sequence[str] | None, name: str, kind: str) -> list:
    if bias_types is None:
        return items
    present = sorted({item.bias_type for item in items})
    missing = [b for b in bias_types if b not in present]
    if missing:
        raise BenchmarkFormatError(f"{name}: no {kind} item of bias type(s) {missing}; the file holds {present}")
    return [item for item in items if item.bias_type in bias_types]


# --- StereoSet -------------------------------------------------------------------------------------

def _stereoset_sentences(entry: Mapping, where: str) -> dict[str, str]:
    sentences = entry.get("sentences")
    if isinstance(sentences, Mapping):  # Hugging Face: columns of lists, gold labels as class indices
        texts, golds = sentences.get("sentence"), sentences.get("gold_label")
        if not isinstance(texts, list) or not isinstance(golds, list) or len(texts) != len(golds):
            raise BenchmarkFormatError(f"{where}: `sentences` needs lists `sentence` and `gold_label` of one length")
        sentences = [{"sentence": t, "gold_label": HF_GOLD_LABELS[g] if isinstance(g, int) and 0 <= g < 3 else g}
                     for t, g in zip(texts, golds)]
    if not isinstance(sentences, list):
        raise BenchmarkFormatError(f"{where}: `sentences` must be a list of {{sentence, gold_label}} objects")
    by_label: dict[str, str] = {}
    for sentence in sentences:
        if not isinstance(sentence, Mapping) or "sentence" not in sentence or "gold_label" not in sentence:
            raise BenchmarkFormatError(f"{where}: every sentence needs `sentence` and `gold_label`")
        label = sentence["gold_label"]
        if label not in GOLD_LABELS:
            raise BenchmarkFormatError(f"{where}: gold_label {label!r} is not one of {list(GOLD_LABELS)}")
        if label in by_label:
            raise BenchmarkFormatError(f"{where}: two sentences with gold_label {label!r}")
        if not isinstance(sentence["sentence"], str) or not sentence["sentence"].strip():
            raise BenchmarkFormatError(f"{where}: an empty sentence")
        by_label[label] = sentence["sentence"].strip()
    if set(by_label) != set(GOLD_LABELS):
        raise BenchmarkFormatError(f"{where}: needs one sentence per gold_label {list(GOLD_LABELS)}, "
                                   f"got {sorted(by_label)}")
    return by_label


def stereoset_items(entries: Iterable[Mapping], subset: str, name: str) -> list[StereoSetItem]:
    """Items of one StereoSet subset (``intrasentence`` / ``intersentence``) from its entries."""
    if subset not in SUBSETS:
        raise BenchmarkFormatError(f"{name}: unknown StereoSet subset {subset!r}; expected one of {list(SUBSETS)}")
    items = []
    for i, entry in enumerate(entries):
        where = f"{name}: {subset} entry {i}"
        if not isinstance(entry, Mapping):
            raise BenchmarkFormatError(f"{where} is not an object")
        for key in ("bias_type", "context", "sentences"):
            if key not in entry:
                raise BenchmarkFormatError(f"{where} has no `{key}` (not the released StereoSet format)")
        where = f"{name}: {subset} entry {entry.get('id', i)!r}"
        sentences = _stereoset_sentences(entry, where)
        context = str(entry["context"]).strip() if subset == "intersentence" else None
        items.append(StereoSetItem(
            id=str(entry.get("id", i)), subset=subset, bias_type=str(entry["bias_type"]),
            target=str(entry.get("target", "")), context=context, stereotype=sentences[STEREOTYPE],
            anti_stereotype=sentences[ANTI_STEREOTYPE], unrelated=sentences[UNRELATED]))
    return items


def read_stereoset(source: Any, bias_types: Sequence[str] | None = None) -> list[StereoSetItem]:
    """StereoSet items (intrasentence first, then intersentence) of the requested bias types.

    ``source``: a path to the released JSON, ``{path: ...}`` or ``{hf_dataset, hf_config, split}``
    (``hf_config`` ``null`` reads both subsets).
    """
    name = _describe(source)
    if isinstance(source, Mapping) and "hf_dataset" in source:
        configs = [source["hf_config"]] if source.get("hf_config") else list(SUBSETS)
        items = [item for config in configs for item in stereoset_items(_hf_rows(source, config), config, name)]
    else:
        document = read_benchmark_file(_path(source), name, "StereoSet")
        data = document.get("data") if isinstance(document, Mapping) else None
        if not isinstance(data, Mapping) or not any(s in data for s in SUBSETS):
            raise BenchmarkFormatError(f"{name}: not the released StereoSet format "
                                       f'{{"version", "data": {{"intrasentence": [...], "intersentence": [...]}}}}')
        items = []
        for subset in SUBSETS:
            entries = data.get(subset, [])
            if not isinstance(entries, list):
                raise BenchmarkFormatError(f"{name}: `data.{subset}` must be a list")
            items += stereoset_items(entries, subset, name)
    if not items:
        raise BenchmarkFormatError(f"{name}: holds no StereoSet item")
    return _only_bias_types(items, bias_types, name, "StereoSet")


# --- CrowS-Pairs -----------------------------------------------------------------------------------

def crows_pairs_from_frame(frame, name: str) -> list[CrowsPair]:
    """Pairs from a table with the released columns (class indices of the HF version are mapped)."""
    missing = [c for c in CROWS_COLUMNS if c not in frame.columns]
    if missing:
        raise BenchmarkFormatError(f"{name}: not the released CrowS-Pairs format, missing column(s) {missing} "
                                   f"(found {list(frame.columns)})")
    pairs = []
    for i, row in enumerate(frame[list(CROWS_COLUMNS)].itertuples(index=False)):
        more, less, direction, bias = row
        if isinstance(direction, (int,)) and not isinstance(direction, bool) and 0 <= direction < 2:
            direction = HF_CROWS_DIRECTIONS[direction]
        if isinstance(bias, int) and not isinstance(bias, bool) and 0 <= bias < len(HF_CROWS_BIAS_TYPES):
            bias = HF_CROWS_BIAS_TYPES[bias]
        if direction not in HF_CROWS_DIRECTIONS:
            raise BenchmarkFormatError(f"{name}: row {i}: stereo_antistereo {direction!r} is not 'stereo' or 'antistereo'")
        if not isinstance(more, str) or not isinstance(less, str) or not more.strip() or not less.strip():
            raise BenchmarkFormatError(f"{name}: row {i}: sent_more and sent_less must be non-empty text")
        pairs.append(CrowsPair(index=i, bias_type=str(bias), direction=direction, sent_more=more.strip(),
                               sent_less=less.strip()))
    return pairs


def read_crows_pairs(source: Any, bias_types: Sequence[str] | None = None) -> list[CrowsPair]:
    """CrowS-Pairs pairs of the requested bias types from the released CSV, ``{path}`` or ``{hf_dataset}``."""
    import pandas as pd

    name = _describe(source)
    if isinstance(source, Mapping) and "hf_dataset" in source:
        frame = pd.DataFrame(list(_hf_rows(source, source.get("hf_config"))))
    else:
        frame = read_benchmark_file(_path(source), name, "CrowS-Pairs", "CSV",
                                    lambda path: pd.read_csv(path, keep_default_na=False),
                                    (pd.errors.ParserError, pd.errors.EmptyDataError))
    pairs = crows_pairs_from_frame(frame, name)
    if not pairs:
        raise BenchmarkFormatError(f"{name}: holds no CrowS-Pairs pair")
    return _only_bias_types(pairs, bias_types, name, "CrowS-Pairs")


# --- both ------------------------------------------------------------------------------------------

def _hf_rows(source: Mapping, config: str | None) -> list[dict]:
    """The split's rows, class-index columns (``stereo_antistereo``, ``bias_type``) back to their names.

    StereoSet's ``gold_label`` indices, nested in ``sentences``, are named by :data:`HF_GOLD_LABELS`."""
    from gradiend.data.base_loader import load_hf_dataset

    dataset = load_hf_dataset(source["hf_dataset"], config, source.get("split", "test"))
    names = {column: feature.int2str for column, feature in (getattr(dataset, "features", None) or {}).items()
             if hasattr(feature, "int2str")}
    rows = []
    for row in map(dict, dataset):
        for column, to_name in names.items():
            if isinstance(row.get(column), int):
                row[column] = to_name(row[column])
        rows.append(row)
    return rows


def load_benchmarks(config: Mapping) -> dict[str, list]:
    """Every configured benchmark's items, read and checked before any model is scored.

    ``config``: the experiment's ``benchmarks`` block (``stereoset``, ``crows_pairs``: a source or
    ``None``; ``bias_types``; ``seat``: ``{paths}`` or ``None``, its tests are chosen by file, not
    by bias type). Returns ``{"stereoset": [...], "crows_pairs": [...], "seat": [SeatTest, ...]}``
    for the configured ones.
    """
    bias_types = list(config.get("bias_types") or ["gender"])
    loaded = {}
    if config.get("stereoset") is not None:
        loaded["stereoset"] = read_stereoset(config["stereoset"], bias_types)
    if config.get("crows_pairs") is not None:
        loaded["crows_pairs"] = read_crows_pairs(config["crows_pairs"], bias_types)
    if config.get("seat") is not None:
        from gradiend.evaluation.bias.seat import read_seat

        loaded["seat"] = [read_seat(path) for path in config["seat"]["paths"]]
    if not loaded:
        raise BenchmarkFormatError("config key `benchmarks` names no benchmark (stereoset, crows_pairs, seat)")
    return loaded
