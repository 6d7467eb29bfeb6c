"""MkDocs hooks: reference tables generated from the code at build time.

* ``<!-- cli-reference -->`` (in ``docs/reference/cli.md``) becomes one section per ``aep-io``
  command (usage, description, arguments and options with their types and defaults), walking
  ``typer.main.get_command(aep_io.cli.app)``: a command added to the CLI shows up with no edit
  to the docs, and ``tests/test_docs.py`` checks that every command is listed.
* ``<!-- api-index -->`` (in ``docs/reference/api/index.md``) becomes a table of every name in
  ``aep_io.__all__``, each linked to its entry in the API reference.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

MARKER = "<!-- cli-reference -->"
PROG = "aep-io"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render())
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_index())
    return markdown


def commands() -> list[tuple[list[str], Any]]:
    """Every command of the app, depth first: ``(path, click command)``; groups included."""
    import typer.main

    from aep_io.cli import app

    root = typer.main.get_command(app)
    out: list[tuple[list[str], Any]] = []

    def walk(path: list[str], cmd: Any) -> None:
        out.append((path, cmd))
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            if not getattr(sub, "hidden", False):
                walk([*path, name], sub)

    walk([PROG], root)
    return out


def _md(text: str) -> str:
    """reST habits of the help strings -> Markdown (``x`` -> `x`)."""
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _type(param: Any, ctx: Any) -> str:
    try:
        shown = param.display_type(ctx)
    except Exception:  # a Typer internal changed: no type, rather than no docs
        return ""
    return str(shown).strip("<>") if shown else ""


def _default(param: Any) -> str:
    default = param.default
    if param.required or default is None or default == [] or callable(default):
        return ""
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return param.opts[0] if default else param.secondary_opts[0]
    if isinstance(default, bool):
        return "" if not default else "true"
    return f"`{default}`"


def _usage(path: list[str], cmd: Any) -> str:
    parts = [*path, "[OPTIONS]"]  # every command has at least --help
    for p in cmd.params:
        if p.param_type_name != "argument":
            continue
        name = p.name.upper()
        name += "..." if p.nargs == -1 else ""
        parts.append(name if p.required else f"[{name}]")
    if getattr(cmd, "commands", None):
        parts.append("COMMAND [ARGS]...")
    return " ".join(parts)


def render() -> str:
    lines: list[str] = []
    for path, cmd in commands():
        depth = len(path)
        heading = "#" * min(depth + 1, 4)
        lines.append(f"{heading} `{' '.join(path)}`")
        lines.append("")
        lines.append("```text")
        lines.append(_usage(path, cmd))
        lines.append("```")
        lines.append("")
        if cmd.help:
            lines.append(_md(inspect.cleandoc(cmd.help)))
            lines.append("")
        try:
            ctx = cmd.make_context(path[-1], [], resilient_parsing=True)
        except Exception:
            ctx = None
        params = [p for p in cmd.params if not getattr(p, "hidden", False)]
        if params:
            lines.append("| argument / option | type | default | description |")
            lines.append("|---|---|---|---|")
            for p in params:
                if p.param_type_name == "argument":
                    name = f"`{p.name.upper()}`" + (" (required)" if p.required else "")
                else:
                    name = " / ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
                    name += " (required)" if p.required else ""
                help_text = _cell(getattr(p, "help", None) or "")
                if getattr(p, "multiple", False):
                    help_text = (help_text + " Repeatable.").strip()
                lines.append(f"| {name} | {_type(p, ctx)} | {_default(p)} | {help_text} |")
            lines.append("")
        subs = getattr(cmd, "commands", None)
        if subs:
            lines.append("| command | what it does |")
            lines.append("|---|---|")
            for name, sub in subs.items():
                if getattr(sub, "hidden", False):
                    continue
                short = _cell(inspect.cleandoc(sub.help or "").split("\n\n")[0])
                anchor = "-".join([*path, name]).replace("_", "-")
                lines.append(f"| [`{name}`](#{anchor}) | {short} |")
            lines.append("")
    return "\n".join(lines)


# -- the flat public API ---------------------------------------------------------------------------
API_MARKER = "<!-- api-index -->"


def api_index() -> str:
    """A table of ``aep_io.__all__``: each name linked to its entry in the API reference.

    The links are cross-references (autorefs): a public name whose module is missing from the
    API reference pages fails the strict build.
    """
    import importlib

    import aep_io

    rows = ["| name | kind | what it is |", "|---|---|---|"]
    for name in sorted(n for n in aep_io.__all__ if not n.startswith("_")):
        # from the defining module: ``aep_io.downloads`` may be the submodule, not the function
        obj = getattr(importlib.import_module(aep_io._EXPORTS[name]), name)
        path = f"{obj.__module__}.{obj.__qualname__}"
        if isinstance(obj, type):
            kind = "exception" if issubclass(obj, BaseException) else "class"
        else:
            kind = "function"
        doc = inspect.getdoc(obj) or ""
        summary = _cell(doc.split("\n\n")[0])
        rows.append(f"| [`{name}`][{path}] | {kind} | {summary} |")
    return "\n".join(rows)
