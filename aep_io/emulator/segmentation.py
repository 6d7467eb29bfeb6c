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

import functools
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from aep_io.emulator import gateway
from aep_io.emulator.gateway import problem
from aep_io.emulator.store import Tenant

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator

__all__ = ["SVC", "check_schema", "json_body", "parse_time", "sandbox_info", "want"]

SVC = "UPS"
PROFILE_SCHEMA_NAME = "_xdm.context.profile"

#: :func:`.gateway.json_body` and :func:`.gateway.want` answering as this service.
json_body = functools.partial(gateway.json_body, service=SVC)
want = functools.partial(gateway.want, service=SVC)


def emulator_of(request: Request) -> Emulator:
    return request.app.state.emulator


def check_schema(schema: dict[str, Any], where: str = "schema.") -> None:
    """``schema.name`` must name the profile schema (the only one the emulator evaluates)."""
    name = want(schema, "name", str, where, required=True)
    if name != PROFILE_SCHEMA_NAME:
        raise problem(400, SVC, f"{where}name {name[:60]!r} is not supported: use "
                      f"\"{PROFILE_SCHEMA_NAME}\"")  # fmt: skip


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
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise problem(400, SVC, f"{name}={value[:60]!r} is out of range") from None
    return parsed


def __getattr__(name: str) -> Any:
    # ``routes`` is assembled on first use: the route modules import the helpers above.
    if name == "routes":
        from aep_io.emulator import export_jobs, segment_definitions, segment_jobs

        found = [*segment_definitions.routes, *segment_jobs.routes, *export_jobs.routes]
        return [*found, gateway.fallback(SVC, "/data/core/ups", found)]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
