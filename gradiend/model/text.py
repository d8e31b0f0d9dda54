"""``TextModelWithGradiend``: the text family of :class:`ModelWithGradiend` (masked and causal LMs).

Adds the tokenizer and the prediction objective. The base model is loaded offline from safetensors
(:func:`gradiend.model.loading.load_base_model`) and never copied into a checkpoint: its hub id or
folder is recorded instead (:mod:`gradiend.model.base_reference`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from gradiend.model.backbone import mapped_parameters
from gradiend.model.param_mapped import ParamMappedGradiendModel
from gradiend.model.with_gradiend import ModelWithGradiend
from gradiend.objectives.base import TargetBatch, resolve_objective
from gradiend.objectives.gradients import flat_parameter_gradients, jvp_directional
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


class TextModelWithGradiend(ModelWithGradiend):
    """Hugging Face masked / causal LM + :class:`ParamMappedGradiendModel` + tokenizer + objective."""

    _from_pretrained_kwargs = frozenset({
        "tokenizer", "params", "torch_dtype", "trust_remote_code", "latent_dim", "activation_encoder",
        "activation_decoder", "bias_decoder", "gradiend_dtype", "objective", "lazy_gradiend",
        "attn_implementation", "max_length", "device_map"})
    _init_only_kwargs = ("max_length",)

    def __init__(self, base_model: nn.Module, gradiend: ParamMappedGradiendModel, tokenizer=None,
                 objective: Any = "auto", source: str = "factual", target: str = "diff",
                 feature_class_encoding_direction: Mapping[str, int] | None = None, base_model_id: str | None = None,
                 max_length: int | None = None):
        super().__init__(base_model, gradiend, source=source, target=target,
                         feature_class_encoding_direction=feature_class_encoding_direction,
                         base_model_id=base_model_id)
        self.tokenizer = tokenizer
        self.objective = resolve_objective(objective, model=base_model, tokenizer=tokenizer)
        self.max_length = max_length

    def _init_fields(self) -> dict[str, Any]:
        return {**super()._init_fields(), "tokenizer": self.tokenizer, "objective": self.objective,
                "max_length": self.max_length}

    def _context(self) -> dict[str, Any]:
        return {**super()._context(), "objective": self.objective.name}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(base_model={self.base_model_id!r}, objective={self.objective.name!r}, "
                f"input_dim={len(self)}, latent_dim={self.gradiend.latent_dim}, source={self.source!r}, "
                f"target={self.target!r})")

    # ----------------------------------------------------------------- hooks
    @classmethod
    def _load_model(cls, load_directory, base_model_id=None, gradiend_kwargs=None, *, tokenizer=None,
                    objective="auto", torch_dtype=None, trust_remote_code: bool = False,
                    attn_implementation: str = "eager", device_config=None, device_map=None, **_) -> tuple:
        """``(base model, tokenizer, objective)``; a loaded ``nn.Module`` is used as is (pass ``tokenizer``);
        ``device_map`` splits a loaded one over devices (:func:`~gradiend.model.loading.load_base_model`)."""
        from gradiend.model.loading import load_base_model

        reference = base_model_id if base_model_id is not None else load_directory
        if isinstance(reference, nn.Module):
            return reference, tokenizer, objective
        info = gradiend_kwargs or {}
        saved = (info.get("context") or {}).get("objective")
        if objective == "auto" and info.get("base_from_checkpoint") and saved:
            objective = saved  # the saved objective fits the recorded base model
        model, loaded_tokenizer, objective = load_base_model(
            reference, objective=objective, torch_dtype=torch_dtype, trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation, device=(device_config or {}).get("base_model"),
            device_map=device_map)
        return model, tokenizer if tokenizer is not None else loaded_tokenizer, objective

    @classmethod
    def _gradiend_parameters(cls, base_model: nn.Module, params=None) -> dict[str, nn.Parameter]:
        """The Hugging Face backbone's parameters (heads excluded; ``params`` patterns narrow it)."""
        return mapped_parameters(base_model, params)

    def _save_model(self, save_directory) -> dict:
        """Nothing is copied: the base model's id or folder (and the tokenizer's) are recorded."""
        tokenizer_ref = getattr(self.tokenizer, "name_or_path", None) or self.base_model_id
        return {"base_model": self.base_model_id, "tokenizer": tokenizer_ref}

    # ----------------------------------------------------------------- gradients
    def prepare(self, masked, factual, alternative=None) -> TargetBatch:
        """Tokenised, padded batch of masked rows on the base model's device."""
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer; pass one to work on text")
        if factual is None:
            raise ValueError("masked texts need their factual target(s)")
        batch = self.objective.prepare(self.tokenizer, _as_list(masked, "masked"), _as_list(factual, "factual"),
                                       _as_list(alternative, "alternative"), max_length=self.max_length)
        return batch.to(self._base_device())

    def _as_batch(self, batch) -> TargetBatch:
        if isinstance(batch, TargetBatch):
            return batch.to(self._base_device())
        return self.prepare(batch["masked"], batch["factual"], batch.get("alternative"))

    def _gradients(self, batch: TargetBatch, kinds: Sequence[str],
                   buffers: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Input-space float32 gradients per kind, written into ``buffers`` (reused when they fit)."""
        gradiend, out = self.gradiend, {}
        buffers = {} if buffers is None else buffers
        for kind in dict.fromkeys(kinds):
            buffer = buffers.get(kind)
            if buffer is None or buffer.shape != (gradiend.input_dim,) or buffer.device != gradiend.device:
                buffers[kind] = buffer = torch.empty(gradiend.input_dim, dtype=torch.float32, device=gradiend.device)
            out[kind] = buffer
        params = self.mapped_parameters()
        return flat_parameter_gradients(self.base_model, params, self.objective, batch, out,
                                        self._flat_segments(params))

    def create_gradients(self, masked, factual, alternative=None, kind: str | None = None) -> torch.Tensor:
        """Flattened GRADIEND-input gradient of the batch loss (mean over scored positions).

        ``kind`` defaults to ``self.source``; ``"alternative"`` and ``"diff"`` need ``alternative``.
        """
        kind = check_kind(kind or self.source)
        return self._gradients(self.prepare(masked, factual, alternative), [kind])[kind]

    def source_and_target_gradients(self, batch, buffers: dict[str, torch.Tensor] | None = None
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(source, target)`` input-space gradients of a batch (a :class:`TargetBatch` or a mapping with
        ``masked``, ``factual``, ``alternative``) from ONE forward pass; one tensor twice when the kinds agree.
        ``buffers``: a dict the caller keeps across steps; its float32 vectors are reused (overwritten)."""
        grads = self._gradients(self._as_batch(batch), [self.source, self.target], buffers)
        return grads[self.source], grads[self.target]

    # ----------------------------------------------------------------- encoding
    def encode(self, x, factual=None, alternative=None, kind: str | None = None) -> torch.Tensor:
        """Encoded value(s).

        ``x`` is a gradient (input-space tensor, or dict of per-parameter tensors) → the encoder
        output; or masked text(s) with ``factual`` (and ``alternative``) → one gradient per text
        (one backward each), encoded: shape ``(latent,)`` for one text, ``(B, latent)`` for a list.
        For many texts :meth:`encode_batch` is much faster.
        """
        if isinstance(x, (torch.Tensor, Mapping)):
            return self.gradiend.forward_encoder(x)
        encoded = self._encode_rows(self.prepare(x, factual, alternative), check_kind(kind or self.source))
        return encoded[0] if isinstance(x, str) else encoded

    @torch.no_grad()
    def _encode_rows(self, batch: TargetBatch, kind: str) -> torch.Tensor:
        """``(B, latent)``: each row's own gradient (one backward per row), encoded; the plain path."""
        return torch.stack([self.gradiend.forward_encoder(self._gradients(batch.select([i]), [kind])[kind])
                            for i in range(batch.n_rows)])

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
        if isinstance(masked, TargetBatch):
            if factual is not None or alternative is not None:
                raise ValueError("a prepared TargetBatch carries its own targets; "
                                 "pass no factual / alternative")
            batch = masked.to(self._base_device())
        else:
            batch = self.prepare(masked, factual, alternative)
        gradiend = self.gradiend
        if plain:
            encoded = self._encode_rows(batch, kind)
        else:  # tangent j: encoder weight row j laid out on the mapped parameters (zeros elsewhere), built
            # in the parameters' dtype (the JVP casts it to that anyway): no float32 copy of a bf16 model
            dtypes = {p.dtype for p in self.mapped_parameters().values()}
            dtype = dtypes.pop() if len(dtypes) == 1 else gradiend.dtype
            dots = [jvp_directional(self.base_model, gradiend.unflatten(gradiend.encoder_weight[j].detach().to(dtype)),
                                    self.objective, batch, kind, "rows")
                    for j in range(gradiend.latent_dim)]
            pre = torch.stack(dots, dim=-1).to(device=gradiend.device, dtype=gradiend.dtype) + gradiend.encoder_bias
            encoded = gradiend.encoder_activation(pre)
        return encoded[:, 0] if gradiend.latent_dim == 1 else encoded
