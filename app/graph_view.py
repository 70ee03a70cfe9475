"""The circuit-graph view the Circuits and Pathways pages share: prune, draw, inspect, export."""

from __future__ import annotations

import json

import streamlit as st

from . import plots, state


def prune_controls(graph, key: str):
    """Sliders that prune ``graph``; returns the pruned copy (the original is left as it is)."""
    has_logit = any(n.kind == "logit" for n in graph.nodes)
    modes = ["influence", "top edges"] if has_logit else ["top edges"]
    c1, c2, c3 = st.columns(3)
    mode = c1.radio(
        "Prune by", modes, key=f"{key}_prune", horizontal=True, persist_state=state.KEEP
    )
    if mode == "influence":
        node_t = c2.slider(
            "Node threshold (cumulative influence kept)",
            0.1,
            1.0,
            value=0.8,
            step=0.01,
            key=f"{key}_node_t",
            persist_state=state.KEEP,
        )
        edge_t = c3.slider(
            "Edge threshold (cumulative influence kept)",
            0.1,
            1.0,
            value=0.98,
            step=0.01,
            key=f"{key}_edge_t",
            persist_state=state.KEEP,
        )
        return graph.prune(node_threshold=node_t, edge_threshold=edge_t)
    n_max = max(1, graph.n_edges)
    n = c2.slider(
        "Strongest edges kept",
        1,
        n_max,
        value=min(n_max, 40),
        key=f"{key}_top",
        persist_state=state.KEEP,
    )
    return graph.top_edges(n)


_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+-.!|~$"})


def shown(text: str) -> str:
    """Token text as markdown shows it literally: control characters written out (a newline as
    ``\\n``), markdown's special characters escaped (a lone ``+`` would start a list)."""
    visible = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return visible.translate(_MARKDOWN)


def node_details(graph, node_id: str, model_spec: str | None) -> None:
    """What is known about one node: its fields, influence and strongest edges in and out."""
    try:
        node = graph.node(node_id)
    except KeyError:
        st.info(f"Node {node_id} is not in the pruned graph.")
        return
    index = [n.node_id for n in graph.nodes].index(node_id)
    st.markdown(f"**{shown(node.name)}** `{node.node_id}` ({node.kind})")
    fields = {
        "layer": node.layer,
        "position": node.pos,
        "index": node.index,
        "activation": node.activation,
    }
    if any(n.kind == "logit" for n in graph.nodes) and graph.n_edges:
        fields["influence"] = round(float(graph.influence()[index]), 4)
    st.json({k: v for k, v in fields.items() if v is not None}, expanded=True)
    if note := graph.provenance.get("node_notes", {}).get(node_id):
        st.markdown(f"Note: *{shown(note)}*")
    incoming = sorted(
        ((s.name, w) for s, d, w, _ in graph.edges() if d.node_id == node_id),
        key=lambda t: -abs(t[1]),
    )[:8]
    outgoing = sorted(
        ((d.name, w) for s, d, w, _ in graph.edges() if s.node_id == node_id),
        key=lambda t: -abs(t[1]),
    )[:8]
    if incoming:
        st.markdown("From: " + ", ".join(f"{shown(n)} ({w:+.3g})" for n, w in incoming))
    if outgoing:
        st.markdown("To: " + ", ".join(f"{shown(n)} ({w:+.3g})" for n, w in outgoing))
    if node.kind == "head" and model_spec:

        def _open() -> None:
            ss = st.session_state
            if model_spec != state.spec_from_widgets():
                ss["model"] = model_spec
            state.select_heads([node.name])
            ss["_goto"] = "views/attention.py"

        st.button(f"Open {node.name} in Attention", key=f"open_{node_id}", on_click=_open)


