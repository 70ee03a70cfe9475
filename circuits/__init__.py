"""The circuit catalogue's shipped entries, installed as the package ``interp_circuits``.

Each folder here is one entry (``entry.json`` and ``graph/``); the folder holds data, not code.
This file only makes the folder a package, so that ``interp.catalogue`` finds the shipped entries
through ``importlib.resources`` in a clone (an editable install maps ``interp_circuits`` to this
folder) and in an installed wheel alike.
"""
