"""App speed: how soon the first page is interactive, and how fast the attention view is.

    python benchmarks/app.py                       # induction-2l on cpu
    python benchmarks/app.py --model smollm2-135m  # any spec load_model takes
    python benchmarks/app.py --browser             # also time a real server in Chromium

Figures (targets from issue #6):

- model load: ``interp.load_model`` in a fresh process (imports included) and again (the app
  loads it once per process, ``st.cache_resource``);
- first page, model loaded: an AppTest session's first run of the Head atlas with the model
  already in ``st.cache_resource`` and every ``st.cache_data`` cleared (target <= 3 s); the
  same again with the data caches warm (what a second visitor gets);
- attention view of a 256-token prompt: the patterns of the selected heads, the token view's
  HTML and the prompt's token strip, computed directly (target <= 1 s), and the Attention page's
  whole script run in AppTest with cold data caches;
- with ``--browser``: a ``streamlit run`` server, warmed by one visit, then the time from opening
  the URL in Chromium to the atlas chart drawn, and to the attention view drawn; beside it, the
  same for a bare Streamlit page holding one small plotly chart, the least a page like the
  atlas can cost in that browser.

Each figure is the median of ``--repeat`` runs; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
APP = ROOT / "app" / "streamlit_app.py"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def prompt_of_length(model, n_tokens: int) -> str:
    """A prompt that tokenizes to exactly ``n_tokens`` tokens, BOS included."""
    text = "def f(x):\n    return x + 1\n" * n_tokens
    ids = model.to_tokens(text, truncate=False)[0, 1:n_tokens]
    prompt = model.to_string(ids)
    while len(model.to_tokens(prompt, truncate=False)[0]) > n_tokens:
        ids = ids[:-1]
        prompt = model.to_string(ids)
    return prompt


def run_app(params: dict, page: str | None, timeout: float = 120):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def direct(args) -> dict[str, float]:
    import streamlit as st
    import torch

    from app import components
    from app import resources as R
    from interp import load_model

    torch.set_num_threads(max(1, min(args.threads, os.cpu_count() or 1)))
    out = {}
    start = time.perf_counter()
    model = load_model(args.model, device=args.device)
    out["model load, fresh process (imports included) (s)"] = time.perf_counter() - start
    out["model load, again (s)"] = median_time(
        lambda: load_model(args.model, device=args.device), args.repeat
    )
    R.get_model(args.model, args.device)  # into st.cache_resource, as the app's first visit does
    params = {"model": args.model} if args.model in R_models() else {}
    run_app(params, None)  # imports and the first script compile, out of the figures

    def first_page_cold():
        st.cache_data.clear()
        run_app(params, None)

    out["first page, model loaded, data caches cold (s)"] = median_time(
        first_page_cold, args.repeat
    )
    out["first page, caches warm (s)"] = median_time(lambda: run_app(params, None), args.repeat)

    n = min(256, model.cfg.n_ctx)
    prompt = prompt_of_length(model, n)
    heads = tuple((model.cfg.n_layers - 1, h) for h in range(min(2, model.cfg.n_heads)))

    def attention_view():
        view = R.prompt_view.__wrapped__(args.model, args.device, prompt)
        patterns = R.attention_patterns.__wrapped__(args.model, args.device, prompt, heads)
        components.attention_view(view.tokens, patterns[0], "head", None)
        components.token_strip(view.tokens, view.loss, None)

    out[f"attention view, {n}-token prompt, direct (s)"] = median_time(attention_view, args.repeat)
    labels = [f"L{la}H{h}" for la, h in heads]

    def attention_page():
        st.cache_data.clear()
        run_app({**params, "prompt": prompt, "heads": labels}, "views/attention.py")

    out[f"attention page run, {n}-token prompt, cold data caches (s)"] = median_time(
        attention_page, args.repeat
    )
    return out


def R_models() -> list[str]:
    from app import state

    return state.model_options()


# the least any Streamlit page with a plotly chart costs in the browser: the reference the app's
# first page is measured against
BARE_PAGE = """
import plotly.graph_objects as go
import streamlit as st

st.sidebar.selectbox("model", ["a", "b"])
st.title("bare page")
st.plotly_chart(go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], mode="markers")))
"""


@contextlib.contextmanager
def server(script: Path, env: dict):
    """A ``streamlit run`` server of ``script`` on a free port; yields its URL once healthy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=dict(os.environ, **env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def browser(args) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out = {}
    chart = ".js-plotly-plot .scatterlayer .point"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        # one browser context: its HTTP cache keeps Streamlit's and plotly's JavaScript, as a
        # returning user's browser does; every visit is still a new app session
        context = b.new_context(viewport={"width": 1400, "height": 1000})

        def visit(url: str, selector: str, frame: bool = False) -> float:
            page = context.new_page()
            start = time.perf_counter()
            page.goto(url)
            if frame:
                page.frame_locator("iframe").first.locator(selector).wait_for(timeout=120_000)
            else:
                page.locator(selector).first.wait_for(timeout=120_000)
            took = time.perf_counter() - start
            page.close()
            return took

        def median_visit(url: str, selector: str, frame: bool = False) -> float:
            return statistics.median(visit(url, selector, frame) for _ in range(args.repeat))

        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE_PAGE)
        with server(bare, {}) as url:
            visit(url, chart)  # the browser's cache, as for the app below
            out["browser: bare Streamlit page with one plotly chart, drawn (s)"] = median_visit(
                url, chart
            )
        env = {"INTERP_APP_MODEL": args.model, "PYTHONPATH": str(ROOT)}
        with server(APP, env) as url:
            out["browser: first visit (server imports, model load) (s)"] = visit(url, chart)
            out["browser: new session, model loaded: atlas chart drawn (s)"] = median_visit(
                url, chart
            )
            out["browser: new session: attention token view drawn (s)"] = median_visit(
                url + "/attention", "#tok-1", frame=True
            )
        b.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="induction-2l")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--browser", action="store_true", help="also time a server in Chromium")
    args = parser.parse_args()
    figures = direct(args)
    if args.browser:
        figures.update(browser(args))
    width = max(map(len, figures))
    print(f"app speed on {args.model} ({args.device}), median of {args.repeat}:")
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value:6.3f}")


if __name__ == "__main__":
    main()
