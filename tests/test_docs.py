"""The documentation cannot rot: every example runs, and the site builds with no warning.

How the pages in ``docs/`` are executed (a page reads top to bottom like a notebook):

* Every fenced ``python`` block of a page runs, in page order, in one namespace per page, in a
  fresh temporary working directory with no ``AEP_*`` variable set. Pages are self-contained:
  each starts its own local AEP with :func:`aep_io.testing.emulator` (on 127.0.0.1); whatever
  it leaves open is closed after the page.
* A block whose ``title="..."`` contains ``not run`` is shown but not executed (code aimed at a
  real AEP org or a cloud bucket). Keep them few.
* ``python`` blocks titled like pytest files (``title="test_audience.py"``,
  ``title="conftest.py"``, and a ``toml`` block ``title="pyproject.toml"``) are written to a
  directory and run by pytest, with aep_io's pytest plugin.
* A ``bash`` block whose command lines all start with ``aep-io`` runs in-process through
  :func:`aep_io.cli.main` (each command must exit 0). ``$NAME`` stands for the page's Python
  variable ``name`` (as a string), else for the environment variable. Other shell blocks
  (installing, benchmarks) are not run.
* ``<!-- docs-test: requires dask distributed -->`` on a page skips it when a module is missing.

Besides: the ``>>>`` examples of every aep_io module's docstrings run as doctests; every
public function appears in some executed example; every ``aep-io`` command is in the CLI
reference; every exception has its troubleshooting entry; ``mkdocs build --strict`` passes.
"""

from __future__ import annotations

import doctest
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pkgutil
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import aep_io

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_ext" not in p.parts)

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_TITLE = re.compile(r'title="([^"]*)"')
_REQUIRES = re.compile(r"<!--\s*docs-test:\s*requires\s+([^>]*?)\s*-->")
_PYTEST_FILE = re.compile(r"^(test_\w+\.py|conftest\.py|pyproject\.toml|pytest\.ini)$")
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the first line of code
    language: str
    title: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def not_run(self) -> bool:
        return "not run" in self.title.lower()


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page (also inside admonitions and lists)."""
    out: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            text = lines[j]
            body.append(text[len(indent):] if text.startswith(indent) else text.lstrip())
            j += 1
        language = info.split()[0].strip("{}.") if info else ""
        title = _TITLE.search(info)
        out.append(Block(page, i + 2, language, title[1] if title else "", "\n".join(body)))
        i = j + 1
    return out


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS))


EXAMPLE_PAGES = [p for p in PAGES if any(b.language in ("python", "bash") for b in blocks(p))]


# -- running a page --------------------------------------------------------------------------------
def _expand(text: str, namespace: dict[str, object]) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        value = namespace.get(name.lower())
        if isinstance(value, str | int):
            return str(value)
        if name in os.environ:
            return os.environ[name]
        raise AssertionError(f"${name}: no Python variable {name.lower()!r} nor env variable")

    return _VAR.sub(repl, text)


def _commands(code: str) -> list[str]:
    """Shell commands, one per entry: ``\\`` continuations joined, quoted newlines kept."""
    out: list[str] = []
    current = ""
    for line in re.sub(r"\\\n\s*", " ", code).splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current = f"{current}\n{line}" if current else line.strip()
        try:
            shlex.split(current, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        out.append(current)
        current = ""
    assert not current, f"unbalanced quotes in: {current}"
    return out


def _runnable_bash(block: Block) -> bool:
    commands = _commands(block.code)
    return bool(commands) and all(c.startswith("aep-io ") for c in commands)


def _run_bash(block: Block, namespace: dict[str, object], capsys: pytest.CaptureFixture[str]
              ) -> None:
    from aep_io.cli import main

    for command in _commands(block.code):
        argv = shlex.split(_expand(command, namespace), comments=True)
        code = main(argv[1:])
        out = capsys.readouterr()
        sys.stdout.write(out.out)
        assert code == 0, f"{block.where}: `{command}` exited {code}\n{out.out}\n{out.err}"


def _run_pytest_files(files: list[Block], tmp_path: Path) -> None:
    project = tmp_path / "user-project"
    project.mkdir()
    for block in files:
        (project / block.title).write_text(block.code + "\n")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
            str(project)]
    installed = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    if "aep_io.testing.pytest_plugin" not in installed:  # the entry point is not installed yet
        args += ["-p", "aep_io.testing.pytest_plugin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEP_", "PYTEST_"))}
    result = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True,
                            timeout=120)
    where = ", ".join(b.where for b in files)
    assert result.returncode == 0, f"pytest on {where} failed:\n{result.stdout}\n{result.stderr}"
    assert " passed" in result.stdout, result.stdout


def _close_leftovers(namespace: dict[str, object]) -> None:
    from aep_io.testing import LocalAEP

    for value in namespace.values():
        if isinstance(value, LocalAEP):
            value.close()


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=_page_id)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    text = page.read_text()
    for requirement in _REQUIRES.findall(text):
        for module in requirement.replace(",", " ").split():
            pytest.importorskip(module, reason=f"{_page_id(page)} needs {module}")
    for key in list(os.environ):
        if key.startswith("AEP_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    # Jobs on the emulator end in milliseconds: poll every 20 ms rather than AEP's polite 0.5 s+.
    import aep_io.jobs

    monkeypatch.setattr(aep_io.jobs, "PollPolicy",
                        functools.partial(aep_io.jobs.PollPolicy, initial=0.02, maximum=0.1))
    saved_env = dict(os.environ)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    pytest_files: list[Block] = []
    try:
        for block in blocks(page):
            if block.not_run:
                continue
            if _PYTEST_FILE.match(block.title):
                pytest_files.append(block)
            elif block.language == "python":
                code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
                exec(code, namespace)
            elif block.language == "bash" and _runnable_bash(block):
                _run_bash(block, namespace, capsys)
    finally:
        _close_leftovers(namespace)
        os.environ.clear()
        os.environ.update(saved_env)
    if pytest_files:
        _run_pytest_files(pytest_files, tmp_path)


def test_not_run_blocks_are_few() -> None:
    skipped = [b.where for p in PAGES for b in blocks(p) if b.not_run]
    assert len(skipped) <= 8, f"too many examples that no test runs: {skipped}"


# -- docstrings ------------------------------------------------------------------------------------
def _modules() -> list[str]:
    names = ["aep_io"]
    for info in pkgutil.walk_packages(aep_io.__path__, "aep_io."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return sorted(names)


# Docstring examples known to be wrong, with why (fix the docstring, then drop the entry).
KNOWN_BAD_DOCSTRINGS: dict[str, str] = {}


@pytest.mark.parametrize("module", [
    pytest.param(m, marks=pytest.mark.xfail(reason=KNOWN_BAD_DOCSTRINGS[m]))
    if m in KNOWN_BAD_DOCSTRINGS else m
    for m in _modules()
])
def test_docstring_examples(module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``>>>`` examples in docstrings run (commented ``>>> # ...`` lines need AEP: the runnable
    version of those is in the docs pages, executed above)."""
    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(mod, module, globs=dict(vars(mod))):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{module}: {results.failed} docstring example(s) failed"


