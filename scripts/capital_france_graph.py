"""Build the catalogue entry ``capital-france-smollm2-features`` and its figures.

    .venv/bin/python scripts/capital_france_graph.py                 # entry into circuits/
    .venv/bin/python scripts/capital_france_graph.py --root /tmp/cat --figures /tmp/fig

The attribution graph of SmolLM2-135M-Instruct on "The capital of France is" through the shipped
transcoders (every MLP, each with an error node per position), pruned at (0.8, 0.98), with its
faithfulness against "The capital of Italy is" (resample; the rival token is " Rome"), zero and
mean ablation (8 held-out windows of 64 tokens), and its top features' contexts: the recipe is
``interp.catalogue.PROMPT_RECIPES``, built by ``interp.catalogue.build``. The figures (the pruned
graph as a plotly page, the entry's figures as JSON) go to ``--figures``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

NAME = "capital-france-smollm2-features"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", default=None, help="catalogue folder (default: the shipped one)")
    ap.add_argument("--figures", default="runs/capital-france-smollm2")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from interp.catalogue import build

    entry = build(NAME, args.root)
    info = entry.info
    out = Path(args.figures)
    out.mkdir(parents=True, exist_ok=True)
    entry.graph().plot(title=entry.title).write_html(out / "graph.html")
    (out / "figures.json").write_text(json.dumps(info, indent=1, default=str) + "\n")
    print(entry.verdict)
    keys = ("top_tokens", "graph_scores", "full_graph", "pruned_graph", "faithfulness")
    keys += ("features_move_metric_by", "seconds")
    print(json.dumps({k: info[k] for k in keys}, indent=1))
    for row in info["features"]:
        print(f"{row['node']:>22} infl {row['influence']:.3f}  {row['top_context']!r}")
    print(f"entry: {entry.folder}  figures: {out}")


if __name__ == "__main__":
    main()
