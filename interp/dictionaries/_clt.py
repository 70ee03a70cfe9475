"""Cross-layer transcoders (CLTs): one dictionary that replaces every MLP of a model at once.

A per-layer transcoder's feature reads the input of MLP ``l`` and writes only to MLP ``l``'s
output. A cross-layer transcoder's feature reads the residual stream before MLP ``l`` and writes,
through one decoder per later layer, to the outputs of *every* MLP ``l' >= l``::

    f[l]     = act(x[l] @ W_enc[l] + b_enc[l])                 # [d_sae] features of layer l
    y_hat[m] = sum_{l <= m} f[l] @ W_dec[l][:, m - l] + b_dec[m]  # predicted output of MLP m

so a computation that several MLPs share (an amplification chain) can be one feature instead of a
chain of per-layer features, and attribution-graph paths get shorter (Ameisen et al., 2025,
"Circuit tracing"). ``act`` is ReLU or JumpReLU (``f * (f > threshold)``), as in circuit-tracer.

Layout (circuit-tracer's ``CrossLayerTranscoder``, with the encoder in sae-lens's orientation):
``W_enc [n_layers, d_model, d_sae]``, ``b_enc [n_layers, d_sae]``, ``W_dec[l] [d_sae,
n_layers - l, d_model]`` (source layer ``l``, output layers ``l..n_layers-1``), ``b_dec
[n_layers, d_model]`` (one per *output* layer), ``threshold [n_layers, d_sae]`` for JumpReLU,
and an optional linear skip ``W_skip [n_layers, d_model, d_model]`` (``y_hat[m] += x[m] @
W_skip[m]``). ``input_hook`` names where features read, relative to ``blocks.L``: circuit-tracer's
published CLTs read ``hook_resid_mid`` (the norm's input); the ones trained here read
``ln2.hook_normalized`` (the norm's output without its weight), like this project's per-layer
transcoders. Either way, with norm scales frozen a feature's pre-activation is linear in the
residual stream, which attribution graphs rely on.

``clt.layer(l)`` is a per-layer view (``W_enc [d_model, d_sae]``, ``encode``, ``hook_name``)
for code that only needs to *encode* one layer; decoding always goes through the CLT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

INPUT_HOOKS = ("ln2.hook_normalized", "hook_resid_mid")
ACTIVATIONS = ("relu", "jump_relu")


class CrossLayerTranscoder(nn.Module):
    """A cross-layer transcoder over ``n_layers`` MLPs (see the module docstring for the maths).

    Arguments:
        n_layers: MLPs covered; a CLT covers every layer of its model, from 0.
        d_model: width of the residual stream.
        d_sae: features per layer.
        activation: ``"relu"`` or ``"jump_relu"`` (then ``threshold`` holds one per feature).
        skip: whether it has a linear skip path ``W_skip``.
        input_hook: where features read, relative to ``blocks.L`` (one of ``INPUT_HOOKS``).
        output_hook: where predictions go, relative to ``blocks.L`` (``hook_mlp_out``).
        model_name: recorded for provenance.

    The parameters start at zero; fill them (``load_clt``, ``train_clt``) before use.
    """

    def __init__(
        self,
        n_layers: int,
        d_model: int,
        d_sae: int,
        *,
        activation: str = "relu",
        skip: bool = False,
        input_hook: str = "ln2.hook_normalized",
        output_hook: str = "hook_mlp_out",
        model_name: str = "",
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        for name, value in (("n_layers", n_layers), ("d_model", d_model), ("d_sae", d_sae)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if input_hook not in INPUT_HOOKS:
            raise ValueError(
                f"input_hook must be one of {INPUT_HOOKS} (relative to blocks.L), "
                f"got {input_hook!r}"
            )
        if output_hook != "hook_mlp_out":
            raise ValueError(f"output_hook must be 'hook_mlp_out', got {output_hook!r}")
        self.n_layers, self.d_model, self.d_sae = n_layers, d_model, d_sae
        self.activation, self.input_hook, self.output_hook = activation, input_hook, output_hook
        self.model_name = model_name
        self.metadata: dict = {}

        def zeros(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.zeros(*shape, dtype=dtype))

        self.W_enc = zeros(n_layers, d_model, d_sae)
        self.b_enc = zeros(n_layers, d_sae)
        self.W_dec = nn.ParameterList(
            [zeros(d_sae, n_layers - la, d_model) for la in range(n_layers)]
        )
        self.b_dec = zeros(n_layers, d_model)
        self.threshold = zeros(n_layers, d_sae) if activation == "jump_relu" else None
        self.W_skip = zeros(n_layers, d_model, d_model) if skip else None

    # -- encoding ---------------------------------------------------------------------------

    def hook_name(self, layer: int) -> str:
        """The full hook name layer ``layer``'s features read (``blocks.L.<input_hook>``)."""
        return f"blocks.{int(layer)}.{self.input_hook}"

    def pre_acts(self, x: Tensor, layer: int) -> Tensor:
        """Pre-activations ``[..., d_sae]`` of layer ``layer``'s features on its input ``x``."""
        return x @ self.W_enc[layer] + self.b_enc[layer]

    def act(self, pre: Tensor, layer: int) -> Tensor:
        if self.threshold is None:
            return torch.relu(pre)
        return pre * (pre > self.threshold[layer])

    def encode_layer(self, x: Tensor, layer: int) -> Tensor:
        """Feature activations ``[..., d_sae]`` of layer ``layer`` on its input ``x [..., d]``."""
        return self.act(self.pre_acts(x, layer), layer)

    def encode(self, xs: Tensor) -> Tensor:
        """Every layer's features ``[n_layers, ..., d_sae]`` from inputs ``[n_layers, ..., d]``."""
        self._check_stack(xs, "xs", self.d_model)
        return torch.stack([self.encode_layer(xs[la], la) for la in range(self.n_layers)])

    # -- decoding ---------------------------------------------------------------------------

    def decode_layer(
        self, feats: list[Tensor] | Tensor, out: int, x: Tensor | None = None
    ) -> Tensor:
        """The predicted output ``[..., d_model]`` of MLP ``out`` from the features of layers
        ``0..out`` (``feats[l]``, each ``[..., d_sae]``); ``x`` is MLP ``out``'s input, needed
        only when the CLT has a skip path."""
        y = self.b_dec[out]
        for la in range(out + 1):
            y = y + feats[la] @ self.W_dec[la][:, out - la]
        if self.W_skip is not None:
            if x is None:
                raise ValueError("this CLT has a skip path: decode_layer needs the input x")
            y = y + x @ self.W_skip[out]
        return y

    def decode(self, feats: Tensor, xs: Tensor | None = None) -> Tensor:
        """Predicted MLP outputs ``[n_layers, ..., d_model]`` from features
        ``[n_layers, ..., d_sae]`` (and inputs ``xs`` when there is a skip path)."""
        self._check_stack(feats, "feats", self.d_sae)
        return torch.stack(
            [
                self.decode_layer(feats, m, None if xs is None else xs[m])
                for m in range(self.n_layers)
            ]
        )

    def forward(self, xs: Tensor) -> Tensor:
        """Predicted MLP outputs ``[n_layers, ..., d_model]`` from inputs ``[n_layers, ..., d]``."""
        return self.decode(self.encode(xs), xs)

    def decoder_norms(self) -> Tensor:
        """``[n_layers, d_sae]``: each feature's decoder norm over all the layers it writes to."""
        return torch.stack([w.pow(2).sum((1, 2)).sqrt() for w in self.W_dec])

    def layer(self, layer: int) -> CLTLayer:
        """A per-layer view for encoding layer ``layer`` (no copies)."""
        if not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in 0..{self.n_layers - 1}, got {layer!r}")
        return CLTLayer(self, layer)

    def _check_stack(self, t: Tensor, name: str, width: int) -> None:
        if t.dim() < 2 or t.shape[0] != self.n_layers or t.shape[-1] != width:
            raise ValueError(
                f"{name} must be [n_layers={self.n_layers}, ..., {width}], got {tuple(t.shape)}"
            )

    def extra_repr(self) -> str:
        return (
            f"n_layers={self.n_layers}, d_model={self.d_model}, d_sae={self.d_sae}, "
            f"activation={self.activation!r}, input_hook={self.input_hook!r}, "
            f"skip={self.W_skip is not None}"
        )