# -- coverage of the docs --------------------------------------------------------------------------
def _executed_code() -> str:
    return "\n".join(b.code for p in PAGES for b in blocks(p)
                     if b.language == "python" and not b.not_run)


# Public functions whose docs example waits for a fix (drop the entry with the fix).
NO_EXAMPLE_YET: dict[str, str] = {}


def test_every_public_function_has_a_runnable_example() -> None:
    import aep_io.dask_io
    import aep_io.membership

    names = {n for n in aep_io.__all__ if not n[0].isupper() and not n.startswith("_")}
    names |= {"read_batches", *aep_io.membership.__all__}
    names -= {"CURRENT_STATUSES", "DEFAULT_IDENTITY_COLUMNS"}
    code = _executed_code()
    missing = sorted(n for n in names - set(NO_EXAMPLE_YET)
                     if not re.search(rf"\b{n}\(", code))
    assert not missing, f"public functions no docs example calls: {missing}"


def test_cli_reference_lists_every_command() -> None:
    spec = importlib.util.spec_from_file_location("aep_io_docs_hooks", DOCS / "_ext" / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    rendered = hooks.render()
    for path, _ in hooks.commands():
        assert f"`{' '.join(path)}`" in rendered
    assert len(hooks.commands()) > 20


def test_troubleshooting_covers_every_error() -> None:
    from aep_io.downloads import DownloadError
    from aep_io.reader import CorruptFileError

    text = (DOCS / "troubleshooting.md").read_text()
    headings = set(re.findall(r"^#+ `?(\w+)`?", text, re.M))
    errors = {getattr(aep_io, n) for n in aep_io.__all__ if n[0].isupper()}
    errors = {e for e in errors if isinstance(e, type) and issubclass(e, aep_io.AEPError)}
    errors |= {DownloadError, CorruptFileError}
    tree = inspect.getdoc(importlib.import_module("aep_io.errors")) or ""
    in_tree = set(re.findall(r"[├└]── (\w+)", tree)) | {"AEPError"}
    assert in_tree <= {e.__name__ for e in errors}, "the errors docstring names an unknown class"
    missing = sorted(e.__name__ for e in errors if e.__name__ not in headings)
    assert not missing, f"troubleshooting.md has no entry for {missing}"


# -- the site --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_site_builds_without_warnings(tmp_path: Path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[docs]' to build the docs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2.0
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
         "--config-file", str(ROOT / "mkdocs.yml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").exists()
