"""The identity of a decoder cell, in one place: its name, the weaken suffix, the feature-factor sign
rule and the default learning-rate grid.

A *cell* is one rewrite ``θ + lr·dec(ff)`` of the base model (learning rate ``lr``, feature factor
``ff``); ``base`` is the unmodified model. Its name is both the ``"id"`` inside a cell's JSON and
the stem of its file in the workflow (``decoder/cells/<name>.json``), so the two can never disagree.

This module imports nothing heavy: the workflow's start-up (``gradiend.workflow_config``), the
library's evaluators and the job entry points all import it.
"""
from __future__ import annotations

SEARCH_ONLY_KEYS = ("adaptive", "selection")
"""Keys of ``decoder`` that the adaptive search and the choice read, but no cell depends on."""

BASE = "base"
WEAKEN_SUFFIX = "_weaken"

# {5, 2, 1}·10^e for e = 2 … −3: 100, 50, 20, …, 0.002, 0.001; the workflow's ``decoder.learning_rates``
# default (null in the schema) resolves to it.
DEFAULT_LEARNING_RATES: tuple[float, ...] = tuple(
    float(f"{mantissa}e{exponent}") for exponent in range(2, -4, -1) for mantissa in (5, 2, 1)
    if float(f"{mantissa}e{exponent}") <= 100)


def default_learning_rates() -> list[float]:
    """The 16-value default grid, largest first (a fresh list)."""
    return list(DEFAULT_LEARNING_RATES)


def number_label(value: float) -> str:
    """A number as it appears in a cell name: an integer value without ``.0`` (``100``, ``-1``),
    otherwise the shortest text that reads back to the same float (``0.005``, ``1e-05``)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


_NAME = "lr~{lr}_ff~{ff}"
# What a cell name looks like to the workflow (its `cell` wildcard): `base` or lr~<number>_ff~<number>.
NAME_PATTERN = r"base|lr~[^_/]+_ff~[^_/]+"


def cell_name(learning_rate: float, feature_factor: float) -> str:
    """The name of a cell, e.g. ``lr~0.01_ff~-1``: the cell file's stem and its ``"id"``."""
    return _NAME.format(lr=number_label(learning_rate), ff=number_label(feature_factor))


def cell_name_with_wildcard(feature_factor: float, wildcard: str = "{lr}") -> str:
    """The names of one feature factor's cells with the learning rate left as a Snakemake wildcard."""
    return _NAME.format(lr=wildcard, ff=number_label(feature_factor))


def parse_cell_name(name: str) -> tuple[float, float]:
    """``(learning rate, feature factor)`` of a cell name (the inverse of :func:`cell_name`)."""
    if name.startswith("lr~") and "_ff~" in name:
        lr, ff = name[3:].split("_ff~", 1)
        try:
            return float(lr), float(ff)
        except ValueError:
            pass
    raise ValueError(f"not a decoder cell name: {name!r} (expected e.g. 'lr~0.01_ff~-1')")


def feature_factor(source: str, encoding_direction: int, strengthen: bool = True) -> float:
    """The decoder input that strengthens (or weakens) the class encoded as ``encoding_direction``.

    With ``target = g_factual − g_alternative`` the decoded update pushes toward the class whose
    *alternative* gradient was encoded: ``+direction`` for source ``alternative``, ``−direction``
    for ``factual`` and ``diff``; weakening takes the opposite sign.
    """
    if encoding_direction not in (1, -1):
        raise ValueError(f"encoding direction must be +1 or -1, got {encoding_direction!r}")
    factor = float(encoding_direction if source == "alternative" else -encoding_direction)
    return factor if strengthen else -factor


def class_feature_factor(source: str, class_index: int, weaken: bool = False) -> float:
    """The feature factor of the cells that strengthen (or weaken) ``target_classes[class_index]``
    (class 0 is encoded as +1, class 1 as −1)."""
    if class_index not in (0, 1):
        raise ValueError(f"class index must be 0 or 1, got {class_index!r}")
    return feature_factor(source, 1 if class_index == 0 else -1, strengthen=not weaken)


def rewrite_key(target_class: str, weaken: bool) -> str:
    """The summary key / rewrite target of a class and direction: ``F`` or ``F_weaken``."""
    return f"{target_class}{WEAKEN_SUFFIX}" if weaken else str(target_class)


def split_rewrite_target(target: str) -> tuple[str, bool]:
    """``(class, weaken)`` of a rewrite target: ``"F"`` → ``("F", False)``, ``"F_weaken"`` → ``("F", True)``."""
    if target.endswith(WEAKEN_SUFFIX):
        return target[: -len(WEAKEN_SUFFIX)], True
    return target, False


def grid_cells(learning_rates, feature_factors) -> dict[str, tuple[float | None, float | None]]:
    """Cell name → (learning rate, feature factor) over ``feature_factors × learning_rates``;
    ``base`` (``(None, None)``, the unmodified model) comes first."""
    cells: dict[str, tuple[float | None, float | None]] = {BASE: (None, None)}
    for ff in feature_factors:
        for lr in learning_rates:
            cells[cell_name(lr, ff)] = (float(lr), float(ff))
    return cells
