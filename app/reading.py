"""How a sweep's Result is read on the Patching and Path patching pages: what the numbers mean,
the most important entries with their sign (ranked the way the reader picks), the provenance."""

from __future__ import annotations

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