def annotations(graph, pruned, *, key: str, save=None) -> None:
    """Supernodes (named groups of nodes) and notes on nodes, drawn on the graph and saved with
    it: ``save(graph)`` writes the graph (with ``provenance["supernodes"]``, circuit-tracer's
    ``[name, node_id, ...]`` lists, and ``provenance["node_notes"]``) where it came from."""
    ss = st.session_state
    groups = ss.setdefault(
        f"{key}_groups", [list(g) for g in graph.provenance.get("supernodes", [])]
    )
    notes = ss.setdefault(f"{key}_notes", dict(graph.provenance.get("node_notes", {})))
    names = {n.node_id: n.name for n in pruned.nodes}
    with st.expander(f"Supernodes and notes ({len(groups)} groups, {len(notes)} notes)"):
        c1, c2 = st.columns([2, 1])
        members = c1.multiselect(
            "Nodes to group",
            list(names),
            format_func=lambda i: f"{names[i]} ({i})",
            key=f"{key}_group_members",
        )
        name = c2.text_input("Supernode name", key=f"{key}_group_name")
        if c2.button("Group", key=f"{key}_group_add", disabled=not (members and name.strip())):
            groups.append([name.strip(), *members])
        for g, group in enumerate(list(groups)):
            left, right = st.columns([4, 1])
            left.markdown(
                f"**{shown(group[0])}**: " + ", ".join(shown(names.get(m, m)) for m in group[1:])
            )
            if right.button("Remove", key=f"{key}_group_del_{g}"):
                groups.remove(group)
                st.rerun()
        c1, c2 = st.columns([2, 1])
        node = c1.selectbox(
            "Note on node",
            list(names),
            format_func=lambda i: f"{names[i]} ({i})",
            key=f"{key}_note_node",
        )
        text = c2.text_input("Note", value=notes.get(node, ""), key=f"{key}_note_text_{node}")
        if text.strip() != notes.get(node, ""):
            if text.strip():
                notes[node] = text.strip()
            else:
                notes.pop(node, None)
        if save is not None and st.button(
            "Save supernodes and notes with the circuit", key=f"{key}_save"
        ):
            graph.provenance["supernodes"] = [list(g) for g in groups]
            graph.provenance["node_notes"] = dict(notes)
            save(graph)
            st.success("Saved with the circuit (also in its viewer JSON's qParams.supernodes).")
    pruned.provenance["supernodes"] = [list(g) for g in groups]
    pruned.provenance["node_notes"] = dict(notes)


def show_graph(
    graph, *, key: str, title: str, file_stem: str, model_spec: str | None, save=None
) -> None:
    """Prune controls, the clickable graph, the clicked node's details, supernodes and notes,
    JSON and image export. ``save(graph)``, when given, keeps supernodes and notes with it."""
    pruned = prune_controls(graph, key)
    annotations(graph, pruned, key=f"{key}_{file_stem}", save=save)
    st.caption(
        f"{len(pruned.nodes)} of {len(graph.nodes)} nodes, {pruned.n_edges} of "
        f"{graph.n_edges} edges shown"
    )
    fig = plots.graph_figure(pruned, title)
    left, right = st.columns([3, 1])
    with left:
        event = st.plotly_chart(
            fig, key=f"{key}_chart", on_select="rerun", selection_mode="points", width="content"
        )
    with right:
        st.markdown("**Node**")
        node_id = plots.selected_node(event)
        if node_id is None:
            names = [n.node_id for n in pruned.nodes]
            node_id = st.selectbox("Node", names, key=f"{key}_node", label_visibility="collapsed")
            st.caption("Click a node in the graph, or pick it here.")
        if node_id:
            node_details(pruned, node_id, model_spec)
    c1, c2 = st.columns(2)
    c1.download_button(
        "Export JSON (Neuronpedia / circuit-tracer viewer)",
        data=lambda: json.dumps(pruned.to_json(), indent=1),
        file_name=f"{file_stem}.json",
        mime="application/json",
        key=f"{key}_json",
        on_click="ignore",
    )
    if plots.can_draw_png():
        c2.download_button(
            "Export PNG",
            data=lambda: fig.to_image(format="png", scale=2),
            file_name=f"{file_stem}.png",
            mime="image/png",
            key=f"{key}_png",
            on_click="ignore",
        )
    else:
        c2.download_button(
            "Export HTML (interactive figure)",
            data=lambda: fig.to_html(include_plotlyjs=True),  # opens offline,
            file_name=f"{file_stem}.html",
            mime="text/html",
            key=f"{key}_html",
            on_click="ignore",
        )
        c2.caption("PNG export needs the kaleido package (`pip install kaleido`); HTML instead.")
