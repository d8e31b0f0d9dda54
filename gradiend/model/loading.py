"""Load a base language model, its tokenizer and its prediction objective, the one way we do it.

Choices (docs/design.md §2, §3):
- eager attention by default: fused attention (SDPA) has no forward-mode derivative on the CPU,
  which the batched JVP encoding needs; eager is also the deterministic choice;
- safetensors weights only, ``trust_remote_code`` off unless asked for (a local folder whose
  ``auto_map`` asks for its own classes is refused without it), no hub: a missing local folder or an
  id that is not cached is one :class:`BaseModelNotAvailableError` naming it;
- the objective picks the class (masked LM / causal LM); decoder-only tokenizers get
  ``pad_token = eos_token``; the model comes in eval mode (dropout off: gradients must not be random);
- a model folder without tokenizer files, and a target word the tokenizer maps to its unknown token
  (:func:`check_target_words`), are errors: either way every such word would become unknown;
- ``device`` puts the model on one device, ``device_map`` (needs ``accelerate``) splits it over several;
  an absent device, an offloading map or a dtype the devices cannot run is refused before anything is
  read (:mod:`gradiend.util.devices`), and so is a map that left a weight offloaded after all.
"""
from __future__ import annotations

from pathlib import Path

from gradiend.objectives.base import resolve_objective
from gradiend.objectives.tokens import continuation_ids, ensure_pad_token
from gradiend.util.devices import check_devices
from gradiend.util.dtypes import resolve_dtype
from gradiend.util.io import rebuild_hint, written_as_path
from gradiend.util.remote_code import remote_code_message
from gradiend.util.tokenizer_files import missing_tokenizer_message
from gradiend.util.logging import get_logger

logger = get_logger(__name__)


class BaseModelNotAvailableError(OSError):
    """The base model id or path cannot be loaded here (no such folder, not cached, no hub)."""


def _unreadable_folder(path: Path, what: str, error: BaseException) -> ValueError:
    """A local model folder whose files do not parse: name it and how to rebuild it."""
    detail = " ".join(str(error).split())[:300]
    return ValueError(f"model folder {str(path)!r}: its {what} cannot be read ({type(error).__name__}: {detail}); "
                      f"a file may be truncated or damaged: {rebuild_hint(path / 'model.safetensors')}")


def _read(name: str, path: Path, what: str, load):
    """``load()``; a failure is a damaged-folder error for a local folder, else "not available offline"."""
    try:
        return load()
    except (OSError, ValueError) as error:
        if path.is_dir():
            raise _unreadable_folder(path, what, error) from error
        raise BaseModelNotAvailableError(
            f"base model {name!r} is not available offline: it is neither a local model folder nor in the "
            f"Hugging Face cache, and this environment has no hub access ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})") from error


