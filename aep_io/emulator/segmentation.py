"""Segmentation (UPS): ``/data/core/ups`` segment definitions, segment jobs and export jobs.

``aep_api.md`` §2-§4, §7, §10: definitions hold PQL (checked by :mod:`.pql` against the tenant's
profile store), segment jobs evaluate definitions over the profile store (:mod:`.profiles`)
and update each profile's ``segmentMembership``, export jobs write the selected profiles as
parquet into Catalog batches readable through Data Access. Jobs run in the background
(:mod:`.jobs`); each state lasts at least ``Emulator.job_step_delay`` seconds.

The routes live in :mod:`.segment_definitions`, :mod:`.segment_jobs` and :mod:`.export_jobs`;
this module holds what they share.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from aep_io.emulator.catalog import read_json_body
from aep_io.emulator.gateway import problem
from aep_io.emulator.store import Tenant

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator

__all__ = ["SVC", "json_body", "parse_time", "sandbox_info", "want"]

SVC = "UPS"
PROFILE_SCHEMA_NAME = "_xdm.context.profile"


def emulator_of(request: Request) -> Emulator:
    return request.app.state.emulator


async def json_body(request: Request, *, array: bool = False) -> Any:
    """The JSON body: an object (or, with ``array``, an object or an array), else 400."""
    try:
        body = await read_json_body(request, SVC)
    except RecursionError:
        raise problem(400, SVC, "malformed JSON body: nested too deeply") from None
    if isinstance(body, dict) or (array and isinstance(body, list)):
        return body
    wanted = "a JSON object or array" if array else "a JSON object"
    raise problem(400, SVC, f"the request body must be {wanted}, not {type(body).__name__}")


def sandbox_info(tenant: Tenant) -> dict[str, Any]:
    """The ``sandbox`` object of definitions and jobs."""
    prod = tenant.sandbox == "prod"
    return {
        "sandboxId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant.org}/{tenant.sandbox}")),
        "sandboxName": tenant.sandbox,
        "type": "production" if prod else "development",
        "default": prod,
    }


def default_merge_policy(tenant: Tenant) -> str:
    """The tenant's (single) default merge policy id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"merge-policy/{tenant.org}/{tenant.sandbox}"))


def request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or uuid.uuid4().hex


def parse_time(value: Any, name: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or an offset; naive means UTC), else a 400 naming it."""
    if not isinstance(value, str):
        raise problem(400, SVC, f"{name} must be an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise problem(
            400, SVC, f"{name}={value[:60]!r} is not an RFC 3339 timestamp "
            "(e.g. 2024-01-01T00:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def want(body: dict[str, Any], key: str, types: type | tuple[type, ...], where: str,
         *, required: bool = False) -> Any:  # fmt: skip
    """``body[key]`` if it has one of ``types`` (None when absent and optional), else 400."""
    value = body.get(key)
    if value is None:
        if required:
            raise problem(400, SVC, f"{where}{key} is required")
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = types if isinstance(types, tuple) else (types,)
        kinds = " or ".join({"str": "a string", "dict": "an object", "list": "an array",
                             "bool": "a boolean", "int": "an integer"}.get(t.__name__, t.__name__)
                            for t in names)  # fmt: skip
        raise problem(400, SVC, f"{where}{key} must be {kinds}")
    return value


def __getattr__(name: str) -> Any:
    # ``routes`` is assembled on first use: the route modules import the helpers above.
    if name == "routes":
        from aep_io.emulator import export_jobs, segment_definitions, segment_jobs

        return [*segment_definitions.routes, *segment_jobs.routes, *export_jobs.routes]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
