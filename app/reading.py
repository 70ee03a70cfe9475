"""What the Patching and Path patching pages share: a sweep run under a progress bar, and how its
Result is read (the baselines, what the numbers mean, the most important entries with their sign
ranked the way the reader picks, the provenance)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st

from interp.result import where_label

RANKS = {
    "magnitude": "largest |effect| (either sign)",
    "largest": "largest values",
    "smallest": "smallest values",
}


def show_reading(result, prov: dict, *, key: str, noun: str) -> None:
    """The rank choice (``key``), the reading, the five most important ``noun`` and provenance."""
    order = st.radio(
        f"Rank {noun} by", list(RANKS), format_func=RANKS.get, horizontal=True, key=key
    )
    st.markdown(f"**What the numbers mean.** {result.reading}")
    st.markdown(
        f"Most important {noun}: "
        + "; ".join(
            f"**{where_label(where)}** {v:+.3f} (effect {v - result.no_effect:+.3f})"
            for where, v in result.top(5, order)
        )
    )
    with st.expander("Provenance"):
        st.json(prov, expanded=False)


def run_sweep(
    run: Callable[..., object],
    settings: tuple,
    *,
    button: str,
    key: str,
    doing: str,
    unit: str,
    failed: str,
) -> None:
    """A primary ``button`` (widget ``key``) that runs ``run(*settings, on_progress=...)`` under
    a progress bar (``doing``: ``done`` of ``total`` ``unit``) and records ``settings`` as run.

    Stops the page with ``failed`` and the error when the run raises, and with a hint to press
    the button while the settings last run (in the session state under ``key + "_ran"``) are not
    ``settings``; returns once they are, so the page goes on to read the cached result.
    """
    ss, ran = st.session_state, f"{key}_ran"
    if st.button(button, type="primary", key=key):
        bar = st.progress(0.0, text=f"{doing}: building the task and the baseline...")
        try:

            def follow(done: int, total: int) -> None:
                bar.progress(done / max(total, 1), text=f"{doing}: {done} of {total} {unit}")

            run(*settings, on_progress=follow)
            bar.progress(1.0, text="done")
            ss[ran] = settings
        except Exception as err:
            bar.empty()
            st.error(f"{failed}: {err}")
            st.stop()
    if ss.get(ran) != settings:
        st.info(f"Press **{button}** to patch with these settings.")
        st.stop()


def show_baselines(result, prov: dict) -> None:
    """The clean and corrupted runs' metrics and the largest |effect|, side by side."""
    m1, m2, m3 = st.columns(3)
    m1.metric("Clean metric", f"{prov['clean_metric']:.3f}")
    m2.metric("Corrupted metric", f"{prov['corrupted_metric']:.3f}")
    effects = result.effects.float().numpy()
    m3.metric(
        "Largest |effect|",
        f"{float(effects.flat[np.nanargmax(np.abs(effects))]):+.3f}",
        help="value minus the no-effect value (the unpatched run's metric), with its sign",
    )
