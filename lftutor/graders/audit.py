r"""Audit of notebook code for tampering with the graders: a pure-AST scan, no torch needed.

:func:`audit_source` flags code that could change what the graders of :mod:`lftutor.graders`
see (patching torch or numpy, rebinding ``grading``, ``setattr``/``exec`` tricks...).
:class:`AuditCells` runs it inside ``nbgrader autograde``, outside the student's kernel: when a
submitted notebook contains such code, every autograded test cell fails with the findings, so no
in-kernel trick (e.g. rebinding the name ``grading``) can earn points. Enable it in
``nbgrader_config.py``::

    c.Autograde.sanitize_preprocessors = [..., "nbgrader.preprocessors.OverwriteCells",
                                          "lftutor.graders.audit.AuditCells", ...]
"""

from __future__ import annotations

import ast
import json

_PROTECTED_MODULES = {"torch", "numpy", "lftutor", "builtins", "sys", "math", "IPython", "importlib"}
_FORBIDDEN_IMPORTS = {"importlib", "gc", "ctypes", "imp", "builtins"}
_FORBIDDEN_CALLS = {"exec", "eval", "compile", "setattr", "delattr", "__import__", "globals",
                    "vars", "reload"}
_FORBIDDEN_DUNDERS = {"__dict__", "__code__", "__globals__", "__builtins__", "__setattr__",
                      "__delattr__", "__closure__", "__defaults__", "__kwdefaults__",
                      "__subclasses__", "__import__", "__loader__", "__spec__", "__class__",
                      "__bases__", "__mro__"}
_FORBIDDEN_METHODS = {"setprofile", "settrace", "pop", "popitem", "clear", "update",
                      "setdefault", "__setitem__", "__delitem__", "reload"}
_FORBIDDEN_MAGICS = {"run", "load", "reset", "autoreload", "aimport", "store", "load_ext"}


def _root_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


#: Names that refer to a protected module before the code binds any alias of its own.
_PROTECTED_NAMES = frozenset({"torch", "np", "numpy", "lftutor", "grading", "builtins", "sys", "math",
                              "nn", "F", "importlib", "IPython"})


