"""``ModelWithGradiend``: the abstract pairing of a base model (any ``nn.Module``) with its GRADIEND.

The base class holds what every model family shares: encoding, rewriting the base model
(``θ + lr·u``), importance, pruning, the sign flip, class directions, saving / loading
(:mod:`.with_gradiend_io`). A family implements the abstract hooks and may override the optional
ones (``_gradiend_parameters``, ``_create_gradiend``, the device hooks, ``_post_init_from_pretrained``);
``ModelWithGradiend.from_pretrained`` builds the text family (:mod:`gradiend.model.text`).

``source`` is the gradient the encoder reads, ``target`` the one the decoder reconstructs
(``"factual"``, ``"alternative"``, ``"diff"`` = factual − alternative).
"""
from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from gradiend import cells
from gradiend.model import rewrite as rw
from gradiend.model import with_gradiend_io as io
from gradiend.model.backbone import select_by_patterns
from gradiend.model.gradiend_model import UPDATE_PARTS
from gradiend.model.param_mapped import REPRS, ParamMappedGradiendModel
from gradiend.objectives.losses import check_kind
from gradiend.util.devices import input_device
from gradiend.util.parameters import parameters_by_name


class ModelWithGradiend(nn.Module, ABC):
    """Abstract base: a base model + :class:`ParamMappedGradiendModel` (see the module docstring)."""

    #: keyword arguments ``from_pretrained`` accepts besides the common ones (None: not checked)
    _from_pretrained_kwargs: frozenset | None = None
    #: of those, the ones handed to the constructor instead of the hooks
    _init_only_kwargs: tuple = ()

    def __init__(self, base_model: nn.Module, gradiend: ParamMappedGradiendModel, source: str = "factual",
                 target: str = "diff", feature_class_encoding_direction: Mapping[str, int] | None = None,
                 base_model_id: str | None = None):
        super().__init__()
        if not isinstance(gradiend, ParamMappedGradiendModel):
            raise TypeError(f"gradiend must be a ParamMappedGradiendModel, got {type(gradiend).__name__}")
        self.base_model = base_model
        self.gradiend = gradiend
        self.source = check_kind(source)
        self.target = check_kind(target)
        self.base_model_id = base_model_id if base_model_id is not None else getattr(base_model, "name_or_path", None)
        self.feature_class_encoding_direction: dict[str, int] | None = None
        if feature_class_encoding_direction is not None:
            self.set_feature_class_encoding_direction(feature_class_encoding_direction)
        self._ensure_gradiend_param_map_spec()
        self._segments_cache: tuple | None = None
        self._sync_requires_grad()  # looks up every mapped parameter: a map that does not fit is an error

    # ----------------------------------------------------------------- subclass hooks
    @abstractmethod
    def create_gradients(self, *args, **kwargs):
        """GRADIEND-input gradient of one modality-specific example: a flat tensor (input space) or a
        dict of per-parameter gradients that :meth:`ParamMappedGradiendModel.flatten` accepts."""

    @classmethod
    @abstractmethod
    def _load_model(cls, load_directory, base_model_id=None, gradiend_kwargs: Mapping | None = None, **kwargs) -> tuple:
        """Load the base model: from ``base_model_id`` when set (``load_directory`` is then the
        GRADIEND checkpoint), else from ``load_directory``. Returns ``(base_model, *extra)``, ``extra``
        being the constructor's positional arguments after ``gradiend`` (text: tokenizer, objective)."""

    @abstractmethod
    def _save_model(self, save_directory) -> dict | None:
        """Persist base-model artifacts; return metadata for ``config.json`` (``base_model``: id or folder)."""

    @classmethod
    def _gradiend_parameters(cls, base_model: nn.Module, params=None) -> dict[str, nn.Parameter]:
        """The base parameters a fresh GRADIEND maps: all, or those ``params`` (names or ``*`` patterns) match;
        a tied parameter matches through any of its names and is mapped once, under the first that matches."""
        if params is None:
            return dict(base_model.named_parameters())
        matched = select_by_patterns(parameters_by_name(base_model), params, base_model)
        first: dict[int, str] = {}
        for name, param in matched.items():
            first.setdefault(id(param), name)
        return {name: matched[name] for name in first.values()}

    @classmethod
    def _create_gradiend(cls, base_model: nn.Module, *, params=None, latent_dim: int = 1,
                         activation_encoder: str = "tanh", activation_decoder: str = "id", bias_decoder: bool = True,
                         gradiend_dtype=torch.float32, lazy_gradiend: bool = False, **_) -> ParamMappedGradiendModel:
        """A fresh GRADIEND over :meth:`_gradiend_parameters`, from the caller's torch RNG; ``lazy_gradiend``
        builds it on the meta device (prune, then ``materialize``)."""
        named = cls._gradiend_parameters(base_model, params)
        return ParamMappedGradiendModel(
            {n: tuple(p.shape) for n, p in named.items()}, latent_dim=latent_dim, activation_encoder=activation_encoder,
            activation_decoder=activation_decoder, bias_decoder=bias_decoder, torch_dtype=gradiend_dtype,
            device="meta" if lazy_gradiend else None)

    @classmethod
    def _resolve_device_config(cls, device=None) -> dict[str, Any]:
        """``{"base_model", "encoder", "decoder"}`` devices; the default puts all three on ``device``."""
        return {"base_model": device, "encoder": device, "decoder": device}

    @classmethod
    def _get_device_config(cls, device=None, **_) -> dict[str, Any]:
        """Devices for loading (see :meth:`_resolve_device_config`). The encoder and decoder of one
        GRADIEND live on one device; a config that splits them is an error."""
        config = cls._resolve_device_config(device)
        if config.get("encoder") != config.get("decoder"):
            raise ValueError(f"encoder and decoder must share a device, got {config}")
        return config

    def _post_init_from_pretrained(self) -> None:
        """Called at the end of :meth:`from_pretrained` (e.g. to freeze base layers); default no-op."""

    def _init_fields(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this object (subclasses add theirs)."""
        return {"base_model": self.base_model, "gradiend": self.gradiend, "source": self.source,
                "target": self.target, "feature_class_encoding_direction": self.feature_class_encoding_direction,
                "base_model_id": self.base_model_id}

    def _context(self) -> dict[str, Any]:
        """What ``gradiend_context.json`` records (subclasses add theirs)."""
        return {"source": self.source, "target": self.target,
                "feature_class_encoding_direction": self.feature_class_encoding_direction}

    # ----------------------------------------------------------------- bookkeeping
    def _ensure_gradiend_param_map_spec(self) -> None:
        """``gradiend.param_map`` must be ``{name: {"shape": tuple, "repr": all|mask|indices, ...}}``."""
        param_map = getattr(self.gradiend, "param_map", None)
        if not isinstance(param_map, dict) or not param_map:
            raise ValueError("gradiend.param_map must be a non-empty dict of per-parameter specs")
        for name, spec in param_map.items():
            if not isinstance(spec, dict) or "shape" not in spec or spec.get("repr") not in REPRS:
                raise ValueError(f"gradiend.param_map[{name!r}] must be a spec dict with 'shape' and 'repr' in "
                                 f"{list(REPRS)}, got {spec!r}")

    def _sync_requires_grad(self) -> None:
        """Only mapped base parameters need gradients; freezing the rest saves backward work."""
        mapped = {id(p) for p in self.mapped_parameters().values()}
        for param in self.base_model.parameters():
            param.requires_grad_(id(param) in mapped)

    def mapped_parameters(self) -> dict[str, nn.Parameter]:
        """The base-model parameters in the GRADIEND map, in map order."""
        return rw.lookup_parameters(self.base_model, self.gradiend.param_map)

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """The GRADIEND's parameters: the trainable part (the base model is only read)."""
        return self.gradiend.parameters(recurse)

    def __len__(self) -> int:
        return self.gradiend.input_dim

    @property
    def pruned_length(self) -> int:
        return self.gradiend.input_dim

    @property
    def unpruned_length(self) -> int:
        return sum(int(torch.Size(s).numel()) for s in self.gradiend.base_layout.values())

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(base_model={self.base_model_id!r}, input_dim={len(self)}, "
                f"latent_dim={self.gradiend.latent_dim}, source={self.source!r}, target={self.target!r})")

    def _base_device(self) -> torch.device:
        """Where inputs go: the device of the base model's input embeddings (its first, when it is split)."""
        return input_device(self.base_model)

    def _flat_segments(self, params: Mapping[str, nn.Parameter]) -> list:
        """``(name, start, stop, selected flat indices or None)`` of the mapped ``params``, each index on its
        parameter's device (a split base model has several), rebuilt only when the map (pruning) or a
        device changes."""
        param_map, devices = self.gradiend.param_map, tuple(p.device for p in params.values())
        cached = self._segments_cache
        if cached is None or cached[0] is not param_map or cached[1] != devices:
            segments = []
            for name, start, stop in self.gradiend.segments():
                selected = self.gradiend.selected_flat_indices(name)
                segments.append((name, start, stop, None if selected is None else selected.to(params[name].device)))
            self._segments_cache = cached = (param_map, devices, segments)
        return cached[2]

    # ----------------------------------------------------------------- feature classes
    def set_feature_class_encoding_direction(self, directions: Mapping[str, int]) -> None:
        """Set ``{class: +1 | −1 | 0}`` once; setting a different mapping later is an error."""
        clean = {}
        for cls, value in directions.items():
            if value not in (-1, 0, 1):
                raise ValueError(f"encoding direction of class {cls!r} must be +1, -1 or 0, got {value!r}")
            clean[str(cls)] = int(value)
        current = self.feature_class_encoding_direction
        if current is not None and current != clean:
            raise ValueError(f"feature_class_encoding_direction is already set to {current}; refusing {clean}")
        self.feature_class_encoding_direction = clean

    def feature_factor(self, target_class: str, strengthen: bool = True) -> float:
        """The decoder input that strengthens (or weakens) ``target_class``.

        With ``target = g_f − g_a``, adding the decoded update pushes toward the class whose
        *alternative* gradient was encoded, hence ``+dir[C]`` for an alternative source and
        ``−dir[C]`` otherwise; weakening uses the opposite sign.
        """
        directions = self.feature_class_encoding_direction
        if directions is None:
            raise ValueError("feature_class_encoding_direction is not set; call set_feature_class_encoding_direction")
        if target_class not in directions:
            raise ValueError(f"unknown class {target_class!r}; known classes: {sorted(directions)}")
        direction = directions[target_class]
        if direction == 0:
            raise ValueError(f"class {target_class!r} has encoding direction 0: it has no feature factor")
        return cells.feature_factor(self.source, direction, strengthen)  # the one sign rule (gradiend.cells)

    # ----------------------------------------------------------------- encoding
    def encode(self, x, **kwargs) -> torch.Tensor:
        """Encoded value(s): ``x`` a gradient (a tensor whose last dimension is the input size, or a dict of
        per-parameter gradients; entries the map does not name are ignored), or a raw input →
        :meth:`create_gradients` → encoder."""
        flat = isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[-1] == self.gradiend.input_dim
        if not (flat or isinstance(x, Mapping)):
            x = self.create_gradients(x, **kwargs)
        return self.gradiend.forward_encoder(x)

    # ----------------------------------------------------------------- rewriting
    @torch.no_grad()
    def update_vector(self, feature_factor=1.0, part: str = "decoder") -> torch.Tensor:
        """The input-space update ``u`` of a rewrite (``decoder(ff)`` or a raw weight vector)."""
        if part == "decoder":
            return self.gradiend.forward_decoder(feature_factor).detach().reshape(-1)
        if part not in UPDATE_PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {['decoder', *UPDATE_PARTS]}")
        return self.gradiend.get_update_vector(part)

    def rewrite_base_model(self, learning_rate: float, feature_factor=1.0, part: str = "decoder",
                           inplace: bool = False) -> nn.Module:
        """The base model with ``θ + lr·u`` on the mapped parameters (a copy unless ``inplace``).

        ``part="decoder"``: ``u = decoder(ff)`` (``ff·w + b``: the bias is always added); the other
        parts (decoder-weight, decoder-bias, decoder-sum, encoder-weight) use that raw vector and
        ignore ``feature_factor``. The learning rate is used as given; direction comes from ``ff``.
        """
        vector = self.update_vector(feature_factor, part)
        model = self.base_model if inplace else copy.deepcopy(self.base_model)
        rw.add_update(rw.lookup_parameters(model, self.gradiend.param_map), self.gradiend, vector, learning_rate)
        return model

    @contextlib.contextmanager
    def applied_update(self, learning_rate: float, feature_factor=1.0, part: str = "decoder") -> Iterator[nn.Module]:
        """Apply the rewrite to the loaded base model in place for the block; restore it bitwise after."""
        vector = self.update_vector(feature_factor, part)
        params = self.mapped_parameters()
        saved = rw.snapshot(params, self.gradiend)
        try:
            rw.add_update(params, self.gradiend, vector, learning_rate)
            yield self.base_model
        finally:
            rw.restore(params, self.gradiend, saved)

    # ----------------------------------------------------------------- importance, pruning, sign
    def get_weight_importance(self, part: str = "decoder-weight") -> torch.Tensor:
        """Importance per current input dimension (see :meth:`GradiendModel.get_weight_importance`)."""
        return self.gradiend.get_weight_importance(part)

    def get_topk_weights(self, part: str = "decoder-weight", topk: int | float = 1000) -> list[int]:
        """Base-global indices of the top-k input dimensions, most important first.

        Base-global = index in the unpruned concatenation of the full mapped parameters, so that
        differently pruned GRADIENDs of one base model are comparable.
        """
        local = self.gradiend.get_topk_weights(part, topk)
        return self.gradiend.base_global_indices()[local].tolist()

    def get_enhancer_mask(self, topk: int | float | None = None, part: str = "decoder-weight",
                          threshold: float | None = None) -> dict[str, torch.Tensor]:
        """``{base parameter: bool mask of its shape}``: the entries a rewrite changes.

        Without ``topk`` / ``threshold``: every mapped entry; with them: only the entries kept by
        that importance rule (the same keep-set as :meth:`prune_gradiend`).
        """
        keep = torch.ones(self.gradiend.input_dim, dtype=torch.bool)
        if topk is not None or threshold is not None:
            keep = self.gradiend.keep_mask(topk=topk, threshold=threshold, part=part)
        return self.gradiend.unflatten(keep)  # False where the map selects nothing

    def prune_gradiend(self, *, topk=None, threshold=None, mask=None, part: str = "decoder-weight",
                       importance=None, inplace: bool = True, return_mask: bool = False):
        """Prune the GRADIEND input space (see :meth:`GradiendModel.prune`).

        ``inplace=False`` returns a new object that shares this one's base model but has its own
        pruned GRADIEND (the base model is never copied).
        """
        pruned, keep = self.gradiend.prune(topk=topk, threshold=threshold, mask=mask, importance=importance,
                                           part=part, inplace=inplace, return_mask=True)
        if inplace:
            self._sync_requires_grad()
        result = self if inplace else self._with(gradiend=pruned)
        return (result, keep) if return_mask else result

    def invert_encoding(self, update_direction: bool = True) -> None:
        """Flip the encoded sign, reconstruction unchanged; ``update_direction`` (manual flips) negates the
        class directions with it so they keep describing the sign (training normalisation passes False)."""
        self.gradiend.invert_encoding()
        if update_direction and self.feature_class_encoding_direction is not None:
            self.feature_class_encoding_direction = {c: -d for c, d in self.feature_class_encoding_direction.items()}

    def _with(self, **changes) -> "ModelWithGradiend":
        return type(self)(**{**self._init_fields(), **changes})

    def with_original_base_model(self, new_base: nn.Module) -> "ModelWithGradiend":
        """The same GRADIEND (shared) over another base model, e.g. the plain LM instead of a training head."""
        return self._with(base_model=new_base)

    # ----------------------------------------------------------------- save / load
    def save_pretrained(self, save_directory, training: dict | None = None):
        """Write ``gradiend_context.json``, the :meth:`_save_model` artifacts and the GRADIEND checkpoint."""
        return io.save_model_with_gradiend(self, save_directory, training=training)

    @classmethod
    def from_pretrained(cls, load_directory=None, **kwargs) -> "ModelWithGradiend":
        """Load base model + GRADIEND (:func:`gradiend.model.with_gradiend_io.load_model_with_gradiend`):
        ``from_pretrained(base_model=..., gradiend_model="ckpt")``, ``from_pretrained("ckpt")`` (base model
        from the checkpoint's reference) or ``from_pretrained(base)`` (fresh GRADIEND). On the abstract
        base class this builds a :class:`~gradiend.model.text.TextModelWithGradiend`."""
        if cls is ModelWithGradiend:
            from gradiend.model.text import TextModelWithGradiend

            cls = TextModelWithGradiend
        return io.load_model_with_gradiend(cls, load_directory, **kwargs)
