"""HTML views the pages embed: the prompt's token strip and the hover-to-see attention view."""

from __future__ import annotations

import html
import json
import math

import numpy as np

_STYLE = """
<style>
.tok-strip{font-family:ui-monospace,Menlo,monospace;font-size:13px;line-height:1.9;
  word-break:break-all;color:#111}
.tok{padding:1px 2px;margin:0 1px;border-radius:3px;border:1px solid #ddd;white-space:pre;
  cursor:default}
.tok.bos{background:#e8e8f0;color:#555;font-style:italic}
.tok.special{color:#888}
</style>
"""


def show_token(text: str) -> str:
    """A token as it should be drawn: visible whitespace, escaped."""
    shown = text.replace(" ", "\u00b7").replace("\n", "\u21b5").replace("\t", "\u21e5")
    return html.escape(shown or "\u2205")


def _loss_colour(loss: float, top: float) -> str:
    if math.isnan(loss):
        return "transparent"
    a = max(0.0, min(1.0, loss / top))
    return f"rgba(220,50,47,{a:.3f})"


def token_strip(tokens: list[str], loss: np.ndarray, bos: str | None) -> str:
    """The prompt's tokens as chips, BOS visible, coloured by the loss of predicting each one."""
    finite = loss[~np.isnan(loss)]
    top = float(max(finite.max(), 1.0)) if finite.size else 1.0
    chips = []
    for i, (tok, value) in enumerate(zip(tokens, loss)):
        is_bos = i == 0 and bos is not None and tok == bos
        cls = "tok bos" if is_bos else "tok"
        text = "BOS" if is_bos else show_token(tok)
        tip = f"#{i} {tok!r}" + ("" if math.isnan(value) else f" loss {value:.2f}")
        chips.append(
            f'<span class="{cls}" title="{html.escape(tip)}" '
            f'style="background:{_loss_colour(float(value), top)}">{text}</span>'
        )
    legend = (
        f'<div style="font-size:11px;color:#666">{len(tokens)} tokens; '
        f"red = loss of predicting the token (0 to {top:.1f} nats)</div>"
    )
    return _STYLE + '<div class="tok-strip">' + "".join(chips) + "</div>" + legend


def attention_view(
    tokens: list[str], pattern: np.ndarray, title: str, locked: int | None = None
) -> str:
    """A self-contained HTML page: hover a token to shade the tokens it attends to.

    Click a token to lock it (hovering then changes nothing); click it again, or *clear*, to
    unlock. ``pattern`` is ``[q, k]``; weights are sent rounded to 3 decimals.
    """
    n = len(tokens)
    weights = np.round(pattern[:n, :n].astype(np.float64), 3).tolist()
    data = json.dumps({"tokens": [show_token(t) for t in tokens], "w": weights, "locked": locked})
    return (
        _STYLE
        + """
<style>
#av{font-family:ui-monospace,Menlo,monospace;font-size:13px}
#av .tok{cursor:pointer}
#av .tok.q{outline:2px solid #268bd2}
#av .tok.locked{outline:3px solid #d33682}
#av-bar{font-size:12px;color:#444;margin-bottom:6px}
#av-bar button{font-size:12px;margin-left:8px}
</style>
<div id="av"><div id="av-bar"><b>"""
        + html.escape(title)
        + """</b> &mdash; <span id="av-info">hover a token to see where it attends; click to lock</span>
<button id="av-clear" type="button">clear</button></div>
<div class="tok-strip" id="av-tokens"></div></div>
<script>
const D = """
        + data
        + """;
const box = document.getElementById("av-tokens");
const info = document.getElementById("av-info");
let locked = D.locked;
const spans = D.tokens.map((t, i) => {
  const s = document.createElement("span");
  s.className = "tok"; s.innerHTML = t; s.dataset.pos = i; s.id = "tok-" + i;
  s.addEventListener("mouseenter", () => { if (locked === null) show(i); });
  s.addEventListener("click", () => { locked = (locked === i) ? null : i; show(i); });
  box.appendChild(s); return s;
});
function show(q) {
  const row = D.w[q];
  spans.forEach((s, k) => {
    const a = k <= q ? row[k] : 0;
    s.style.background = "rgba(38,139,210," + Math.min(1, a * 1.5).toFixed(3) + ")";
    s.classList.toggle("q", k === q);
    s.classList.toggle("locked", locked === k);
    s.title = "attention from #" + q + " to #" + k + ": " + a.toFixed(3);
  });
  let best = 0; row.forEach((a, k) => { if (k <= q && a > row[best]) best = k; });
  info.textContent = (locked === null ? "" : "locked ") + "query #" + q +
    " attends most to #" + best + " (" + row[best].toFixed(3) + ")";
  box.dataset.query = q; box.dataset.locked = locked === null ? "" : locked;
}
function clear() {
  locked = null;
  spans.forEach(s => { s.style.background = ""; s.classList.remove("q", "locked"); });
  info.textContent = "hover a token to see where it attends; click to lock";
  box.dataset.query = ""; box.dataset.locked = "";
}
document.getElementById("av-clear").addEventListener("click", clear);
if (locked !== null && locked < spans.length) show(locked);
</script>
"""
    )
