"""A base language model together with its GRADIEND: gradients, encoding, rewriting, pruning.

``source`` is the gradient the encoder reads, ``target`` the one the decoder reconstructs
(``"factual"``: loss of the factual token, ``"alternative"``: of the alternative token, ``"diff"``:
``L_f − L_a``). The constructor defaults are the reference's (``factual`` / ``diff``); the trainer
passes its own (``alternative`` / ``diff``).

Loading and saving live in :mod:`gradiend.model.with_gradiend_io`, the in-place update maths in
:mod:`gradiend.model.rewrite`.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from gradiend import cells
from gradiend.model import rewrite as rw
from gradiend.model import with_gradiend_io as io
from gradiend.model.param_mapped import ParamMappedGradiendModel
from gradiend.objectives.base import TargetBatch, resolve_objective
from gradiend.objectives.gradients import FlatSegment, flat_parameter_gradients, jvp_directional
from gradiend.objectives.losses import check_kind


def _as_list(value, name: str) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    values = list(value)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"{name} must be a string or a sequence of strings")
    return values


class ModelWithGradiend(nn.Module):
    """Base Hugging Face model + :class:`ParamMappedGradiendModel` + tokenizer + objective."""

    def __init__(
        self,
        base_model: nn.Module,
        gradiend: ParamMappedGradiendModel,
        tokenizer=None,
        objective: Any = "auto",
        source: str = "factual",
        target: str = "diff",
        feature_class_encoding_direction: Mapping[str, int] | None = None,
        base_model_id: str | None = None,
        max_length: int | None = None,
    ):
        super().__init__()
        if not isinstance(gradiend, ParamMappedGradiendModel):
            raise TypeError(f"gradiend must be a ParamMappedGradiendModel, got {type(gradiend).__name__}")
        self.base_model = base_model
        self.gradiend = gradiend
        self.tokenizer = tokenizer
        self.objective = resolve_objective(objective, model=base_model, tokenizer=tokenizer)
        self.source = check_kind(source)
        self.target = check_kind(target)
        self.base_model_id = base_model_id if base_model_id is not None else getattr(base_model, "name_or_path", None)
        self.max_length = max_length
        self.feature_class_encoding_direction: dict[str, int] | None = None
        if feature_class_encoding_direction is not None:
            self.set_feature_class_encoding_direction(feature_class_encoding_direction)
        io.check_map_fits(base_model, gradiend)
        self._segments_cache: tuple | None = None
        self._sync_requires_grad()

    # ----------------------------------------------------------------- bookkeeping
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
        return (f"{type(self).__name__}(base_model={self.base_model_id!r}, objective={self.objective.name!r}, "
                f"input_dim={len(self)}, latent_dim={self.gradiend.latent_dim}, source={self.source!r}, "
                f"target={self.target!r})")

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
        ``−dir[C]`` otherwise (reference §3.4); weakening uses the opposite sign.
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

    # ----------------------------------------------------------------- gradients and encoding
    def prepare(self, masked, factual, alternative=None) -> TargetBatch:
        """Tokenised, padded batch of masked rows on the base model's device."""
        if self.tokenizer is None:
            raise ValueError("this ModelWithGradiend has no tokenizer; pass one to work on text")
        batch = self.objective.prepare(self.tokenizer, _as_list(masked, "masked"), _as_list(factual, "factual"),
                                       _as_list(alternative, "alternative"), max_length=self.max_length)
        return batch.to(self._base_device())

    def _base_device(self) -> torch.device:
        return next(self.base_model.parameters()).device

    def _as_batch(self, batch) -> TargetBatch:
        if isinstance(batch, TargetBatch):
            return batch.to(self._base_device())
        alternative = batch["alternative"] if "alternative" in batch else None
        return self.prepare(batch["masked"], batch["factual"], alternative)

    def _flat_segments(self) -> list[FlatSegment]:
        """The GRADIEND input layout with selected indices on the base device, rebuilt only when the
        map (pruning) or the device changes."""
        param_map, device = self.gradiend.param_map, self._base_device()
        cached = self._segments_cache
        if cached is None or cached[0] is not param_map or cached[1] != device:
            segments = []
            for name, start, stop in self.gradiend.segments():
                selected = self.gradiend.selected_flat_indices(name)
                segments.append((name, start, stop, None if selected is None else selected.to(device)))
            self._segments_cache = cached = (param_map, device, segments)
        return cached[2]

    def _gradients(self, batch: TargetBatch, kinds: Sequence[str],
                   buffers: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Input-space float32 gradients per kind, written into ``buffers`` (reused when they fit)."""
        gradiend, out = self.gradiend, {}
        for kind in dict.fromkeys(kinds):
            buffer = None if buffers is None else buffers.get(kind)
            if buffer is None or buffer.shape != (gradiend.input_dim,) or buffer.device != gradiend.device:
                buffer = torch.empty(gradiend.input_dim, dtype=torch.float32, device=gradiend.device)
                if buffers is not None:
                    buffers[kind] = buffer
            out[kind] = buffer
        return flat_parameter_gradients(self.base_model, self.mapped_parameters(), self.objective, batch, out,
                                        self._flat_segments())

    def create_gradients(self, masked, factual, alternative=None, kind: str | None = None) -> torch.Tensor:
        """Flattened GRADIEND-input gradient of the batch loss (mean over scored positions).

        ``kind`` defaults to ``self.source``; ``"alternative"`` and ``"diff"`` need ``alternative``.
        """
        kind = check_kind(kind or self.source)
        return self._gradients(self.prepare(masked, factual, alternative), [kind])[kind]

    def source_and_target_gradients(self, batch, buffers: dict[str, torch.Tensor] | None = None
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(source, target)`` input-space gradients of a batch from ONE forward pass.

        ``batch``: a :class:`TargetBatch` or a mapping with ``masked``, ``factual``, ``alternative``.
        When source and target are the same kind, the same tensor is returned twice. ``buffers``: a
        dict the caller keeps across calls (a training loop); the gradients are written into its
        float32 vectors (created on first use), so the next call overwrites the returned tensors.
        """
        grads = self._gradients(self._as_batch(batch), [self.source, self.target], buffers)
        return grads[self.source], grads[self.target]

    def encode(self, x, factual=None, alternative=None, kind: str | None = None) -> torch.Tensor:
        """Encoded value(s).

        ``x`` is a gradient (input-space tensor, or dict of full per-parameter tensors) → the
        encoder output; or masked text(s) with ``factual`` (and ``alternative``) → one gradient per
        text (the reference's way, one backward each), encoded: shape ``(latent,)`` for one text,
        ``(B, latent)`` for a list. For many texts :meth:`encode_batch` is much faster.
        """
        if isinstance(x, (torch.Tensor, Mapping)):
            return self.gradiend.forward_encoder(x)
        texts = _as_list(x, "x")
        if factual is None:
            raise ValueError("encoding raw text needs the factual target(s)")
        facts, alts = _as_list(factual, "factual"), _as_list(alternative, "alternative")
        if len(facts) != len(texts) or (alts is not None and len(alts) != len(texts)):
            raise ValueError(f"got {len(texts)} text(s) but {len(facts)} factual / "
                             f"{None if alts is None else len(alts)} alternative target(s)")
        encoded = []
        for i, text in enumerate(texts):
            grad = self.create_gradients([text], [facts[i]], None if alts is None else [alts[i]], kind)
            with torch.no_grad():
                encoded.append(self.gradiend.forward_encoder(grad))
        return encoded[0] if isinstance(x, str) else torch.stack(encoded)

    def encoder_tangents(self, latent_index: int = 0) -> dict[str, torch.Tensor]:
        """Encoder weight row ``latent_index`` laid out on the mapped parameters (zeros elsewhere)."""
        return self.gradiend.unflatten(self.gradiend.encoder_weight[latent_index].detach())

    @torch.no_grad()
    def encode_batch(self, masked, factual=None, alternative=None, kind: str | None = None,
                     plain: bool = False) -> torch.Tensor:
        """Encoded value of every row, shape ``(B,)`` (``(B, latent)`` for latent > 1).

        ``masked``: texts with their ``factual`` (and ``alternative``) targets, or a
        :class:`TargetBatch` from :meth:`prepare` (which carries its targets), so that a caller
        encoding the same rows repeatedly tokenises them once.

        Fast path: one forward-mode JVP pass per latent unit gives each row's ``w·∇θ L_row`` without
        any backward; encoded = act(that + bias). ``plain=True`` computes one gradient per row
        instead (the reference path; agrees to float rounding).
        """
        kind = check_kind(kind or self.source)
        prepared = isinstance(masked, TargetBatch)
        if prepared and (factual is not None or alternative is not None):
            raise ValueError("a prepared TargetBatch carries its own targets; pass no factual / alternative")
        if plain and prepared:
            batch = masked.to(self._base_device())
            rows = [self._gradients(batch.select([i]), [kind])[kind] for i in range(batch.n_rows)]
            encoded = self.gradiend.forward_encoder(torch.stack(rows))
        elif plain:
            encoded = self.encode(_as_list(masked, "masked"), factual, alternative, kind=kind)
        else:
            batch = self._as_batch(masked if prepared else
                                   {"masked": masked, "factual": factual, "alternative": alternative})
            gradiend = self.gradiend
            dots = [jvp_directional(self.base_model, self.encoder_tangents(j), self.objective, batch, kind, "rows")
                    for j in range(gradiend.latent_dim)]
            pre = torch.stack(dots, dim=-1).to(device=gradiend.device, dtype=gradiend.dtype) + gradiend.encoder_bias
            encoded = gradiend.encoder_activation(pre)
        return encoded[:, 0] if self.gradiend.latent_dim == 1 else encoded

    # ----------------------------------------------------------------- rewriting
    def update_vector(self, feature_factor=1.0, part: str = "decoder") -> torch.Tensor:
        """The input-space update ``u`` of a rewrite (``decoder(ff)`` or a raw weight vector)."""
        return rw.update_vector(self.gradiend, feature_factor, part)

    def rewrite_base_model(self, learning_rate: float, feature_factor=1.0, part: str = "decoder",
                           inplace: bool = False) -> nn.Module:
        """A plain Hugging Face model with ``θ + lr·u`` on the mapped parameters (a copy unless ``inplace``).

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
        with rw.applied_update(self.base_model, self.gradiend, vector, learning_rate) as model:
            yield model

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

    def prune_gradiend(self, *, topk=None, threshold=None, mask=None, part: str = "decoder-weight",
                       importance=None, inplace: bool = True, return_mask: bool = False):
        """Prune the GRADIEND input space (see :meth:`GradiendModel.prune`).

        ``inplace=False`` returns a new ModelWithGradiend that shares this one's base model and
        tokenizer but has its own pruned GRADIEND (the base model is never copied).
        """
        pruned, keep = self.gradiend.prune(topk=topk, threshold=threshold, mask=mask, importance=importance,
                                           part=part, inplace=inplace, return_mask=True)
        if inplace:
            self._sync_requires_grad()
        result = self if inplace else self._with(gradiend=pruned)
        return (result, keep) if return_mask else result

    def invert_encoding(self, update_direction: bool = True) -> None:
        """Flip the sign of the encoded value; reconstruction is unchanged (see ``GradiendModel.invert_encoding``).

        ``update_direction`` also negates ``feature_class_encoding_direction`` so that class
        directions keep describing the encoded sign (manual flips); training normalisation passes
        False.
        """
        self.gradiend.invert_encoding()
        if update_direction and self.feature_class_encoding_direction is not None:
            self.feature_class_encoding_direction = {c: -d for c, d in self.feature_class_encoding_direction.items()}

    def _with(self, **changes) -> "ModelWithGradiend":
        fields = {
            "base_model": self.base_model, "gradiend": self.gradiend, "tokenizer": self.tokenizer,
            "objective": self.objective, "source": self.source, "target": self.target,
            "feature_class_encoding_direction": self.feature_class_encoding_direction,
            "base_model_id": self.base_model_id, "max_length": self.max_length,
        }
        return type(self)(**{**fields, **changes})

    def with_original_base_model(self, new_base: nn.Module) -> "ModelWithGradiend":
        """The same GRADIEND (shared) over another base model, e.g. the plain LM instead of a training head."""
        return self._with(base_model=new_base)

    # ----------------------------------------------------------------- devices
    def cuda(self, device=None) -> "ModelWithGradiend":
        if device is None:
            device = "cuda"
        elif isinstance(device, int):
            device = f"cuda:{device}"
        return self.to(device)

    def cpu(self) -> "ModelWithGradiend":
        return self.to("cpu")

    # ----------------------------------------------------------------- save / load
    def save_pretrained(self, save_directory, training: dict | None = None):
        """Write the GRADIEND checkpoint plus ``gradiend_context.json``; the base model is not stored."""
        return io.save_model_with_gradiend(self, save_directory, training=training)

    @classmethod
    def from_pretrained(cls, load_directory=None, **kwargs) -> "ModelWithGradiend":
        """Load base model + GRADIEND; see :func:`gradiend.model.with_gradiend_io.load_model_with_gradiend`.

        Forms: ``from_pretrained(base_model="id", gradiend_model="ckpt")``;
        ``from_pretrained("ckpt")`` (base model id read from the checkpoint);
        ``from_pretrained("base-model-id")`` (fresh, untrained GRADIEND over the backbone).
        """
        return io.load_model_with_gradiend(cls, load_directory, **kwargs)