def audit_source(source: str) -> list[str]:
    """Lines of ``source`` that could tamper with torch, numpy, lftutor or the graders.

    Flags: assignments to attributes of (aliases of) those modules; rebinding the name
    ``grading``; ``setattr``/``delattr``/``exec``/``eval``/``compile``/``globals``/``vars``; dunder
    attributes such as ``__dict__`` or ``__code__``; importing ``importlib``, ``gc``,
    ``ctypes``, ``imp`` or ``builtins``; mutating ``sys.modules``; ``sys.setprofile``; the IPython magics
    ``%run``/``%load``/``%reset``/``%autoreload``. Code that does not parse yields no findings.

    The nodes are visited in :func:`ast.walk` order; each kind of node has its own check below,
    and the set of protected names grows as imports and assignments alias the modules.

    Returns:
        Human-readable findings, empty when nothing is suspicious.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    protected = set(_PROTECTED_NAMES)
    findings = []

    def flag(node, why):
        findings.append(f"line {getattr(node, 'lineno', '?')}: {why}")

    for node in ast.walk(tree):
        check = _NODE_CHECKS.get(type(node))
        if check is not None:
            check(node, protected, flag)
    return sorted(set(findings), key=_line_then_text)


def _line_then_text(finding: str):
    """Sort key of a finding ``"line N: why"``: by line number (``?`` first), then by text."""
    word = finding.split()[1].rstrip(":")
    return (int(word) if word.isdigit() else 0, finding)


def _audit_import(node: ast.Import, protected: set, flag) -> None:
    """``import x``: the graders or a forbidden module (``importlib``, ``gc``, ...), under any
    name, or anything bound as ``grading``; an alias of a protected module becomes protected."""
    for alias in node.names:
        top = alias.name.split(".")[0]
        if alias.name.startswith("lftutor.graders"):
            flag(node, f"imports {alias.name} under another name")
        if top in _FORBIDDEN_IMPORTS:
            flag(node, f"imports {alias.name}")
        if top in _PROTECTED_MODULES:
            protected.add((alias.asname or alias.name).split(".")[0])
        if (alias.asname or "") == "grading":
            flag(node, "binds the name 'grading' to another module")


def _audit_import_from(node: ast.ImportFrom, protected: set, flag) -> None:
    """``from x import y``: from a forbidden module, or a grader under another name than the
    setup cell's ``from lftutor.graders import <unit> as grading``; names imported from a protected
    module become protected."""
    top = (node.module or "").split(".")[0]
    if top in _FORBIDDEN_IMPORTS:
        flag(node, f"imports from {node.module}")
    for alias in node.names:
        bound = alias.asname or alias.name
        # the setup and test cells' `from lftutor.graders import <unit> as grading`
        is_setup = (node.module == "lftutor.graders" and alias.asname == "grading"
                    and alias.name not in ("core", "audit"))
        if (bound == "grading" or alias.name in ("grading", "graders")
                or (node.module or "").startswith("lftutor.graders")) and not is_setup:
            flag(node, "imports the grader under another name, or binds 'grading' to "
                       "something else")
        if top in _PROTECTED_MODULES and alias.name != "*":
            protected.add(bound)


def _audit_assignment(node, protected: set, flag) -> None:
    """``=``, ``+=``, ``x: T = ...``, ``del``: a store into an attribute or item of a protected
    name (or of an expression); a plain name assigned from a protected one becomes protected."""
    targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, (ast.Attribute, ast.Subscript)) and isinstance(
                    sub.ctx, (ast.Store, ast.Del)):
                root = _root_name(sub)
                if isinstance(root, ast.Name) and root.id in protected:
                    flag(node, f"assigns to {ast.unparse(sub)}, part of a library module")
                elif not isinstance(root, ast.Name):
                    flag(node, f"assigns to {ast.unparse(sub)}")
    value = getattr(node, "value", None)
    if isinstance(node, ast.Assign) and value is not None:
        root = _root_name(value)
        if isinstance(root, ast.Name) and root.id in protected:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    protected.add(target.id)


def _audit_name(node: ast.Name, protected: set, flag) -> None:
    """A name: rebinding ``grading``; using ``exec``, ``setattr``, ... or ``__builtins__``."""
    if node.id == "grading" and isinstance(node.ctx, (ast.Store, ast.Del)):
        flag(node, "rebinds the name 'grading'")
    if node.id in _FORBIDDEN_CALLS and isinstance(node.ctx, ast.Load):
        flag(node, f"uses {node.id}")
    if node.id in ("__builtins__", "__import__"):
        flag(node, f"uses {node.id}")


def _audit_global(node, protected: set, flag) -> None:
    """``global grading`` / ``nonlocal grading``."""
    if "grading" in node.names:
        flag(node, "declares 'grading' global")


def _audit_attribute(node: ast.Attribute, protected: set, flag) -> None:
    """An attribute: a forbidden dunder (``__dict__``, ``__code__``, ...), a mutating method of a
    protected name (``.update``, ``.pop``, ``setprofile``...), ``sys.setprofile``/``settrace``."""
    if node.attr in _FORBIDDEN_DUNDERS:
        flag(node, f"uses the attribute {node.attr}")
    root = _root_name(node)
    if node.attr in _FORBIDDEN_METHODS and isinstance(root, ast.Name) and root.id in protected:
        flag(node, f"calls {ast.unparse(node)}")
    if node.attr in ("modules", "setprofile", "settrace") and isinstance(root, ast.Name) \
            and root.id == "sys" and isinstance(node.ctx, ast.Load):
        parent_ok = node.attr == "modules"  # reading sys.modules (e.g. `in`) is fine
        if not parent_ok:
            flag(node, f"uses sys.{node.attr}")


def _audit_call(node: ast.Call, protected: set, flag) -> None:
    """A call: a forbidden IPython magic run by name (``run_line_magic("run", ...)``) or a call
    that runs code from a string (``run_cell``, ``ex``, ``ev``, ``run_code``, ``run_source``)."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in ("run_line_magic", "run_cell_magic",
                                                         "magic") and node.args:
        first = node.args[0]
        name = first.value.split()[0] if isinstance(first, ast.Constant) and isinstance(
            first.value, str) and first.value.split() else ""
        if name in _FORBIDDEN_MAGICS:
            flag(node, f"runs the magic %{name}")
    if isinstance(func, ast.Attribute) and func.attr in ("run_cell", "ex", "ev",
                                                         "run_code", "run_source"):
        flag(node, f"calls {func.attr}")


