"""JSON Schema validation that fills in defaults and explains each error in one line.

jsonschema's own messages name the schema rule, not the config key, and dump whole sub-documents;
a user who wrote ``learning_rate: 1e-5`` (which YAML reads as the *string* "1e-5") needs to be told
which key is wrong and how to write it. This module turns every validation error into
``config key `a.b.c`: <what is wrong>`` and raises them together as one :class:`ConfigError`.
"""
from __future__ import annotations

import copy
import difflib
import math
import re
from pathlib import Path
from typing import Any, Iterable

_NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NO_DEFAULT = object()
_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true/false",
               "array": "a list", "object": "a mapping", "null": "null"}


class ConfigError(ValueError):
    """An invalid configuration; the message has one line per problem, each naming its key."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(dict.fromkeys(problems))
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


def duplicate_keys(text: str, where: str = "<text>") -> list[str]:
    """One line per mapping key written twice in the YAML ``text`` (YAML itself keeps the last one
    silently): the key's dotted path and the lines of both occurrences."""
    import yaml

    problems: list[str] = []

    def walk(node, path: list) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = key_node.value
                    if key in seen:
                        problems.append(
                            f"{where}: config key `{key_path(path + [key])}` is written twice (lines "
                            f"{seen[key] + 1} and {key_node.start_mark.line + 1}); YAML would silently keep "
                            f"only the last one: remove or rename one of them")
                    else:
                        seen[key] = key_node.start_mark.line
                    walk(value_node, path + [key])
                else:
                    walk(value_node, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, path + [index])

    for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
        walk(document, [])
    return problems


def check_yaml_file(path: str | Path) -> str:
    """The text of the YAML file at ``path``; :class:`ConfigError` if it is not UTF-8, does not parse, or
    writes a key twice in one mapping."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError([f"{path}: not a UTF-8 text file ({error}); save it as UTF-8"]) from None
    try:
        problems = duplicate_keys(text, str(path))
    except yaml.YAMLError as error:
        raise ConfigError([f"{path}: not valid YAML: {' '.join(str(error).split())}"]) from None
    if problems:
        raise ConfigError(problems)
    return text


def load_yaml(path: str | Path) -> Any:
    """The YAML file at ``path``, after :func:`check_yaml_file` (a key written twice is an error)."""
    import yaml

    return yaml.safe_load(check_yaml_file(path))


def non_finite_values(value: Any, path: list | None = None) -> list[str]:
    """One line per NaN or infinite number anywhere in ``value`` (YAML ``.nan``, ``.inf``)."""
    path = path or []
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in non_finite_values(v, path + [k])]
    if isinstance(value, (list, tuple)):
        return [line for i, v in enumerate(value) for line in non_finite_values(v, path + [i])]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"config key `{key_path(path)}` is {value!r}: NaN and infinity are not allowed anywhere; "
                f"write a finite number"]
    return []


def key_path(parts: Iterable[Any]) -> str:
    """``["experiments", "x", "seeds", 0]`` -> ``experiments.x.seeds[0]``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _default_filling_validator(schema: dict):
    """A Draft 2020-12 validator class that inserts (copies of) ``default`` values as it descends."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]
    # JSON Schema counts 500.0 as an integer; a config does not: a count, step or seed written as a
    # float is refused (the stages would otherwise get a float where they index or seed with an int).
    strict_types = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))

    def default_of(sub: dict) -> Any:
        """The property's own default, else that of the local ``$ref`` it points to."""
        if "default" in sub or not sub.get("$ref", "").startswith("#/$defs/"):
            return sub.get("default", _NO_DEFAULT)
        return schema["$defs"][sub["$ref"].rsplit("/", 1)[1]].get("default", _NO_DEFAULT)

    def properties_with_defaults(validator, properties, instance, subschema):
        if validator.is_type(instance, "object"):
            for name, sub in properties.items():
                default = default_of(sub)
                if default is not _NO_DEFAULT and name not in instance:
                    instance[name] = copy.deepcopy(default)
        yield from check_properties(validator, properties, instance, subschema)

    extended = validators.extend(Draft202012Validator, {"properties": properties_with_defaults},
                                 type_checker=strict_types)
    return extended(schema)