@dataclass(frozen=True)
class CLTLayer:
    """Layer ``layer`` of a CLT seen as an encoder: ``W_enc [d_model, d_sae]``, ``b_enc``,
    ``encode``, its own-layer decoder ``W_dec [d_sae, d_model]``, ``b_dec`` and ``hook_name``;
    what the attribution-graph code needs of a transcoder to find and read features."""

    clt: CrossLayerTranscoder
    index: int

    @property
    def W_enc(self) -> Tensor:
        return self.clt.W_enc[self.index]

    @property
    def b_enc(self) -> Tensor:
        return self.clt.b_enc[self.index]

    @property
    def W_dec(self) -> Tensor:
        return self.clt.W_dec[self.index][:, 0]

    @property
    def b_dec(self) -> Tensor:
        return self.clt.b_dec[self.index]

    @property
    def W_skip(self) -> Tensor | None:
        """The skip path in sae-lens's orientation ``[d_out, d_in]`` (``x @ W_skip.T``)."""
        return None if self.clt.W_skip is None else self.clt.W_skip[self.index].T

    @property
    def hook_name(self) -> str:
        return self.clt.hook_name(self.index)

    def encode(self, x: Tensor) -> Tensor:
        return self.clt.encode_layer(x, self.index)


def check_clt(model, clt) -> CrossLayerTranscoder:
    """Validate ``clt`` against ``model``: same number of layers and width, known input hook.

    Raises:
        TypeError: not a ``CrossLayerTranscoder``.
        ValueError: it covers another number of layers or another ``d_model``, or reads a hook
            the model does not have.
    """
    if not isinstance(clt, CrossLayerTranscoder):
        raise TypeError(
            f"expected a CrossLayerTranscoder, got {type(clt).__name__}; load one with "
            f"interp.dictionaries.load_clt"
        )
    n_layers, d_model = int(model.cfg.n_layers), int(model.cfg.d_model)
    if clt.n_layers != n_layers or clt.d_model != d_model:
        raise ValueError(
            f"the CLT covers {clt.n_layers} layers of width {clt.d_model} but the model has "
            f"n_layers={n_layers}, d_model={d_model}"
        )
    if clt.hook_name(0) not in model.hook_dict:
        raise ValueError(
            f"the CLT reads {clt.input_hook!r}, which this model has no hook for "
            f"({clt.hook_name(0)!r})"
        )
    return clt
