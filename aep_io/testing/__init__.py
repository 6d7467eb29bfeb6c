"""A local AEP for your own tests: the emulator on 127.0.0.1, with synthetic profiles.

:func:`emulator` starts an :class:`~aep_io.emulator.Emulator` in a temporary directory, loads
synthetic XDM profiles into its profile store (what segment and export jobs work on), registers
a synthetic export batch (what readers read) and serves it over HTTP on loopback. The returned
:class:`LocalAEP` hands out what a test needs: the ``AEP_*`` variables, a client, the batch id.
Use it as a context manager (``with emulator() as aep:``), or call :meth:`LocalAEP.close`.

With pytest, the plugin :mod:`aep_io.testing.pytest_plugin` gives the same as fixtures:
``aep_emulator`` (one per session) and ``aep_env`` (the ``AEP_*`` variables set for one test).

Nothing here talks to Adobe: the emulator listens on 127.0.0.1 only.

Example:
    >>> from aep_io.testing import emulator
    >>> with emulator(profiles=1_000, parts=1) as aep:
    ...     print(aep.url.startswith("http://127.0.0.1:"), aep.env["AEP_PLATFORM_URL"] == aep.url)
    ...     print(len(aep.batch_id) > 8, aep.export.record_count)
    True True
    True 1000
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aep_io.client import AEPClient
    from aep_io.emulator import Emulator, EmulatorServer, ExportBatch
    from aep_io.settings import Settings

__all__ = ["LocalAEP", "emulator"]

_ENV_PREFIX = "AEP_"
_env_lock = threading.Lock()


class LocalAEP:
    """A running emulator with synthetic profiles (see :func:`emulator`, which builds it).

    Attributes:
        emulator: the :class:`~aep_io.emulator.Emulator` (its ``counters``, ``faults``,
            ``profiles``, ``add_export_batch``...).
        server: the :class:`~aep_io.emulator.EmulatorServer` serving it on 127.0.0.1.
        url: the base URL, both the platform and the IMS URL (``http://127.0.0.1:<port>``).
        env: the ``AEP_*`` variables that point aep_io at it (the emulator's development
            credentials; nothing secret).
        export: the synthetic export batch, or None when ``export=False``.
        batch_id: its Catalog batch id, or None.
        profiles: how many synthetic profiles the profile store holds.
        segment_ids: the segment ids of the synthetic ``segmentMembership``, per namespace
            (``{"ups": [...], "aam": [...]}``).
        data_dir: the emulator's state directory.
    """

    def __init__(
        self,
        *,
        profiles: int = 10_000,
        export: bool = True,
        parts: int = 2,
        row_groups_per_part: int = 4,
        seed: int = 42,
        data_dir: str | Path | None = None,
        set_env: bool = False,
        job_step_delay: float = 0.0,
        sandbox: str = "prod",
    ) -> None:
        from aep_io.emulator import Emulator, EmulatorServer, Tenant
        from aep_io.emulator.synthetic import SyntheticSpec, segment_ids

        if profiles < 0:
            raise ValueError(f"profiles={profiles} must be >= 0")
        if export and profiles < 1:
            raise ValueError("an export needs at least one profile: profiles >= 1 or export=False")
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="aep-io-emulator-"))
        self._saved_env: dict[str, str] | None = None
        self._clients: list[AEPClient] = []
        self._closed = False
        self.profiles = profiles
        self.segment_ids: dict[str, list[str]] = segment_ids(SyntheticSpec(profiles, seed))
        self.emulator: Emulator = Emulator(self.data_dir, job_step_delay=job_step_delay)
        self.server: EmulatorServer | None = None
        try:
            tenant = Tenant(self.emulator.default_tenant.org, sandbox)
            self.emulator.profiles.load_synthetic(tenant, profiles, seed=seed)
            self.export: ExportBatch | None = None
            if export:
                self.export = self.emulator.add_synthetic_export(
                    profiles, parts=parts, row_groups_per_part=row_groups_per_part, seed=seed,
                    tenant=tenant,
                )
            self.server = EmulatorServer(self.emulator).start()
        except BaseException:
            self.close()
            raise
        self.url: str = self.server.url
        self.env: dict[str, str] = self.server.client_env(sandbox=sandbox)
        if set_env:
            self.set_env()

    @property
    def batch_id(self) -> str | None:
        """The synthetic export's batch id (None when started with ``export=False``)."""
        return self.export.batch_id if self.export is not None else None

    def settings(self, **overrides: Any) -> Settings:
        """:class:`~aep_io.settings.Settings` for this emulator (keyword arguments override)."""
        from aep_io.settings import Settings

        return Settings.from_env(self.env, **overrides)

    def client(self, **kwargs: Any) -> AEPClient:
        """A new :class:`~aep_io.client.AEPClient` for this emulator (closed with it).

        Keyword arguments go to ``AEPClient`` (``retry=``, ``max_connections=``).
        """
        from aep_io.client import AEPClient

        client = AEPClient(self.settings(), **kwargs)
        self._clients.append(client)
        return client

    def set_env(self) -> None:
        """Point ``os.environ``'s ``AEP_*`` variables at this emulator until :meth:`close`.

        Every other ``AEP_*`` variable (``AEP_ACCESS_TOKEN``, ``AEP_TIMEOUT``...) is removed
        meanwhile, so that nothing of a real configuration leaks in. Prefer the pytest fixture
        ``aep_env`` in tests: it restores the environment after each test.
        """
        with _env_lock:
            if self._saved_env is None:
                self._saved_env = {k: v for k, v in os.environ.items()
                                   if k.startswith(_ENV_PREFIX)}
            for key in list(os.environ):
                if key.startswith(_ENV_PREFIX):
                    del os.environ[key]
            os.environ.update(self.env)

    def _restore_env(self) -> None:
        with _env_lock:
            if self._saved_env is None:
                return
            for key in list(os.environ):
                if key.startswith(_ENV_PREFIX):
                    del os.environ[key]
            os.environ.update(self._saved_env)
            self._saved_env = None

    def close(self) -> None:
        """Stop the server and the emulator, restore the environment, remove the temp dir.

        Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        self._restore_env()
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.emulator.close()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalAEP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.server is None else self.url
        return f"LocalAEP({state}, profiles={self.profiles:,}, batch_id={self.batch_id!r})"


def emulator(
    profiles: int = 10_000,
    *,
    export: bool = True,
    parts: int = 2,
    row_groups_per_part: int = 4,
    seed: int = 42,
    data_dir: str | Path | None = None,
    set_env: bool = False,
    job_step_delay: float = 0.0,
    sandbox: str = "prod",
) -> LocalAEP:
    """Start a local AEP emulator on 127.0.0.1 with ``profiles`` synthetic profiles.

    It is running when this returns; use the result as a context manager, or call its
    ``close()``, to stop it.

    Args:
        profiles: synthetic XDM profiles loaded into the profile store (what segment and
            export jobs evaluate and write) and, with ``export``, into the export batch.
        export: also register a synthetic export batch of ``profiles`` rows
            (:attr:`LocalAEP.batch_id`), as an export job would have written it.
        parts: parquet part files of that batch.
        row_groups_per_part: row groups per part.
        seed: random seed (same seed, same rows and segment ids).
        data_dir: the emulator's state directory; a temporary one (removed on close) if omitted.
        set_env: also set ``os.environ``'s ``AEP_*`` variables until closed, so that
            ``AEPClient()``, ``scan_batches(batch_id)`` and the ``aep-io`` commands find it.
        job_step_delay: minimum seconds a segment or export job spends in each status (0: jobs
            finish as fast as they can; raise it to watch NEW and PROCESSING).
        sandbox: the sandbox the profiles, the batch and ``env`` belong to.

    Returns:
        The running :class:`LocalAEP`.

    Example:
        >>> with emulator(profiles=500, export=False) as aep:
        ...     aep.batch_id is None, aep.emulator.profiles.count(aep.emulator.default_tenant)
        (True, 500)
    """
    return LocalAEP(
        profiles=profiles, export=export, parts=parts, row_groups_per_part=row_groups_per_part,
        seed=seed, data_dir=data_dir, set_env=set_env, job_step_delay=job_step_delay,
        sandbox=sandbox,
    )