def validate_with_defaults(instance: dict, schema: dict) -> dict:
    """Return a copy of ``instance`` with schema defaults filled in; raise :class:`ConfigError`."""
    filled = copy.deepcopy(instance)
    non_finite = non_finite_values(filled)
    validator = _default_filling_validator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: [str(p) for p in e.absolute_path])
    errors = [e for e in errors if not (isinstance(e.instance, float) and not math.isfinite(e.instance))]
    problems = non_finite + [line for error in errors for line in describe_error(error, schema)]
    if problems:
        raise ConfigError(problems)
    return filled


def _number_hint(value: Any) -> str:
    if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
        return " (YAML reads a number such as 1e-5 as text: write it with a dot, e.g. 1.0e-5)"
    if isinstance(value, float) and value.is_integer():
        return f" (write it without the decimal point: {int(value)})"
    return ""


def _suggest(name: str, path: list, properties: dict, schema: dict | None) -> str:
    """A close key of this mapping, else the key of a mapping inside it (``demo.n_sentences`` ->
    ``demo.corpus.n_sentences``), else the keys allowed here."""
    allowed = sorted(properties)
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    for parent, sub in properties.items():
        if sub.get("$ref", "").startswith("#/$defs/") and schema is not None:
            sub = schema["$defs"][sub["$ref"].rsplit("/", 1)[1]]
        if name in sub.get("properties", {}):
            return f"did you mean `{key_path(path + [parent, name])}`?"
    return f"allowed here: {', '.join(allowed)}"


def _is_branch_mismatch(error) -> bool:
    """True for an error that only says 'this anyOf/oneOf branch is of another kind'."""
    return len(error.relative_path) == 0 and error.validator in ("type", "const", "enum", "required",
                                                                  "anyOf", "oneOf")


def describe_error(error, schema: dict | None = None) -> list[str]:
    """One or more readable lines for a jsonschema ``ValidationError`` (``schema``: the whole schema,
    for the suggestions that look into a ``$ref``)."""
    path = list(error.absolute_path)
    where = key_path(path)
    value = error.instance
    kind = error.validator
    hint = error.schema.get("x-hint") if isinstance(error.schema, dict) else None

    if "propertyNames" in error.schema_path:
        return [f"config key `{where}`: the name {value!r} is not allowed: {hint or error.message}"]
    if kind == "additionalProperties":
        properties = error.schema.get("properties", {})
        return [f"unknown config key `{key_path(path + [name])}` ({_suggest(name, path, properties, schema)})"
                for name in sorted(set(value) - set(properties))]
    if kind in ("anyOf", "oneOf"):
        deeper = [e for e in error.context if not _is_branch_mismatch(e)]
        if hint and all(len(e.relative_path) == 0 for e in error.context):
            deeper = []  # a scalar that fits no branch: the hint says what fits
        if deeper:
            return [line for e in deeper for line in describe_error(e, schema)]
        return [f"config key `{where}` must be {hint or 'of another form'}; got {value!r}{_number_hint(value)}"]
    if kind == "type":
        types = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
        expected = " or ".join(_TYPE_NAMES.get(name, name) for name in types)
        return [f"config key `{where}` must be {expected}, "
                f"got {type(value).__name__} {value!r}{_number_hint(value)}"]
    if kind == "minItems" and not value:
        return [f"config key `{where}` must not be empty"]
    if kind == "minItems":
        return [f"config key `{where}` needs at least {error.validator_value} entries, got {len(value)}"]
    if kind == "maxItems":
        return [f"config key `{where}` takes at most {error.validator_value} entries, got {len(value)}"]
    if kind == "uniqueItems":
        seen, dups = [], []
        for item in value:
            (dups if item in seen and item not in dups else seen).append(item)
        return [f"config key `{where}` has duplicate entries: {dups}"]
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return [f"config key `{key_path(path + [k])}` is required" for k in missing]
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        return [f"config key `{where}` must be one of {allowed}, got {value!r}"]
    if kind == "pattern":
        return [f"config key `{where}`: {value!r} is not allowed: {hint or 'must match ' + error.validator_value}"]
    if kind == "minProperties":
        return [f"config key `{where}` must have at least {error.validator_value} entry"]
    return [f"config key `{where}`: {error.message}{_number_hint(value)}"]
