"""The workflow's config files as written: what Snakemake's reader lets pass without a word.

Snakemake reads a config file with PyYAML, which follows YAML 1.1: ``seeds: [010]`` becomes seed 8
(octal), ``yes``/``no``/``on``/``off`` become booleans, ``1_000`` and ``1:20`` become numbers (YAML 1.2,
and most other tools, read all of these as text). The values are valid, so the schema cannot tell;
only the text of the file can. Snakemake also merges two ``--configfile`` files key by key, so an
experiment defined in both becomes a mix of the two. :func:`config_file_problems` reads the files
again and names each such case by file, line and config key; :func:`check_config_files` raises them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from gradiend.schema_validation import ConfigError, check_yaml_file, key_path

# Mappings whose entries are named definitions: one file defines each of them.
NAMED_DEFINITIONS = ("experiments", "comparisons", "demo.models")

_TAG = "tag:yaml.org,2002:"
_NUMERIC = ("integer", "number")


def check_config_files(paths: Iterable[str | Path], schema: Mapping) -> None:
    """Raise :class:`ConfigError` listing every problem :func:`config_file_problems` finds."""
    problems = config_file_problems(paths, schema)
    if problems:
        raise ConfigError(problems)


def config_file_problems(paths: Iterable[str | Path], schema: Mapping) -> list[str]:
    """One line per problem of the config files ``paths`` (in the order Snakemake merges them): a file
    that is not UTF-8, not YAML, writes a key twice or holds no mapping (these stop the check); a plain
    value that YAML 1.1 reads otherwise than it looks where the schema expects another kind; an entry
    of :data:`NAMED_DEFINITIONS` defined in two files."""
    import yaml

    documents = []
    for path in paths:
        found_documents = list(yaml.compose_all(check_yaml_file(path), Loader=yaml.SafeLoader))
        document = found_documents[0] if found_documents else None
        found = _not_a_mapping(document) if len(found_documents) < 2 else \
            f"{len(found_documents)} YAML documents (separated by `---`); write one"
        if found:
            raise ConfigError([f"{path}: a config file must be a YAML mapping of keys (`results_dir`, "
                               f"`experiments`, ...) at the top level, but it holds {found}"])
        documents.append((str(path), document))
    problems = [line for path, document in documents for line in yaml11_problems(document, schema, path)]
    return problems + _defined_twice(documents)


def _not_a_mapping(document) -> str | None:
    """What a config document holds instead of a mapping (None: it is one)."""
    import yaml

    if isinstance(document, yaml.MappingNode):
        return None
    if document is None or (isinstance(document, yaml.ScalarNode) and document.tag == _TAG + "null"):
        return "nothing (the file is empty or only comments)"
    if isinstance(document, yaml.SequenceNode):
        return f"a list of {len(document.value)} entr{'y' if len(document.value) == 1 else 'ies'}"
    return f"the single value {document.value!r}"


# --- YAML 1.1 readings -----------------------------------------------------------------------------

def yaml11_problems(document, schema: Mapping, where: str) -> list[str]:
    """One line per plain scalar of the composed ``document`` whose YAML 1.1 reading is not what the
    schema expects at its key: octal, binary, ``_`` and base-60 numbers and dates anywhere, a
    yes/no/on/off boolean where no boolean belongs, a hex number where no number belongs, and any
    such token as a mapping key (keys are names)."""
    problems = []
    for path, node, is_key in _plain_scalars(document, []):
        kind = _yaml11_kind(node)
        if kind is None:
            continue
        expected = {"string"} if is_key else expected_types(schema, path)
        if not expected or (kind == "boolean" and "boolean" in expected) \
                or (kind == "hex" and expected & set(_NUMERIC)):
            continue
        problems.append(f"{where}, line {node.start_mark.line + 1}: config key `{key_path(path)}`"
                        f"{' (a name)' if is_key else ''}: {_explain(kind, node.value, expected)}")
    return problems


def _plain_scalars(node, path: list):
    """``(path, node, is_key)`` of every plain (unquoted) scalar under ``node``; a key's path ends in
    the key as written."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            if key_node.style is None:
                yield path + [key_node.value], key_node, True
            yield from _plain_scalars(value_node, path + [key_node.value])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _plain_scalars(item, path + [index])
    elif isinstance(node, yaml.ScalarNode) and node.style is None:
        yield path, node, False


def _yaml11_kind(node) -> str | None:
    """How YAML 1.1 reads a plain scalar unlike YAML 1.2 or a reader of the file would (None: as it looks)."""
    text, tag = node.value, node.tag.removeprefix(_TAG)
    if tag == "bool":
        return None if text.lower() in ("true", "false") else "boolean"
    if tag == "timestamp":
        return "date"
    if tag not in ("int", "float"):
        return None
    digits = text.lstrip("+-")
    if ":" in digits:
        return "base60"
    if "_" in digits:
        return "underscore"
    if digits[:2] in ("0b", "0x"):
        return {"0b": "binary", "0x": "hex"}[digits[:2]]
    if tag == "int" and len(digits) > 1 and digits[0] == "0" and int(digits, 8) != int(digits):
        return "octal"
    return None


