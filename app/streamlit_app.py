"""The workbench app: ``interp app`` (or ``streamlit run app/streamlit_app.py``).

One entry point: the shared sidebar (model, device, prompt and its tokens) and the pages, by
``st.navigation``. The model opened first comes from the ``model`` query parameter, else the
``INTERP_APP_MODEL`` environment variable, else the shipped organism ``induction-2l``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the app is the folder `app` of a clone, or the package `interp_app` of an installed wheel
PACKAGE = HERE.name
if str(HERE.parent) not in sys.path:  # a clone: its root holds the package `app`
    sys.path.insert(0, str(HERE.parent))


def answer_as_app(package) -> None:
    """Make ``import app`` give the installed ``interp_app``, in this server process only.

    The page scripts (``views/*.py``) run as scripts, not as modules of the package, so they
    cannot import it relatively; they import ``app``, the name the package has in a clone (and
    in the tests). Every module of the package is imported first and registered under both
    names, so that ``app.state`` and ``interp_app.state`` are one module with one state.
    """
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "streamlit_app":  # this script, already running
            importlib.import_module(f"{package.__name__}.{info.name}")
    held = sys.modules.get("app")
    if held is not None and held is not package:
        raise RuntimeError(
            f"the app's page scripts import `app`, but {held!r} already holds that name in "
            "this process; run the app in its own process: interp app"
        )
    for name, module in list(sys.modules.items()):
        if name == package.__name__ or name.startswith(package.__name__ + "."):
            sys.modules["app" + name[len(package.__name__) :]] = module


if PACKAGE != "app":
    answer_as_app(importlib.import_module(PACKAGE))

import streamlit as st  # noqa: E402

from app import components, state  # noqa: E402
from app import resources as R  # noqa: E402

PAGES = {
    "Explore": [
        ("views/head_atlas.py", "Head atlas", ":material/grid_on:", "head-atlas"),
        ("views/attention.py", "Attention", ":material/visibility:", "attention"),
        ("views/induction.py", "Induction", ":material/repeat:", "induction"),
        ("views/patching.py", "Patching", ":material/swap_horiz:", "patching"),
        ("views/path_patching.py", "Path patching", ":material/alt_route:", "path-patching"),
        ("views/emergence.py", "Emergence", ":material/trending_up:", "emergence"),
    ],
    "Circuits": [
        ("views/pathways.py", "Pathways", ":material/route:", "pathways"),
        ("views/circuits.py", "Circuits", ":material/account_tree:", "circuits"),
        ("views/features.py", "Features", ":material/scatter_plot:", "features"),
    ],
}


def sidebar() -> None:
    ss = st.session_state
    choice, where = state.opening_model()
    with st.sidebar:
        st.markdown("### interp workbench")
        options = state.model_options()
        st.selectbox(
            "Model",
            options,
            index=state.valid("model", options, choice),
            key="model",
            bind=state.URL,
            help="a shipped organism (loads in under a second), SmolLM2-135M (about 25 s), a "
            "local Hugging Face folder or .gguf file, or a hub name (needs the network)",
        )
        if ss["model"] == state.LOCAL:
            st.text_input(
                "Folder or .gguf path",
                value=where if choice == state.LOCAL else "",
                key="model_path",
                bind=state.URL,
                placeholder="/path/to/model",
            )
        elif ss["model"] == state.HUB:
            st.text_input(
                "Hub model name",
                value=where if choice == state.HUB else "",
                key="model_hub",
                bind=state.URL,
                placeholder="gpt2",
            )
        devices = R.devices()
        st.selectbox(
            "Device",
            devices,
            index=state.valid("device", devices, R.default_device()),
            key="device",
            bind=state.URL,
        )
        st.text_area("Prompt", value=state.DEFAULT_PROMPT, key="prompt", height=120, bind=state.URL)
        ss["_context"] = None
        spec, device = state.spec_from_widgets(), ss["device"]
        if not spec:
            st.error("Give a model: a folder holding config.json, a .gguf file or a hub name.")
            return
        try:
            model = R.get_model(spec, device)
        except Exception as err:  # a bad path, an unreadable GGUF, no network: say so, go on
            st.error(f"Cannot load {spec!r}: {err}")
            return
        info = R.model_info(model)
        prompt = ss["prompt"]
        problem = R.prompt_problem(model, prompt)
        ss["_context"] = state.Context(spec, device, model, info, prompt, problem)
        st.caption(
            f"{info.n_layers} layers x {info.n_heads} heads, d_model {info.d_model}, "
            f"context {info.n_ctx}, vocab {info.d_vocab} ({info.backend}, {device})"
        )
        if problem:
            st.error(problem)
            return
        view = R.prompt_view(spec, device, prompt)
        bos = model.tokenizer.bos_token if model.tokenizer is not None else None
        st.html(components.token_strip(view.tokens, view.loss, bos))


def main() -> None:
    # an emoji favicon is drawn in the page; a ":material/...:" one is fetched from Google
    st.set_page_config(page_title="interp workbench", page_icon="🔬", layout="wide")
    sidebar()
    pages = {
        section: [
            st.Page(HERE / path, title=title, icon=icon, url_path=url)
            for path, title, icon, url in entries
        ]
        for section, entries in PAGES.items()
    }
    page = st.navigation(pages)
    page.run()


main()
