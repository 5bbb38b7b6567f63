"""Connectors: one module per database, imported lazily by :func:`bge_vdb.connect`."""
