"""Keras callbacks for lottery workflows, to drop into ``model.fit``.

Each callback lives in a module of its own in this package and is re-exported here.
"""
