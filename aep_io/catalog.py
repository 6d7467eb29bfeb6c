"""Catalog datasets (``/data/foundation/catalog``): create an export target, look one up.

Example:
    >>> # dataset_id = create_dataset(client, "Audience export")   # on the profile union schema
"""

from __future__ import annotations

from typing import Any

from aep_io.client import AEPClient, Service, check_id
from aep_io.errors import AEPError

__all__ = ["PROFILE_UNION_SCHEMA", "create_dataset", "get_dataset", "parse_dataset_ref"]

PROFILE_UNION_SCHEMA = "https://ns.adobe.com/xdm/context/profile__union"


def parse_dataset_ref(ref: str) -> str:
    """The id in ``@/dataSets/{id}`` (or ``@/datasets/{id}``, as older docs spell it)."""
    text = ref.strip().rstrip("/")
    if "/" not in text:
        raise AEPError(f"unexpected dataset reference {ref!r}")
    return text.rsplit("/", 1)[1]


def create_dataset(
    client: AEPClient,
    name: str,
    *,
    schema_id: str = PROFILE_UNION_SCHEMA,
    description: str = "",
) -> str:
    """``POST /dataSets``; returns the new dataset's id. Export targets need the union schema."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name {name!r:.60} must be a non-empty str (the dataset's name)")
    body = {
        "name": name,
        "description": description,
        "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed+json;version=1"},
        "fileDescription": {"persisted": True, "containerFormat": "parquet", "format": "parquet"},
    }
    result = client.post_json(client.url(Service.CATALOG, "/dataSets"), body)
    if not isinstance(result, list) or not result:
        raise AEPError(f"POST /dataSets answered {str(result)[:200]}, expected ['@/dataSets/<id>']")
    return parse_dataset_ref(str(result[0]))


def get_dataset(client: AEPClient, dataset_id: str) -> dict[str, Any]:
    """``GET /dataSets/{id}``: the dataset record."""
    dataset_id = check_id(dataset_id, "dataset id")
    body = client.get_json(client.url(Service.CATALOG, f"/dataSets/{dataset_id}"))
    if isinstance(body, dict) and dataset_id in body:
        return dict(body[dataset_id])
    if isinstance(body, dict) and len(body) == 1:
        return dict(next(iter(body.values())))
    raise AEPError(f"Catalog answered dataset {dataset_id} with an unexpected shape")