def _explain(kind: str, text: str, expected: set[str]) -> str:
    """What YAML 1.1 made of ``text`` and how to write what was meant."""
    import yaml

    value = yaml.safe_load(text)
    quote = f"quote it ('{text}') to keep the text"
    if kind == "boolean":
        read = f"YAML 1.1 reads the plain `{text}` as the boolean {str(value).lower()}, not as text"
        if "string" in expected:
            return f"{read}; {quote}"
        if "null" in expected and value is False:
            return f"{read}; write null to leave it off"
        return f"{read}; write {_kinds(expected)}"
    if kind == "date":
        return f"YAML reads the plain `{text}` as a date; {quote}"
    if kind == "octal":
        meaning = f"the octal number {value}, not {int(text)}"
    else:
        meaning = {"binary": f"the binary number {value}", "hex": f"the hexadecimal number {value}",
                   "underscore": f"the number {value} (YAML 1.2 and most tools read it as text)",
                   "base60": f"the base-60 number {value} (a time such as 2:00:00 is not minutes)"}[kind]
    read = f"YAML 1.1 reads the plain `{text}` as {meaning}"
    if kind == "octal" and expected & set(_NUMERIC):
        return f"{read}; write {int(text)} (or {value}) without the leading zero"
    if expected & set(_NUMERIC):
        return f"{read}; write the number you mean in plain decimal digits (e.g. {value})"
    return f"{read}; {quote}" if "string" in expected else f"{read}; write {_kinds(expected)}"


def _kinds(expected: set[str]) -> str:
    names = {"integer": "an integer", "number": "a number", "string": "text", "boolean": "true/false",
             "array": "a list", "object": "a mapping", "null": "null"}
    return " or ".join(names[t] for t in sorted(expected) if t in names)


# --- what the schema expects at a key --------------------------------------------------------------

def expected_types(schema: Mapping, path: list) -> set[str]:
    """The JSON types (``"integer"``, ``"string"``, ...) the schema accepts at ``path`` (keys and list
    indices from the top); empty where the schema knows no such key."""
    nodes = _branches(schema, [schema])
    for part in path:
        children = []
        for node in nodes:
            if isinstance(part, int):
                children += [node["items"]] if isinstance(node.get("items"), dict) else []
            elif part in node.get("properties", {}):
                children.append(node["properties"][part])
            elif isinstance(node.get("additionalProperties"), dict):
                children.append(node["additionalProperties"])
        nodes = _branches(schema, children)
    types: set[str] = set()
    for node in nodes:
        declared = node.get("type", [])
        types.update([declared] if isinstance(declared, str) else declared)
        values = node.get("enum", []) + ([node["const"]] if "const" in node else [])
        types.update(_json_type(v) for v in values)
    return types


def _branches(schema: Mapping, nodes: list) -> list[dict]:
    """``nodes`` with every local ``$ref`` resolved and every ``anyOf``/``oneOf``/``allOf`` branch added."""
    out = []
    for node in nodes:
        if "$ref" in node:
            node = {**schema["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
        out.append(node)
        for keyword in ("anyOf", "oneOf", "allOf"):
            out += _branches(schema, node.get(keyword, []))
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return {int: "integer", float: "number", str: "string"}.get(type(value), "object")


# --- the same definition in two files ---------------------------------------------------------------

def _defined_twice(documents: list) -> list[str]:
    """Entries of :data:`NAMED_DEFINITIONS` that two of the files define (file and line of each)."""
    problems = []
    for dotted in NAMED_DEFINITIONS:
        where: dict[str, list[str]] = {}
        for path, document in documents:
            for key_node in _mapping_keys(document, dotted.split(".")):
                where.setdefault(key_node.value, []).append(f"{path} (line {key_node.start_mark.line + 1})")
        problems += [f"config key `{dotted}.{name}` is defined in {' and in '.join(files)}: Snakemake merges "
                     f"--configfile files key by key, so the run would mix both definitions; define it in one "
                     f"file only (rename one, or remove it from the other file)"
                     for name, files in where.items() if len(files) > 1]
    return problems


def _mapping_keys(document, parts: list[str]) -> list:
    """The key nodes of the mapping at ``parts`` in ``document`` (none if it has no such mapping)."""
    import yaml

    node = document
    for part in parts:
        if not isinstance(node, yaml.MappingNode):
            return []
        node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
    return [k for k, _ in node.value if isinstance(k, yaml.ScalarNode)] if isinstance(node, yaml.MappingNode) else []