def _model_source(name_or_path, trust_remote_code: bool = False) -> tuple[str, Path, str]:
    """``(name, local path, what from_pretrained reads)``; a missing local path, a folder without
    tokenizer files, and one asking for its own code while ``trust_remote_code`` is off are refused
    before transformers sees them."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if written_as_path(name) and not path.exists():
        raise BaseModelNotAvailableError(f"base model path {name!r} does not exist (and is not available offline)")
    message = missing_tokenizer_message(path, name)
    if message:
        raise BaseModelNotAvailableError(message)
    remote = None if trust_remote_code else remote_code_message(path, name, "`trust_remote_code=True`")
    if remote:
        raise ValueError(remote)
    return name, path, str(path) if path.exists() else name


def _config_and_tokenizer(name_or_path,
                          trust_remote_code: bool = False) -> tuple[str, Path, str, object, object]:
    """``(name, local path, source, config, tokenizer)``, checked, without loading the weights."""
    from transformers import AutoConfig, AutoTokenizer

    name, path, source = _model_source(name_or_path, trust_remote_code)
    config, tokenizer = _read(name, path, "config or tokenizer", lambda: (
        AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code),
        AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)))
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    if len(tokenizer) <= len(special) + 1:
        raise BaseModelNotAvailableError(
            f"the tokenizer of {name!r} has only {len(tokenizer)} tokens (its special tokens): its "
            f"vocabulary files are missing, so every word would become the unknown token")
    return name, path, source, config, tokenizer


def load_tokenizer_and_objective(name_or_path, trust_remote_code: bool = False):
    """``(tokenizer, objective)`` as :func:`load_base_model` would choose them (``"auto"``), reading
    only the config and the tokenizer, not the weights."""
    *_, config, tokenizer = _config_and_tokenizer(name_or_path, trust_remote_code)
    return tokenizer, resolve_objective("auto", model=config, tokenizer=tokenizer)


def _class_and_dtype(objective, config, tokenizer, torch_dtype):
    """``(objective, Auto class, dtype)`` of a load: the dtype is ``torch_dtype``, or for None /
    ``"auto"`` the checkpoint's own (``config.dtype``, float32 when it names none). The real load and
    the meta model both take it, so a memory plan is made for the dtype that loads (transformers 4
    reads ``dtype=None`` as float32, transformers 5 as the checkpoint's)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    chosen = resolve_objective(objective, model=config, tokenizer=tokenizer)
    auto_class = AutoModelForMaskedLM if chosen.name == "masked_lm" else AutoModelForCausalLM
    saved = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    dtype = (None if torch_dtype in (None, "auto") else resolve_dtype(torch_dtype)) \
        or resolve_dtype(saved, default=None) or torch.float32
    return chosen, auto_class, dtype


def load_meta_model(name_or_path, objective="auto", torch_dtype=None, trust_remote_code: bool = False):
    """``(model, tokenizer, objective)`` as :func:`load_base_model` would return them, with the model
    built on the meta device from its config alone: every parameter's name, shape and dtype (and the
    tied weights), no weights read. What memory plans and early ``params`` checks look at."""
    import torch

    _, _, _, config, tokenizer = _config_and_tokenizer(name_or_path, trust_remote_code)
    chosen, auto_class, dtype = _class_and_dtype(objective, config, tokenizer, torch_dtype)
    with torch.device("meta"):
        model = auto_class.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    return model, tokenizer, chosen


def unknown_words(tokenizer, words) -> list[str]:
    """The words among ``words`` that the tokenizer turns (in part) into its unknown token, as they
    are read after a word of context (the form the objectives tokenize)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    distinct = list(dict.fromkeys(str(w) for w in words))
    ids = continuation_ids(tokenizer, ["The "] * len(distinct), distinct) if distinct else []
    return [word for word, row in zip(distinct, ids) if unk in row]


def check_target_words(tokenizer, words_by_class: dict, where: str = "the training data") -> None:
    """Raise if a target word of any class is (in part) the tokenizer's unknown token."""
    problems = [f"{word!r} (class {cls!r})" for cls, words in words_by_class.items()
                for word in unknown_words(tokenizer, words)]
    if problems:
        label = f"{type(tokenizer).__name__} of {getattr(tokenizer, 'name_or_path', '?')!r}"
        raise ValueError(
            f"the tokenizer {label} maps target word(s) {', '.join(problems[:10])}"
            f"{' and more' if len(problems) > 10 else ''} from {where} to its unknown token "
            f"{tokenizer.unk_token!r}: the model cannot predict them, so there is nothing to learn. Use a model "
            f"whose vocabulary holds these words, or change `data.feature_targets`")


def _accelerate_map(device_map):
    """``device_map`` as accelerate reads it: in a module map a CUDA device is its index (``"cuda:1"`` → 1)."""
    if not isinstance(device_map, dict):
        return device_map
    return {module: int(value.partition(":")[2] or 0) if isinstance(value, str) and value.startswith("cuda")
            else value for module, value in device_map.items()}


def _check_not_offloaded(model, name: str, device_map) -> None:
    """A map such as ``"auto"`` offloads to the CPU or disk what the GPUs cannot hold; an offloaded weight
    has no gradient, so that is an error naming how much went where."""
    placed = getattr(model, "hf_device_map", None) or {}
    offloaded = sorted({str(d) for d in placed.values() if str(d) in ("cpu", "disk")})
    meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if meta or (offloaded and any(str(d) not in ("cpu", "disk") for d in placed.values())):
        raise ValueError(
            f"device_map {device_map!r} offloaded part of base model {name!r} to {offloaded or ['meta']} "
            f"({len(meta)} parameter tensors not in memory): the GPUs cannot hold it, and an offloaded weight has "
            f"no gradient. Use more or larger GPUs or torch_dtype bfloat16: the whole base model must fit in GPU "
            f"memory (pre-pruning shrinks only the GRADIEND)")


def load_base_model(
    name_or_path,
    objective="auto",
    torch_dtype=None,
    trust_remote_code: bool = False,
    attn_implementation: str = "eager",
    device=None,
    device_map=None,
):
    """Return ``(model, tokenizer, objective)`` for a local folder or a cached Hugging Face id.

    ``objective``: ``"auto"`` (masked LM when the tokenizer has a mask token and the config is a
    masked LM, else causal LM), ``"masked_lm"``, ``"causal_lm"`` or an :class:`Objective`.
    ``device_map``: ``"auto"``, a device, or ``{module name: device}``, as ``from_pretrained`` takes it.
    """
    from safetensors import SafetensorError

    check_devices("load_base_model", device=device, device_map=device_map, torch_dtype=torch_dtype)
    name, path, source, config, tokenizer = _config_and_tokenizer(name_or_path, trust_remote_code)
    chosen, auto_class, dtype = _class_and_dtype(objective, config, tokenizer, torch_dtype)
    try:
        model = auto_class.from_pretrained(
            source,
            dtype=dtype,
            attn_implementation=attn_implementation,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            **({} if device_map is None else {"device_map": _accelerate_map(device_map)}),
        )
    except SafetensorError as error:  # a truncated or damaged weights file (not an OSError)
        raise _unreadable_folder(path, "safetensors weights", error) from error
    except OSError as error:
        raise BaseModelNotAvailableError(
            f"cannot load the weights of base model {name!r} as safetensors (only safetensors weights "
            f"are loaded, and nothing is downloaded here): {str(error).splitlines()[0] if str(error) else error!r}"
        ) from error
    _check_not_offloaded(model, name, device_map)
    if chosen.name == "causal_lm":
        ensure_pad_token(tokenizer)
    model.eval()
    if device is not None:
        model.to(device)
    logger.info("loaded %s (%s, %s attention) from %s", type(model).__name__, chosen.name, attn_implementation, name)
    return model, tokenizer, chosen
