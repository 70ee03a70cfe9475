"""Head circuits read from the weights: composition between heads and copying in the OV circuit.

**Composition** (Elhage et al., 2021): a later head reads what an earlier head wrote. Its size is
``||W_OV^(1) M^(2)||_F / (||W_OV^(1)||_F ||M^(2)||_F)`` where ``M`` is the later head's ``W_QK`` (Q-
composition), ``W_QK^T`` (K-composition: the earlier head feeds the keys, as a previous-token
head feeds an induction head) or ``W_OV`` (V-composition). The products are computed in factored
form (``d_head x d_head`` Gram matrices), never as ``d_model x d_model`` matrices, so all pairs of
a 30-layer model take seconds.

**Copying** in the OV circuit: for a sample of tokens, the full circuit ``W_E W_OV W_U`` maps a
token the head attends to onto the logits it writes. A copying head raises the logit of the same
token (the diagonal is the row's maximum); a copy-suppression head lowers it (the row's minimum).
"""

from __future__ import annotations

import torch

from ..hooks import locked
from ..models import provenance
from ..result import Result

COMPOSITION_MODES = ("Q", "K", "V")


def _weights(model):
    w_q, w_k, w_v, w_o = (
        model.W_Q.detach(),
        model.W_K.detach(),
        model.W_V.detach(),
        model.W_O.detach(),
    )
    n_heads = model.cfg.n_heads
    if w_k.shape[1] != n_heads:  # grouped-query attention: expand key/value heads
        rep = n_heads // w_k.shape[1]
        w_k, w_v = w_k.repeat_interleave(rep, 1), w_v.repeat_interleave(rep, 1)
    return (
        w_q.float(),
        w_k.float(),
        w_v.float(),
        w_o.float(),
    )  # layer head d_model d_head (w_o: d_head d_model)


@locked
def composition_scores(model, mode: str = "K") -> Result:
    """Composition of every earlier head into every later head: ``[layer1, head1, layer2, head2]``.

    Equals TransformerLens's ``model.all_composition_scores(mode)`` (pairs where the later head
    is not in a later layer are 0).
    """
    if mode not in COMPOSITION_MODES:
        raise ValueError(f"mode={mode!r} is not accepted; use 'Q', 'K' or 'V'")
    w_q, w_k, w_v, w_o = _weights(model)
    gram = lambda w: torch.einsum("lhdi,lhdj->lhij", w, w)  # noqa: E731  W^T W, d_head x d_head
    g_v = gram(w_v)
    h_o = torch.einsum("lhid,lhjd->lhij", w_o, w_o)  # W_O W_O^T
    if mode == "Q":
        right_in, right_gram = w_q, gram(w_k)  # right = W_Q W_K^T
    elif mode == "K":
        right_in, right_gram = w_k, gram(w_q)  # right = W_K W_Q^T
    else:
        right_in, right_gram = w_v, h_o  # right = W_V W_O
    # ||W_V1 (W_O1 R_in2) R_out2^T||^2 = tr(M^T G_V1 M G_R2) with M = W_O1 R_in2
    m = torch.einsum("ahid,bgdj->ahbgij", w_o, right_in)
    num = torch.einsum("ahbgij,ahik,ahbgkl,bglj->ahbg", m, g_v, m, right_gram).clamp_min(0).sqrt()
    norm_ov = torch.einsum("ahij,ahji->ah", g_v, h_o).sqrt()
    if mode == "Q":
        norm_right = torch.einsum("ahij,ahji->ah", gram(w_q), gram(w_k)).sqrt()
    elif mode == "K":
        norm_right = torch.einsum("ahij,ahji->ah", gram(w_k), gram(w_q)).sqrt()
    else:
        norm_right = norm_ov
    scores = num / (norm_ov[:, :, None, None] * norm_right[None, None])
    layers = torch.arange(model.cfg.n_layers)
    scores = scores * (layers[:, None, None, None] < layers[None, None, :, None])
    return Result(
        scores,
        ("layer1", "head1", "layer2", "head2"),
        f"{mode}-composition score",
        provenance={"model": provenance(model), "method": "composition_scores", "mode": mode},
    )


@locked
def ov_copying_scores(
    model, n_tokens: int = 512, seed: int = 0, k: int = 1
) -> tuple[Result, Result]:
    """How often each head's OV circuit copies / suppresses the token it attends to.

    Returns:
        ``(copying, suppression)``: ``layer x head`` fractions of sampled tokens whose own logit is
        among the ``k`` highest / lowest of its row of ``W_E W_OV W_U`` (over the same sample).
    """
    gen = torch.Generator().manual_seed(seed)
    n = min(n_tokens, model.cfg.d_vocab)
    idx = torch.randperm(model.cfg.d_vocab, generator=gen)[:n].to(model.W_E.device)
    emb = model.W_E[idx].detach().float()
    emb = (
        emb / emb.norm(dim=-1, keepdim=True) * emb.shape[-1] ** 0.5
    )  # as a norm layer would scale it
    unembed = model.W_U[:, idx].detach().float()
    _, _, w_v, w_o = _weights(model)
    circuit = torch.einsum("td,lhde,lhem,mu->lhtu", emb, w_v, w_o, unembed)  # layer head tok tok
    diag = circuit.diagonal(dim1=-2, dim2=-1)[..., None]
    rank_top = (circuit > diag).sum(-1)  # how many tokens beat the own token
    rank_bottom = (circuit < diag).sum(-1)
    copying = (rank_top < k).float().mean(-1)
    suppression = (rank_bottom < k).float().mean(-1)
    prov = {"model": provenance(model), "method": "ov_copying_scores", "n_tokens": n, "k": k}
    return (
        Result(
            copying,
            ("layer", "head"),
            f"OV copying score (own token in top {k})",
            provenance=dict(prov),
        ),
        Result(
            suppression,
            ("layer", "head"),
            f"OV copy-suppression score (own token in bottom {k})",
            provenance=dict(prov),
        ),
    )