#: The check of each kind of node :func:`audit_source` looks at.
_NODE_CHECKS = {
    ast.Import: _audit_import,
    ast.ImportFrom: _audit_import_from,
    ast.Assign: _audit_assignment, ast.AugAssign: _audit_assignment,
    ast.AnnAssign: _audit_assignment, ast.Delete: _audit_assignment,
    ast.Name: _audit_name,
    ast.Global: _audit_global, ast.Nonlocal: _audit_global,
    ast.Attribute: _audit_attribute,
    ast.Call: _audit_call,
}


def audit_notebook(path) -> list[str]:
    """:func:`audit_source` over every code cell of the notebook at ``path`` ("cell N, line M: ...").

    Meant for the autograde pipeline, outside the kernel, on submitted notebooks.
    """
    with open(path, encoding="utf-8") as fh:
        nb = json.load(fh)
    findings = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        source = _strip_magics(source)
        findings += [f"cell {index}, {f}" for f in audit_source(source)]
    return findings


def _strip_magics(source: str) -> str:
    """Turn IPython magics and shell escapes into Python a parser accepts (for the audit)."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("%%"):
            name = stripped[2:].split()[0] if stripped[2:].split() else ""
            lines.append(f"{indent}get_ipython().run_cell_magic({name!r}, '', '')")
        elif stripped.startswith(("%", "!")):
            name = stripped[1:].split()[0] if stripped[1:].split() else ""
            lines.append(f"{indent}get_ipython().run_line_magic({name!r}, '')")
        else:
            lines.append(line)
    return "\n".join(lines)


def _cell_source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


try:
    from nbconvert.preprocessors import Preprocessor as _Preprocessor
    from traitlets import Bool as _Bool
except ImportError:  # pragma: no cover - nbconvert comes with nbgrader and Jupyter
    _Preprocessor, _Bool = object, None


class AuditCells(_Preprocessor):
    """nbgrader sanitize step: fail every autograded test cell of a notebook that tampers.

    Runs after ``OverwriteCells`` (so test and locked cells are the instructor's again) and scans
    the remaining code cells (answers and cells the student added). With findings, each graded
    code cell starts with ``raise AssertionError(<findings>)``: the test fails, and the feedback
    says why.
    """

    # nbconvert preprocessors are off unless enabled; nbgrader registers this one by name.
    enabled = _Bool(True).tag(config=True) if _Bool is not None else True

    def preprocess(self, nb, resources):
        findings = []
        for index, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.get("cell_type") != "code" or meta.get("locked") or meta.get("grade"):
                continue
            findings += [f"cell {index}, {f}" for f in audit_source(_strip_magics(_cell_source(cell)))]
        if findings:
            message = ("Not graded: the notebook contains code that could interfere with grading "
                       "(answers must not patch torch, numpy, lftutor or the graders):\n  "
                       + "\n  ".join(findings[:10]))
            for cell in nb.cells:
                meta = cell.get("metadata", {}).get("nbgrader", {})
                if cell.get("cell_type") == "code" and meta.get("grade"):
                    cell.source = f"raise AssertionError({message!r})\n" + _cell_source(cell)
        return nb, resources
