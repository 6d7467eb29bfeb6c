"""A local Adobe Experience Platform over real HTTP: IMS, Segmentation (segment definitions
with PQL evaluated by DuckDB, segment jobs, export jobs), Catalog and Data Access.

The library core never imports this package; the CLI and the tests start it. Point aep_io at it
by URL exactly as at AEP (``AEP_PLATFORM_URL`` and ``AEP_IMS_URL``).

Example:
    >>> import tempfile
    >>> from aep_io.emulator import Emulator, EmulatorServer
    >>> emu = Emulator(tempfile.mkdtemp())
    >>> with EmulatorServer(emu) as server:
    ...     sorted(server.client_env())[:2]
    ['AEP_CLIENT_ID', 'AEP_CLIENT_SECRET']
"""

from aep_io.emulator.core import Emulator, ExportBatch
from aep_io.emulator.credentials import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID
from aep_io.emulator.destinations import S3Destination
from aep_io.emulator.faults import Fault
from aep_io.emulator.server import EmulatorServer
from aep_io.emulator.store import Tenant

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_ORG_ID",
    "Emulator",
    "EmulatorServer",
    "ExportBatch",
    "Fault",
    "S3Destination",
    "Tenant",
]
