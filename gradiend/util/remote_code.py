"""Whether a local model folder asks for code of its own (``auto_map`` in its config files).

With ``trust_remote_code`` off, ``transformers`` either refuses such a folder with a message about a
"repository", or, when the config's ``model_type`` is one it knows, silently loads its own class
instead of the one the folder asks for. The config check and the model loader refuse the folder
first, naming the classes, unless remote code is trusted. (Kept free of torch/transformers so the
config check stays light.)
"""
from __future__ import annotations

import json
from pathlib import Path

# the files of a model folder whose `auto_map` names classes defined by code in the folder (or on the Hub)
CODE_MAP_FILES = ("config.json", "tokenizer_config.json")


def requested_classes(folder: Path) -> dict[str, str]:
    """Auto class -> the class the folder's ``auto_map`` entries name (``module.Class``); empty for
    none. A file that does not parse is left to the loader, which names it as damaged."""
    classes: dict[str, str] = {}
    for name in CODE_MAP_FILES:
        try:
            auto_map = json.loads((folder / name).read_text(encoding="utf-8")).get("auto_map")
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(auto_map, dict):
            continue
        for auto_class, target in auto_map.items():
            named = [t for t in (target if isinstance(target, list) else [target]) if t]
            classes.setdefault(auto_class, " / ".join(map(str, named)))
    return classes


def remote_code_message(folder: Path, name: str, setting: str) -> str | None:
    """Why the model folder ``folder`` (written ``name``) cannot be loaded without trusting its code,
    or None; ``setting`` is how the caller turns trust on (a config key or an argument)."""
    if not folder.is_dir():
        return None
    classes = requested_classes(folder)
    if not classes:
        return None
    asked = ", ".join(f"{auto_class} -> {target}" for auto_class, target in classes.items())
    return (f"model folder {name!r} asks for code of its own (`auto_map`: {asked}), which runs only with "
            f"{setting}; set it only if you trust that code (without it transformers would refuse the folder, "
            f"or load its own class in place of the one asked for)")
