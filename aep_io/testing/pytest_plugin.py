"""pytest fixtures for code that reads AEP: a local emulator with synthetic profiles.

Installed with aep_io (entry point ``pytest11``), so the fixtures are there in any test suite:

``aep_emulator`` (session scope)
    a running :class:`~aep_io.testing.LocalAEP`: ``.url``, ``.env``, ``.client()``,
    ``.batch_id``, ``.segment_ids``, ``.emulator`` (counters, faults, profile store).
``aep_env`` (function scope)
    sets the ``AEP_*`` environment variables to point at ``aep_emulator`` for one test (every
    other ``AEP_*`` variable is removed meanwhile) and returns them as a dict; code under test
    that reads its settings from the environment then talks to the emulator.

Size the emulator in ``pytest.ini`` / ``pyproject.toml`` (``[tool.pytest.ini_options]``)::

    aep_emulator_profiles = 2000     # default 10000
    aep_emulator_parts = 1           # parquet parts of the export batch, default 2

or override the fixture in your ``conftest.py`` with your own call to
:func:`aep_io.testing.emulator`.

The emulator is shared by the session: a test that injects faults
(``aep_emulator.emulator.faults``) should clear them when done.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from aep_io.testing import LocalAEP

__all__ = ["aep_emulator", "aep_env"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "aep_emulator_profiles",
        "synthetic profiles in the aep_emulator fixture (aep_io)",
        default="10000",
    )
    parser.addini(
        "aep_emulator_parts",
        "parquet part files of the aep_emulator fixture's export batch (aep_io)",
        default="2",
    )


@pytest.fixture(scope="session")
def aep_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalAEP]:
    """A local AEP emulator on 127.0.0.1 with synthetic profiles and an export batch."""
    from aep_io.testing import emulator

    profiles = int(request.config.getini("aep_emulator_profiles"))
    parts = int(request.config.getini("aep_emulator_parts"))
    with emulator(
        profiles, parts=parts, data_dir=tmp_path_factory.mktemp("aep-emulator")
    ) as aep:
        yield aep


@pytest.fixture
def aep_env(aep_emulator: LocalAEP, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The ``AEP_*`` variables of ``aep_emulator``, set in ``os.environ`` for this test."""
    import os

    for key in list(os.environ):
        if key.startswith("AEP_"):
            monkeypatch.delenv(key)
    for key, value in aep_emulator.env.items():
        monkeypatch.setenv(key, value)
    return dict(aep_emulator.env)
