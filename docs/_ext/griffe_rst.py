"""A griffe extension: aep_io's reST-flavoured docstrings, rendered as Markdown by mkdocstrings.

The docstrings are Google style with a few reStructuredText habits, which Markdown would print
literally. This rewrites them in memory, at build time (the sources are not touched):

* ``:func:`x```, ``:class:`~a.b.C```, ``:mod:`.synthetic``` ... become links to the API
  reference (optional cross-references: a target that is not rendered stays plain code);
* ``Example:`` sections become ``Examples:`` (griffe reads the singular as an admonition,
  which would render ``>>>`` lines as quotes instead of code);
* a paragraph ending in ``::`` followed by an indented block becomes a fenced code block
  (``Example::`` becomes an ``Example:`` section holding Python code);
* ``#: comment`` lines above a module attribute become its docstring (so it is documented);
* reST "simple tables" (``====  ====`` rules) become Markdown tables.
"""

from __future__ import annotations

import html
import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(func|meth|class|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)  # singular: an admonition to griffe
_RULE = re.compile(r"^(\s*)(=+)((?:\s+=+)+)\s*$")


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is None and obj.is_attribute:
                _comment_docstring(obj)
            if obj.docstring is not None:
                text = _tables(obj.docstring.value)
                text = _literal_blocks(text)
                text = _EXAMPLE.sub(r"\1Examples:", text)
                obj.docstring.value = _roles(text, obj)


def _comment_docstring(obj: griffe.Object) -> None:
    """``#: text`` comment lines just above an attribute become its docstring (Sphinx style)."""
    parent = obj.parent
    if parent is None or obj.lineno is None:
        return
    try:
        lines = parent.module.lines
    except (AttributeError, OSError):
        return
    found: list[str] = []
    i = obj.lineno - 2
    while 0 <= i < len(lines) and lines[i].strip().startswith("#:"):
        found.insert(0, lines[i].strip()[2:].strip())
        i -= 1
    if found:
        obj.docstring = griffe.Docstring("\n".join(found), parent=obj)


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    out = [obj]
    for member in obj.members.values():
        if member.is_alias:
            continue
        assert isinstance(member, griffe.Object)
        out.extend(_walk(member))
    return out


def _resolve(target: str, obj: griffe.Object) -> str | None:
    if target.startswith("."):  # relative module: ".synthetic" from aep_io.emulator.core
        module = obj.module
        base = module if module.is_init_module or module.parent is None else module.parent
        return f"{base.path}{target}"
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            return scope.resolve(target)
        except (griffe.NameResolutionError, AttributeError, KeyError, ValueError):
            pass
        head = target.split(".", 1)[0]
        if head in scope.members and "." in target:
            return f"{scope.members[head].path}.{target.split('.', 1)[1]}"
        scope = scope.parent
    return target if "." in target else None


def _roles(text: str, obj: griffe.Object) -> str:
    def repl(match: re.Match[str]) -> str:
        short, target = match[2] == "~", match[3].strip()
        shown = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
        if match[1] in ("func", "meth"):
            shown += "()"
        identifier = _resolve(target, obj)
        code = f"<code>{html.escape(shown)}</code>"
        if identifier is None:
            return code
        return f'<autoref identifier="{html.escape(identifier)}" optional>{code}</autoref>'

    return _ROLE.sub(repl, text)


def _literal_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::") or line.strip() == "::":
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        block_end = j
        while block_end < len(lines) and (
            not lines[block_end].strip()
            or len(lines[block_end]) - len(lines[block_end].lstrip()) > indent
        ):
            block_end += 1
        if j == i + 1 or j >= block_end:  # no blank line, or no indented block: leave it
            out.append(line)
            i += 1
            continue
        while not lines[block_end - 1].strip():
            block_end -= 1
        body = textwrap.dedent("\n".join(lines[j:block_end])).splitlines()
        title = line.strip()[:-2].rstrip()
        pad = " " * indent
        if title.lower() in ("example", "examples"):  # a Google "Example:" section
            out.append(f"{pad}{title}:")
            out.append(f"{pad}    ```python")
            out.extend(f"{pad}    {b}" if b else "" for b in body)
            out.append(f"{pad}    ```")
        else:
            out.append(f"{pad}{title}:")
            out.append("")
            out.append(f"{pad}```{_language(body)}")
            out.extend(f"{pad}{b}" if b else "" for b in body)
            out.append(f"{pad}```")
        i = block_end
    return "\n".join(out)


def _language(body: list[str]) -> str:
    code = "\n".join(body)
    if re.search(r"^\s*(from \w|import \w|\w+ = \w+\(|\w+\(.*\)\s*$)", code, re.M):
        return "python"
    return "text"


def _tables(text: str) -> str:
    """reST simple tables (three ``===`` rules: top, under the header, bottom) -> Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        rule = _RULE.match(lines[i])
        if rule is None:
            out.append(lines[i])
            i += 1
            continue
        rules = [k for k in range(i, len(lines)) if _RULE.match(lines[k])][:3]
        if len(rules) < 3 or rules[1] != i + 2:
            out.append(lines[i])
            i += 1
            continue
        spans = [(m.start(), m.end()) for m in re.finditer(r"=+", lines[i])]
        rows = [lines[i + 1], *lines[rules[1] + 1 : rules[2]]]

        def cells(row: str, spans: list[tuple[int, int]] = spans) -> list[str]:
            bounds = [*[s for s, _ in spans[1:]], None]
            return [row[s:e].strip().replace("|", "\\|") for (s, _), e in zip(spans, bounds,
                                                                                strict=True)]

        pad = rule[1]
        out.append(pad + "| " + " | ".join(cells(rows[0])) + " |")
        out.append(pad + "|" + "---|" * len(spans))
        out.extend(pad + "| " + " | ".join(cells(r)) + " |" for r in rows[1:] if r.strip())
        i = rules[2] + 1
    return "\n".join(out)
