"""Attribution graphs over transcoder features (the local replacement model).

An attribution graph explains one next-token prediction. Each MLP is replaced by its transcoder
plus an *error node* (the true MLP output minus the transcoder's, per position), attention
patterns and norm scales are frozen at their values on the prompt, and then the model from the
residual stream to every feature's pre-activation and to every logit is linear. The weight of an
edge ``s -> t`` is the *direct effect* of source ``s`` on target ``t`` through that linear
model: how much ``t`` moves when ``s``'s contribution to the residual stream is removed with
every other node's value held fixed (activations of the other features, error nodes, attention
patterns, norm scales). For a feature source this is ``a_s * (W_dec[s] . grad_t)``, where
``grad_t`` is the gradient of the target at the residual stream where ``s`` writes.

Nodes, in this order in the returned graph:

* ``token`` (``pos``, ``index`` = token id): the token embedding (``hook_embed``) at ``pos``.
* ``feature`` (``layer``, ``pos``, ``index`` = feature id, ``activation``): an active transcoder
  feature; as a target, its pre-activation ``x . W_enc[:, f] + b_enc[f]``.
* ``error`` (``layer``, ``pos``): what the transcoder misses of MLP ``layer`` at ``pos``
  (a whole MLP's output when it has no transcoder).
* ``logit`` (``layer`` = n_layers, ``pos`` = last, ``index`` = token id, ``activation`` =
  probability): the demeaned logit ``logit_t - mean(logits)`` (as circuit-tracer).

Edges run from tokens, features and errors to features and logits. Everything that is not a
node (biases, positional embeddings, the first position's MLP outputs when
``skip_first_position``) is a constant and gets no edge.

How it is computed: each target gives a direction (its encoder column at its position, or its
demeaned unembedding at the last position); the frozen model's backward pass carries a block of
``batch_size`` such directions down to every MLP output and the embedding at once, and the
gradients dotted with each source's vector give a block of rows. The default ``"linear"`` engine
writes that backward out (``_linear.py``: a batch-1 forward to read patterns and scales, then
einsums, no autograd graph); the ``"autograd"`` engine runs the prompt ``batch_size`` times with
patterns and scales detached and each MLP output a leaf, as circuit-tracer does, and serves any
TransformerLens block layout and skip transcoders. Only the nonzero edges of each block
(optionally those above ``min_edge_weight`` or the ``edge_top_k`` strongest per target) are
kept, as flat ``(source, target, weight)`` tensors, so memory grows with the number of edges
kept, never with the square of the number of nodes. When more features are active than
``max_feature_nodes``, features are visited in order of their influence on the logits computed
from the rows found so far (as circuit-tracer does) and the rest are left out of the graph.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import _checks
from ..dictionaries import CrossLayerTranscoder
from ..graph import CircuitGraph
from ..hooks import check_hook, hook_name, locked, run_with_cache
from ._graph import _assemble, _decode, _partial_influence
from ._linear import LinearBackward, supports
from ._replacement import as_replacement


@dataclass
class Prepared:
    """Everything the clean forward pass gives: tokens, logits, active features, error vectors."""

    tokens: Tensor  # [pos]
    logits: Tensor  # [vocab] at the last position
    feat_layer: Tensor  # [n_feat], sorted by (layer, pos, feature)
    feat_pos: Tensor
    feat_index: Tensor
    feat_act: Tensor
    decoder: Tensor  # [n_feat, d_model] = activation * W_dec[f]
    encoder: Tensor  # [n_feat, d_model] = W_enc[:, f]
    errors: Tensor  # [n_layers, pos, d_model]
    error_mask: Tensor  # [n_layers, pos] bool: which error nodes exist
    token_vecs: Tensor  # [pos, d_model]
    groups: list[tuple[int, int, int, int]]  # (layer, pos, start, end) runs of features
    # a cross-layer transcoder's writes to later MLPs: cross[k - 1][i] = activation *
    # W_dec[layer][f, k] for the first features (those with layer + k < n_layers); [] otherwise
    cross: list[Tensor] = field(default_factory=list)


@locked
def prompt_tokens(model, prompt, prepend_bos: bool | None = None) -> Tensor:
    """``prompt`` (text, a list of ids or a 1-D tensor) as a 1-D token tensor, length-checked."""
    if isinstance(prompt, str):
        return _checks.tokenize(model, prompt, "prompt", prepend_bos).to(_device(model))
    tokens = _checks.token_ids(model, prompt, "prompt")
    if tokens.dim() > 1 and tokens.shape[:-1].numel() != 1:
        raise ValueError(
            f"prompt token ids must be one prompt [pos] (or [1, pos]), got {tuple(tokens.shape)}"
        )
    tokens = tokens.flatten()
    if tokens.numel() == 0:
        raise ValueError("prompt is empty; give at least one token")
    return tokens.to(_device(model))


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _dtype(model) -> torch.dtype:
    """float64 for float64 models (exactness tests), else float32."""
    return torch.float64 if model.cfg.dtype == torch.float64 else torch.float32


def _in_hook(model, layer: int) -> str:
    return check_hook(model, f"blocks.{layer}.ln2.hook_normalized")


@torch.no_grad()
def prepare(model, transcoders, tokens: Tensor, skip_first_position: bool = True) -> Prepared:
    """The clean forward pass: active features, scaled decoder rows, error vectors.

    ``transcoders`` is ``{layer: transcoder}`` or a ``CrossLayerTranscoder``.
    """
    rep = as_replacement(model, transcoders)
    n_layers = int(model.cfg.n_layers)
    names = ["hook_embed"]
    for layer in range(n_layers):
        names += [hook_name(model, "mlp_out", layer)]
        if layer in rep.views:
            names.append(rep.in_hook(layer))
    logits, cache = run_with_cache(model, tokens[None], names)
    n_pos, d_model, dt = tokens.numel(), int(model.cfg.d_model), _dtype(model)
    errors = torch.zeros(n_layers, n_pos, d_model, device=tokens.device, dtype=dt)
    parts: list[tuple[Tensor, ...]] = []
    first = 1 if skip_first_position else 0
    xs = {la: cache[rep.in_hook(la)][0].to(v.W_enc.dtype) for la, v in rep.views.items()}
    all_acts = {la: v.encode(xs[la]) for la, v in rep.views.items()}
    cross_parts: list[list[Tensor]] = [[] for _ in range(n_layers - 1)]
    for layer in range(n_layers):
        mlp_out = cache[hook_name(model, "mlp_out", layer)][0].to(dt)
        tc = rep.views.get(layer)
        if tc is None:
            errors[layer] = mlp_out
            continue
        recon = rep.decode(layer, all_acts, xs[layer]).to(dt)
        errors[layer] = mlp_out - recon
        acts = all_acts[layer].to(dt).clone()
        acts[:first] = 0
        pos, feat = torch.nonzero(acts, as_tuple=True)
        a = acts[pos, feat]
        if rep.clt is not None:  # writes to the later MLPs
            w = rep.clt.W_dec[layer]
            for k in range(1, n_layers - layer):
                cross_parts[k - 1].append(a[:, None] * w[feat, k].to(dt))
        parts.append(
            (
                torch.full_like(pos, layer),
                pos,
                feat,
                a,
                a[:, None] * tc.W_dec[feat].to(dt),
                tc.W_enc[:, feat].T.to(dt),
            )
        )
    error_mask = torch.ones(n_layers, n_pos, dtype=torch.bool, device=tokens.device)
    error_mask[:, :first] = False
    errors[:, :first] = 0
    if parts:
        cols = [torch.cat(c) for c in zip(*parts)]
    else:
        empty = torch.zeros(0, dtype=torch.long, device=tokens.device)
        vec = torch.zeros(0, d_model, device=tokens.device)
        cols = [empty, empty, empty, empty.to(dt), vec, vec]
    keys = (cols[0] * n_pos + cols[1]).tolist()
    groups, start = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            groups.append((keys[start] // n_pos, keys[start] % n_pos, start, i))
            start = i
    return Prepared(
        groups=groups,
        cross=[torch.cat(c) for c in cross_parts if c],
        tokens=tokens,
        logits=logits[0, -1].to(dt),
        feat_layer=cols[0],
        feat_pos=cols[1],
        feat_index=cols[2],
        feat_act=cols[3],
        decoder=cols[4],
        encoder=cols[5],
        errors=errors,
        error_mask=error_mask,
        token_vecs=cache["hook_embed"][0].to(dt),
    )


def salient_logits(
    logits: Tensor, max_n_logits: int = 10, desired_logit_prob: float = 0.95
) -> tuple[Tensor, Tensor]:
    """The most probable tokens up to cumulative ``desired_logit_prob``, at most ``max_n_logits``."""
    probs = torch.softmax(logits.float(), -1)
    top_p, top_i = torch.topk(probs, min(max_n_logits, probs.numel()))
    cutoff = int(torch.searchsorted(torch.cumsum(top_p, 0), desired_logit_prob)) + 1
    return top_i[:cutoff], top_p[:cutoff]


def _rows(back, prep: Prepared, layers, positions, vectors) -> Tensor:
    """Direct effects of every source on each target: ``[n_targets, n_tok + n_feat + n_err]``."""
    g_embed, g_mlp = back.grads(layers, positions, vectors)
    B = layers.numel()
    tok = (g_embed * prep.token_vecs).sum(-1)  # [B, pos]
    err = torch.einsum("lbpd,lpd->blp", g_mlp, prep.errors).flatten(1)  # [B, L*pos]
    feat = torch.empty(B, prep.feat_layer.numel(), device=tok.device, dtype=tok.dtype)
    # features are sorted by (layer, pos): one small matmul per block of features sharing both
    for layer, pos, start, end in prep.groups:
        feat[:, start:end] = g_mlp[layer, :, pos] @ prep.decoder[start:end].T
        # a cross-layer transcoder's feature also writes to every later MLP
        for k, cross in enumerate(prep.cross, start=1):
            if start >= cross.shape[0]:
                break
            feat[:, start:end] += g_mlp[layer + k, :, pos] @ cross[start:end].T
    return torch.cat([tok, feat, err], dim=1)


def _check_fraction(name: str, value) -> None:
    if value is not None and not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


@locked
def attribution_graph(
    model,
    transcoders: Mapping[int, object] | CrossLayerTranscoder,
    prompt: str | Sequence[int] | Tensor,
    *,
    target_logits: Sequence[int | str] | Tensor | None = None,
    max_n_logits: int = 10,
    desired_logit_prob: float = 0.95,
    max_feature_nodes: int | None = None,
    batch_size: int = 256,
    min_edge_weight: float = 0.0,
    edge_top_k: int | None = None,
    node_threshold: float | None = None,
    edge_threshold: float | None = None,
    skip_first_position: bool = True,
    prepend_bos: bool | None = None,
    engine: str = "auto",
    progress: bool = False,
) -> CircuitGraph:
    """The attribution graph of ``model``'s next-token prediction on ``prompt``.

    Arguments:
        model: a TransformerLens ``HookedTransformer``.
        transcoders: ``{layer: transcoder}`` (sae-lens ``Transcoder`` or anything with ``W_enc
            [d_model, d_sae]``, ``W_dec [d_sae, d_model]``, ``b_enc``, ``b_dec``, ``encode``);
            an MLP with no transcoder is one error node per position. Or a
            ``CrossLayerTranscoder``: then a feature's edges run through all its decoders (to
            every later MLP), and each MLP's error is what the CLT misses of it.
        prompt: text (tokenised with the model's tokenizer, BOS per ``prepend_bos``) or ids.
        target_logits: token ids or strings for the logit nodes; default: the most probable
            tokens up to cumulative probability ``desired_logit_prob``, at most ``max_n_logits``.
        max_feature_nodes: at most this many feature nodes, chosen by influence (default: all).
        batch_size: targets per backward pass (and copies of the prompt in the forward pass).
        min_edge_weight: keep only edges with ``|weight| > min_edge_weight`` (default: nonzero).
        edge_top_k: keep only the ``k`` strongest incoming edges of each target.
        node_threshold, edge_threshold: if given, the graph is pruned by influence
            (``CircuitGraph.prune``); both must lie in [0, 1].
        skip_first_position: treat the first position's MLP outputs as constants, not nodes
            (circuit-tracer's default: the BOS position's features are large and uninformative).
        engine: ``"linear"`` (the frozen model's backward written out: a batch-1 forward, no
            autograd graph), ``"autograd"`` (a batch forward with patterns and scales detached,
            as circuit-tracer does; any TransformerLens architecture, skip transcoders), or
            ``"auto"``: linear where the architecture allows and no transcoder has a skip.

    Returns:
        A ``CircuitGraph``; ``provenance`` holds the prompt, tokens, settings, counts and timings.

    Example::

        tcs = interp.dictionaries.load_transcoders("induction-2l")
        g = attribution_graph(model, tcs, "def f(x): return x\\ndef f(")
        g.prune(0.8, 0.98).plot()
    """
    t0 = time.perf_counter()
    rep = as_replacement(model, transcoders)
    _check_fraction("node_threshold", node_threshold)
    _check_fraction("edge_threshold", edge_threshold)
    _check_fraction("desired_logit_prob", desired_logit_prob)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if max_feature_nodes is not None and (
        not isinstance(max_feature_nodes, int) or max_feature_nodes < 0
    ):
        raise ValueError(
            f"max_feature_nodes must be None or an integer >= 0, got {max_feature_nodes!r}"
        )
    if edge_top_k is not None and (not isinstance(edge_top_k, int) or edge_top_k < 1):
        raise ValueError(f"edge_top_k must be None or a positive integer, got {edge_top_k!r}")
    if min_edge_weight < 0:
        raise ValueError(f"min_edge_weight must be >= 0, got {min_edge_weight!r}")
    if not isinstance(max_n_logits, int) or max_n_logits < 1:
        raise ValueError(f"max_n_logits must be a positive integer, got {max_n_logits!r}")
    if engine not in ("auto", "linear", "autograd"):
        raise ValueError(f"engine must be 'auto', 'linear' or 'autograd', got {engine!r}")
    has_skip = any(getattr(tc, "W_skip", None) is not None for tc in rep.views.values())
    linear_ok = supports(model) and not has_skip
    if engine == "linear" and not linear_ok:
        raise ValueError(
            "engine='linear' needs a sequential attention-then-MLP block without post-norms, "
            "and transcoders without skip connections; use engine='autograd'"
        )
    use_linear = linear_ok if engine == "auto" else engine == "linear"
    tokens = prompt_tokens(model, prompt, prepend_bos)
    n_layers, n_pos = int(model.cfg.n_layers), tokens.numel()

    prep = prepare(model, rep, tokens, skip_first_position)
    logit_ids, logit_probs = _logit_targets(
        model, prep.logits, target_logits, max_n_logits, desired_logit_prob
    )
    probs_all = torch.softmax(prep.logits, -1)
    W_U = model.W_U.detach().to(_dtype(model))
    # injected at the output of ln_final, where the unembedding reads
    logit_vecs = (W_U[:, logit_ids] - W_U.mean(-1, keepdim=True)).T  # [k, d_model]
    t_prep = time.perf_counter()

    n_feat = prep.feat_layer.numel()
    n_tok, n_err = n_pos, n_layers * n_pos
    n_src = n_tok + n_feat + n_err
    n_logit = logit_ids.numel()
    logit_node = n_src + torch.arange(n_logit)  # node indices before feature selection
    budget = n_feat if max_feature_nodes is None else min(max_feature_nodes, n_feat)

    block = min(batch_size, max(n_logit, budget, 1))
    if use_linear:
        back = LinearBackward(model, tokens, prep.decoder.dtype, rep.raw_input_layers)
    else:
        from ._autograd import AutogradBackward

        back = AutogradBackward(model, prep, rep, block)
    src_parts, dst_parts, w_parts = [], [], []

    def keep(rows: Tensor, target_nodes: Tensor) -> None:
        rows = rows.cpu()
        if edge_top_k is not None and edge_top_k < rows.shape[1]:
            top = rows.abs().topk(edge_top_k, dim=1).indices
            mask = torch.zeros_like(rows, dtype=torch.bool).scatter_(1, top, True)
            rows = torch.where(mask, rows, torch.zeros(()))
        r, c = torch.nonzero(rows.abs() > min_edge_weight, as_tuple=True)
        src_parts.append(c.to(torch.int32))  # int32 while collecting: half the memory
        dst_parts.append(target_nodes[r].to(torch.int32))
        w_parts.append(rows[r, c].float())

    bar = tqdm(total=n_logit + budget, desc="attribution", disable=not progress, mininterval=2)
    for s in range(0, n_logit, block):
        sl = slice(s, s + block)
        k = logit_vecs[sl].shape[0]
        rows = _rows(
            back,
            prep,
            torch.full((k,), n_layers),
            torch.full((k,), n_pos - 1),
            logit_vecs[sl],
        )
        keep(rows, logit_node[sl])
        bar.update(k)

    visited = torch.zeros(n_feat, dtype=torch.bool)
    order: list[Tensor] = []
    while int(visited.sum()) < budget:
        if budget == n_feat:
            pending = torch.arange(n_feat)
        else:
            infl = _partial_influence(
                src_parts, dst_parts, w_parts, n_src + n_logit, logit_node, logit_probs.cpu()
            )
            rank = torch.argsort(infl[n_tok : n_tok + n_feat], descending=True)
            pending = rank[~visited[rank]][: min(4 * block, budget - int(visited.sum()))]
        for s in range(0, pending.numel(), block):
            idx = pending[s : s + block]
            dev_idx = idx.to(prep.feat_layer.device)
            rows = _rows(
                back,
                prep,
                prep.feat_layer[dev_idx],
                prep.feat_pos[dev_idx],
                prep.encoder[dev_idx],
            )
            keep(rows, n_tok + idx)
            visited[idx] = True
            order.append(idx)
            bar.update(idx.numel())
    bar.close()
    del back
    t_edges = time.perf_counter()

    graph = _assemble(
        model,
        prep,
        rep,
        tokens,
        logit_ids,
        probs_all,
        visited,
        src_parts,
        dst_parts,
        w_parts,
    )
    graph.provenance.update(
        prompt=prompt if isinstance(prompt, str) else _decode(model, tokens),
        tokens=tokens.tolist(),
        settings={
            "max_n_logits": max_n_logits,
            "desired_logit_prob": desired_logit_prob,
            "max_feature_nodes": max_feature_nodes,
            "batch_size": batch_size,
            "min_edge_weight": min_edge_weight,
            "edge_top_k": edge_top_k,
            "skip_first_position": skip_first_position,
            "engine": "linear" if use_linear else "autograd",
            "attention": "patterns frozen",
            "norms": "scales frozen",
            "logits": "demeaned",
        },
        n_active_features=int(n_feat),
        n_feature_nodes=int(visited.sum()),
        seconds={
            "prepare": t_prep - t0,
            "edges": t_edges - t_prep,
            "total": time.perf_counter() - t0,
        },
    )
    if node_threshold is not None or edge_threshold is not None:
        meta = dict(graph.provenance)
        graph = graph.prune(
            0.8 if node_threshold is None else node_threshold,
            0.98 if edge_threshold is None else edge_threshold,
        )
        graph.provenance = {**meta, **graph.provenance}
    return graph


def _logit_targets(model, logits, target_logits, max_n_logits, desired_logit_prob):
    probs = torch.softmax(logits.float(), -1)
    if target_logits is None:
        ids, p = salient_logits(logits, max_n_logits, desired_logit_prob)
        return ids.cpu(), p.cpu()
    ids = []
    for t in target_logits.tolist() if isinstance(target_logits, Tensor) else target_logits:
        if isinstance(t, str):
            enc = model.to_tokens(t, prepend_bos=False)[0]
            if enc.numel() != 1:
                raise ValueError(f"target logit {t!r} is {enc.numel()} tokens; give one token")
            t = int(enc[0])
        if not isinstance(t, int) or not 0 <= t < model.cfg.d_vocab:
            raise ValueError(f"target logit {t!r} must be a token id in 0..{model.cfg.d_vocab - 1}")
        ids.append(t)
    if not ids:
        raise ValueError("target_logits is empty")
    ids_t = torch.tensor(ids)
    return ids_t, probs.cpu()[ids_t]
