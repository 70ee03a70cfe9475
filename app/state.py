"""Session state that a link can carry: model, prompt, selected heads and each page's settings.

Shareable settings are widgets bound to the URL (``bind="query-params"``): the widget's key is
the query parameter, a value equal to the default is left out, and an invalid value in a link is
ignored. Programmatic changes (a click on a head in the atlas) go through ``st.session_state``.
Other page settings keep their value across page switches (``persist_state="session"``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import streamlit as st

from interp.organisms import ORGANISMS

from . import resources as R

SMOLLM2 = "smollm2-135m"
LOCAL = "local folder or .gguf file"
HUB = "hub model name"
DEFAULT_MODEL = "induction-2l"
DEFAULT_PROMPT = "def greet(name):\n    return 'Hello, ' + name\n\ndef greet(name):\n    return 'Hello, ' + name\n"
URL = "query-params"
NO_LOCK = "none"  # the locked query position when none is locked
KEEP = "session"
HEAD_LABEL = re.compile(r"^L(\d+)H(\d+)$")


def valid(key: str, options: list, default=None):
    """Drop a session value of ``key`` that is no longer one of ``options`` (another model);
    return ``default``'s index in ``options`` (0 when absent), for the widget's ``index``."""
    ss = st.session_state
    if key in ss and ss[key] not in options:
        del ss[key]
    return options.index(default) if default in options else 0


def opening_model() -> tuple[str, str]:
    """``(choice, path or hub name)`` the app opens with: ``INTERP_APP_MODEL``, else the default."""
    spec = os.environ.get("INTERP_APP_MODEL", "").strip() or DEFAULT_MODEL
    if spec in ORGANISMS or spec == SMOLLM2:
        return spec, ""
    local = spec.endswith(".gguf") or spec.startswith(("/", ".", "~")) or os.path.exists(spec)
    return (LOCAL if local else HUB), spec


def model_options() -> list[str]:
    return [*ORGANISMS, SMOLLM2, LOCAL, HUB]


def spec_from_widgets() -> str:
    ss = st.session_state
    choice = ss.get("model", DEFAULT_MODEL)
    if choice == LOCAL:
        return (ss.get("model_path") or "").strip()
    if choice == HUB:
        return (ss.get("model_hub") or "").strip()
    return choice


# -- heads ---------------------------------------------------------------------------------------


def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def parse_head(label: str) -> tuple[int, int]:
    m = HEAD_LABEL.match(label)
    if not m:
        raise ValueError(f"{label!r} is not a head label like 'L1H0'")
    return int(m.group(1)), int(m.group(2))


def all_heads(info: R.ModelInfo) -> list[str]:
    return [head_label(la, h) for la in range(info.n_layers) for h in range(info.n_heads)]


def select_heads(labels: list[str]) -> None:
    """Make ``labels`` the selected heads (opened on the Attention page), as heads of the model
    the widgets now name (the Attention page resets heads picked for another model)."""
    st.session_state["heads"] = list(dict.fromkeys(labels))
    st.session_state["heads_for"] = spec_from_widgets()
    st.session_state["q"] = NO_LOCK


def open_attention() -> None:
    """Go to the Attention page with the selected heads in the URL.

    ``st.switch_page`` clears the query parameters, and a widget bound to the URL on this page
    may not be given there (the sidebar's widgets put theirs back as they are drawn); the heads
    are set through the session, which the Attention page's widget does not copy to the URL.
    """
    st.switch_page(
        "views/attention.py", query_params={"heads": list(st.session_state.get("heads", []))}
    )


# -- the page context ----------------------------------------------------------------------------


@dataclass
class Context:
    """What every page works on: the model (spec, device, object), its shape and the prompt."""

    spec: str
    device: str
    model: object
    info: R.ModelInfo
    prompt: str
    prompt_problem: str | None


def context() -> Context | None:
    """The current model and prompt, or None (the sidebar has already said why)."""
    return st.session_state.get("_context")


def require_context(need_prompt: bool = False) -> Context:
    """The context, or stop the page with a message."""
    ctx = context()
    if ctx is None:
        st.info("Pick a model that loads in the sidebar to use this page.")
        st.stop()
    if need_prompt and ctx.prompt_problem:
        st.error(ctx.prompt_problem)
        st.stop()
    return ctx
