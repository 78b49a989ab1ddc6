"""The command line's sub-commands, one module per model (``phi4``, ``gff``, ...).

A module here that defines ``register(train, mcmc)`` is found by :mod:`lftutor.cli` without
editing it: ``train`` and ``mcmc`` are argparse sub-parser groups; each parser it adds sets
``run=function(args) -> dict`` (the JSON result) with ``set_defaults``. Modules whose name starts
with ``_`` are helpers; :mod:`~lftutor.commands.instructor` is the instructors' ``release`` and
``grade``, which alone import nbgrader, and only when they run.
"""
