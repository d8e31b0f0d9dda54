"""The GRADIEND autoencoder over a flat gradient vector.

``encoder: input_dim → latent_dim`` (default tanh) reads a gradient; ``decoder: latent_dim →
input_dim`` (default identity, with bias) writes a parameter update. The class knows nothing
about base models: :class:`~gradiend.model.param_mapped.ParamMappedGradiendModel` adds that.

Deviations from the reference, on purpose:

* ``activation_encoder="id"`` is the identity. The reference turns it into ``LayerNorm(latent)``,
  which for the usual latent size 1 maps every input to the same constant.
* The decoder init bound is ``max(encoder.weight)`` as in the reference; when that maximum is not
  positive (only possible for tiny inputs) the largest absolute encoder weight is used instead.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradiend.model import checkpoint
from gradiend.model.activations import ODD_ACTIVATIONS, make_activation
from gradiend.model.topk import keep_mask, resolve_topk, top_indices
from gradiend.util.dtypes import dtype_name, resolve_dtype

UPDATE_PARTS = ("decoder-weight", "decoder-bias", "decoder-sum", "encoder-weight")


class GradiendModel(nn.Module):
    """Encoder/decoder pair over a flat gradient vector of length ``input_dim``."""

    def __init__(
        self,
        input_dim: int,
        latent_dim: int = 1,
        activation_encoder: str = "tanh",
        activation_decoder: str = "id",
        bias_decoder: bool = True,
        torch_dtype: Any = torch.float32,
        device: Any = None,
    ):
        super().__init__()
        if int(input_dim) < 1 or int(latent_dim) < 1:
            raise ValueError(f"input_dim and latent_dim must be positive, got {input_dim}, {latent_dim}")
        self.input_dim = int(input_dim)
        self.latent_dim = int(latent_dim)
        self.activation_encoder = activation_encoder
        self.activation_decoder = activation_decoder
        self.bias_decoder = bool(bias_decoder)
        self.metadata: dict[str, Any] = {}
        dtype = resolve_dtype(torch_dtype)
        self.encoder = nn.Linear(self.input_dim, self.latent_dim, bias=True, dtype=dtype, device=device)
        self.encoder_activation = make_activation(activation_encoder)
        self.decoder = nn.Linear(self.latent_dim, self.input_dim, bias=self.bias_decoder, dtype=dtype,
                                 device=device)
        self.decoder_activation = make_activation(activation_decoder)
        if torch.device(device or "cpu").type != "meta":
            self._init_decoder()

    # ----------------------------------------------------------------- construction helpers
    @torch.no_grad()
    def _init_decoder(self) -> None:
        """Decoder weight and bias ~ U(−x, x), x = max(encoder weight) (see module docstring)."""
        bound = float(self.encoder.weight.max())
        if bound <= 0:
            bound = float(self.encoder.weight.abs().max()) or 1.0
        self.decoder.weight.uniform_(-bound, bound)
        if self.decoder.bias is not None:
            self.decoder.bias.uniform_(-bound, bound)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fresh weights from the caller's torch RNG, drawn in the same order as the constructor."""
        self.encoder.reset_parameters()
        self.decoder.reset_parameters()
        self._init_decoder()

    def materialize(self, device: Any = "cpu") -> "GradiendModel":
        """Give a model built on the meta device (e.g. lazily, before pre-pruning) real, fresh weights."""
        self.to_empty(device=device)
        self.reset_parameters()
        return self

    def _init_kwargs(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this architecture (subclasses add theirs)."""
        return self.architecture()

    def _set_weights(self, enc_w, enc_b, dec_w, dec_b) -> None:
        """Install new weight tensors (possibly of another input size) without re-initialising."""
        self.input_dim = int(enc_w.shape[1])
        self.encoder = nn.Linear(self.input_dim, self.latent_dim, bias=True, device="meta")
        self.decoder = nn.Linear(self.latent_dim, self.input_dim, bias=dec_b is not None, device="meta")
        self.encoder.weight = nn.Parameter(enc_w)
        self.encoder.bias = nn.Parameter(enc_b)
        self.decoder.weight = nn.Parameter(dec_w)
        if dec_b is not None:
            self.decoder.bias = nn.Parameter(dec_b)

    # ----------------------------------------------------------------- properties
    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.encoder.weight.device

    @property
    def encoder_weight(self) -> torch.Tensor:
        """Shape ``(latent_dim, input_dim)``."""
        return self.encoder.weight

    @property
    def encoder_bias(self) -> torch.Tensor:
        return self.encoder.bias

    @property
    def decoder_weight(self) -> torch.Tensor:
        """Shape ``(input_dim, latent_dim)``."""
        return self.decoder.weight

    @property
    def decoder_bias(self) -> torch.Tensor | None:
        return self.decoder.bias

    @property
    def encoder_norm(self) -> float:
        return float(self.encoder.weight.detach().norm())

    @property
    def decoder_norm(self) -> float:
        return float(self.decoder.weight.detach().norm())

    # ----------------------------------------------------------------- forward
    def forward_encoder(self, x: torch.Tensor) -> torch.Tensor:
        """Encoded value(s) of a gradient ``(input_dim,)`` or a batch ``(..., input_dim)``."""
        x = torch.as_tensor(x)
        if x.dim() == 0 or x.shape[-1] != self.input_dim:
            raise ValueError(f"expected {self.input_dim} entries, got {x.shape[-1] if x.dim() else 1}")
        return self.encoder_activation(self.encoder(x.to(device=self.device, dtype=self.dtype)))

    def forward_decoder(self, h: torch.Tensor | float) -> torch.Tensor:
        """Decoded update for latent value(s) ``h`` (a float is accepted when latent_dim is 1)."""
        h = torch.as_tensor(h, dtype=self.dtype, device=self.device)
        if h.dim() == 0 and self.latent_dim == 1:
            h = h.reshape(1)
        if h.dim() == 0 or h.shape[-1] != self.latent_dim:
            raise ValueError(f"expected {self.latent_dim} latent entries, got shape {tuple(h.shape)}")
        return self.decoder_activation(self.decoder(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``model(x)`` encodes (= :meth:`forward_encoder`); the round trip is :meth:`reconstruct`."""
        return self.forward_encoder(x)

    def reconstruct(self, x: torch.Tensor, return_encoded: bool = False):
        """``decoder(encoder(x))``, the training reconstruction (plus the latent when ``return_encoded``)."""
        encoded = self.forward_encoder(x)
        decoded = self.forward_decoder(encoded)
        return (decoded, encoded) if return_encoded else decoded

    # ----------------------------------------------------------------- update vectors, importance
    @torch.no_grad()
    def get_update_vector(self, part: str = "decoder-weight") -> torch.Tensor:
        """A raw vector of length ``input_dim`` read off the weights (used by ``rewrite`` parts)."""
        if part not in UPDATE_PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {list(UPDATE_PARTS)}")
        if part in ("decoder-weight", "encoder-weight"):
            if self.latent_dim != 1:
                raise ValueError(f"part {part!r} is only defined for latent_dim 1, this model has {self.latent_dim}")
            weight = self.decoder.weight if part == "decoder-weight" else self.encoder.weight
            return weight.detach().reshape(-1).clone()
        bias = self.decoder.bias
        bias = bias.detach() if bias is not None else torch.zeros(self.input_dim, dtype=self.dtype, device=self.device)
        if part == "decoder-bias":
            return bias.clone()
        return self.decoder.weight.detach().sum(dim=1) + bias

    @torch.no_grad()
    def get_weight_importance(self, part: str = "decoder-weight") -> torch.Tensor:
        """Per-input-dimension importance (higher = more influential), a float tensor on CPU."""
        if part == "encoder-weight":
            value = self.encoder.weight.detach().abs().sum(dim=0)
        elif part == "decoder-weight":
            value = self.decoder.weight.detach().abs().sum(dim=1)
        else:  # decoder-bias / decoder-sum: the magnitude of that (any-latent-size) update vector
            value = self.get_update_vector(part).abs()
        return value.float().cpu()

    def get_topk_weights(self, part: str = "decoder-weight", topk: int | float = 1000) -> torch.Tensor:
        """Local input indices of the ``topk`` most important dimensions, most important first."""
        importance = self.get_weight_importance(part)
        return top_indices(importance, resolve_topk(topk, self.input_dim))

    # ----------------------------------------------------------------- pruning, sign
    def keep_mask(self, topk=None, threshold=None, mask=None, importance=None, part="decoder-weight") -> torch.Tensor:
        """Boolean keep-set over the input space (:func:`gradiend.model.topk.keep_mask`)."""
        if importance is None:
            importance = self.get_weight_importance(part)
        return keep_mask(importance, self.input_dim, topk=topk, threshold=threshold, mask=mask)

    def prune(self, topk=None, threshold=None, mask=None, importance=None, part="decoder-weight",
              inplace=False, return_mask=False):
        """Keep only selected input dimensions (encoder columns, decoder rows and bias entries).

        Returns the pruned model (``self`` when ``inplace``), plus the boolean keep mask over the
        input space before pruning when ``return_mask``.
        """
        keep = self.keep_mask(topk=topk, threshold=threshold, mask=mask, importance=importance, part=part)
        index = keep.nonzero().reshape(-1).to(self.device)
        bias = self.decoder.bias
        tensors = (
            self.encoder.weight.detach()[:, index].clone(),
            self.encoder.bias.detach().clone(),
            self.decoder.weight.detach()[index].clone(),
            bias.detach()[index].clone() if bias is not None else None,
        )
        if inplace:
            target = self
        else:
            target = type(self)(**{**self._init_kwargs(), "device": "meta"})
            target.metadata = copy.deepcopy(self.metadata)
            target.train(self.training)
        target._after_prune(keep, source=self)
        target._set_weights(*tensors)
        return (target, keep) if return_mask else target

    def _after_prune(self, keep: torch.Tensor, source: "GradiendModel") -> None:
        """Subclass hook: update bookkeeping for the kept input dimensions (``keep`` over ``source``)."""

    @torch.no_grad()
    def invert_encoding(self) -> None:
        """Flip the sign of the encoded value while keeping ``decode(encode(x))`` unchanged.

        Encoder weight and bias are negated (the encoder activations are odd functions, so the
        latent value flips) and so is the decoder weight (which turns the flipped latent back); the
        decoder bias is added whatever the latent is and therefore stays as it is.
        """
        if self.activation_encoder not in ODD_ACTIVATIONS:
            raise ValueError(f"invert_encoding needs an odd encoder activation {ODD_ACTIVATIONS}; "
                             f"{self.activation_encoder!r} would change the reconstruction")
        for param in (self.encoder.weight, self.encoder.bias, self.decoder.weight):
            param.neg_()

    # ----------------------------------------------------------------- save / load
    def architecture(self) -> dict[str, Any]:
        values = {key: getattr(self, key) for key in checkpoint.ARCHITECTURE_KEYS if key != "torch_dtype"}
        return {**values, "torch_dtype": dtype_name(self.dtype)}

    def _mapping_config(self, directory: Path) -> Any:
        """Subclass hook: write mapping tensors into ``directory`` and return the JSON mapping."""
        return None

    def save_pretrained(self, save_directory, metadata: dict | None = None, training: dict | None = None) -> Path:
        """Write the checkpoint atomically, ``config.json`` after the weights (:mod:`.checkpoint`); other
        files in the folder are kept."""
        if metadata is not None:
            self.metadata = dict(metadata)
        return checkpoint.save_checkpoint(self, save_directory, training)

    @classmethod
    def _blank_from_config(cls, config: dict[str, Any], directory: Path) -> "GradiendModel":
        """An instance on the meta device with the checkpoint's architecture (subclasses read the mapping)."""
        return cls(**checkpoint.architecture_kwargs(config["architecture"], directory), device="meta")

    @classmethod
    def from_pretrained(cls, load_directory, device: Any = None) -> "GradiendModel":
        """Load a checkpoint written by :meth:`save_pretrained`; every defect names the bad file."""
        directory = Path(load_directory)
        config = checkpoint.read_config(directory)
        model = cls._blank_from_config(config, directory)
        return checkpoint.load_weights(model, directory, config, device)

    def extra_repr(self) -> str:
        return (f"input_dim={self.input_dim}, latent_dim={self.latent_dim}, "
                f"activation_encoder={self.activation_encoder!r}, activation_decoder={self.activation_decoder!r}, "
                f"bias_decoder={self.bias_decoder}")
