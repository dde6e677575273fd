"""Shims for a clone: ``python -m experiments.<name>`` runs ``keras-lottery <name>``.

The binaries live in the installed package (``keras_lottery/experiments/``); this folder is not
packaged. Each shim hands over to
``keras_lottery.experiments.launch``.
"""
