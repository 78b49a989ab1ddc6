"""Feedback that says what failed without showing the hidden tests.

nbgrader's feedback renders the autograded notebook, whose test cells hold the hidden tests
(``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``) and whose error outputs print the
failing hidden ``assert`` lines in their tracebacks; ``ClearHiddenTests`` would only remove the
former. :class:`HideHiddenTests` removes both: each hidden region becomes one comment line, and
an error raised by (or passing through) hidden test code is reduced to its exception type and
message, e.g. ``AssertionError: phi4_action is wrong for lam = 0 (did you drop the kinetic
term?)``. Graders therefore put what the student needs to know in the exception message.
"""

from __future__ import annotations

import html
import re

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

BEGIN = "BEGIN HIDDEN TESTS"
END = "END HIDDEN TESTS"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Lines too short or too common to identify hidden code (``)``, ``else:``, ``pass``...).
_MIN_LINE = 8


def split_hidden(source: str) -> tuple[str, list[str]]:
    """``(visible_source, hidden_lines)``: the source with each hidden region replaced by a
    ``# hidden tests`` comment (same indentation), and the lines that were hidden."""
    visible, hidden, inside = [], [], False
    for line in source.split("\n"):
        if BEGIN in line:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            visible.append(f"{indent}# (hidden tests: run by the grader, not shown)")
        elif END in line:
            inside = False
        elif inside:
            hidden.append(line)
        else:
            visible.append(line)
    return "\n".join(visible), hidden


def identifying_lines(hidden: list[str], visible_text: str) -> list[str]:
    """The hidden lines that would identify hidden code if they appeared in a text: long
    enough, and not also part of the visible notebook (a shared ``import`` is no leak)."""
    visible = {line.strip() for line in visible_text.split("\n")}
    out = []
    for line in hidden:
        s = line.strip()
        if len(s) >= _MIN_LINE and s not in visible:
            out.append(s)
    return out


def html_to_text(page: str) -> str:
    """Rendered text of an HTML page (tags dropped, entities decoded, spaces collapsed per
    line): what a reader of the feedback can see, where syntax highlighting no longer splits
    code into spans."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    return "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n"))


def find_hidden_code(text: str, hidden_lines: list[str]) -> list[str]:
    """The ``hidden_lines`` that occur in ``text`` (both compared with spaces collapsed)."""
    squashed = re.sub(r"\s+", " ", text)
    return [line for line in hidden_lines if re.sub(r"\s+", " ", line) in squashed]


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback preprocessor: drop hidden test code and the traceback lines it would show."""

    note = Unicode(
        "(the traceback is not shown: this test cell runs hidden tests)",
        help="Line shown under the exception type and message instead of the traceback.",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        hidden_all: list[str] = []
        had_hidden = []
        for cell in nb.cells:
            visible, hidden = split_hidden(cell.source)
            had_hidden.append(bool(hidden) or visible != cell.source)
            hidden_all += hidden
            cell.source = visible
        visible_text = "\n".join(cell.source for cell in nb.cells)
        markers = identifying_lines(hidden_all, visible_text)
        for cell, hidden_here in zip(nb.cells, had_hidden, strict=True):
            if cell.cell_type != "code":
                continue
            for output in cell.get("outputs", []):
                self._clean_output(output, hidden_here, markers)
        return nb, resources

    def _clean_output(self, output, hidden_here: bool, markers: list[str]) -> None:
        if output.get("output_type") == "error":
            traceback = _ANSI.sub("", "\n".join(output.get("traceback", [])))
            if hidden_here or find_hidden_code(traceback, markers) or BEGIN in traceback:
                message = str(output.get("evalue", "")).strip() or "(no message)"
                output["traceback"] = [f"\x1b[0;31m{output.get('ename', 'Error')}\x1b[0m: {message}",
                                       self.note]
        elif output.get("output_type") == "stream":
            output["text"] = self._drop_lines(output.get("text", ""), markers)
        elif "data" in output:
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in output["data"]:
                    value = output["data"][mime]
                    value = "".join(value) if isinstance(value, list) else value
                    output["data"][mime] = self._drop_lines(value, markers)

    @staticmethod
    def _drop_lines(text: str, markers: list[str]) -> str:
        """Drop the lines of a printed text that quote hidden code (a traceback printed by hand)."""
        text = "".join(text) if isinstance(text, list) else text
        if not markers or not find_hidden_code(_ANSI.sub("", text), markers):
            return text
        keep = [line for line in text.split("\n") if not find_hidden_code(_ANSI.sub("", line), markers)]
        return "\n".join(keep)
