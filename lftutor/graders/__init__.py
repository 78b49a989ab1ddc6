"""Graders: what the notebooks' test cells call, one module per unit.

``solutions/NN_name/`` is graded by ``lftutor/graders/name.py`` (its notebook imports it as
``from lftutor.graders import name as grading``); every unit's grader builds on
:mod:`lftutor.graders.core` (captured functions, tripwire, tamper check, result checks, short
tracebacks in a kernel) and :mod:`lftutor.graders.audit` (the source audit, also run by
``nbgrader autograde`` outside the student's kernel). Nothing here imports nbgrader.
"""
