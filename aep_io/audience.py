"""The common path in one call: evaluate, export, wait, and get a lazy frame of the audience.

Example:
    >>> # result = export_audience(["<segment id>"], evaluate=True)
    >>> # result.frame.select("identityMap").head().collect()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from aep_io.catalog import create_dataset
from aep_io.client import AEPClient
from aep_io.export_jobs import (
    DEFAULT_STATUSES,
    ExportJob,
    SegmentFilter,
    create_export_job,
    wait_for_export_job,
)
from aep_io.jobs import PollPolicy
from aep_io.polars_io import scan_export_job
from aep_io.segmentation import SegmentJob, create_segment_job, wait_for_segment_job
from aep_io.settings import Settings

__all__ = ["AudienceExport", "export_audience"]


@dataclass(frozen=True)
class AudienceExport:
    """What :func:`export_audience` produced."""

    frame: pl.LazyFrame
    job: ExportJob
    dataset_id: str
    segment_job: SegmentJob | None

    @property
    def batch_ids(self) -> list[str]:
        """The export's batch ids."""
        return self.job.batch_ids


def export_audience(
    segment_ids: Sequence[str],
    *,
    client: AEPClient | None = None,
    settings: Settings | None = None,
    evaluate: bool = False,
    dataset_id: str | None = None,
    dataset_name: str = "aep_io audience export",
    statuses: Sequence[str] = DEFAULT_STATUSES,
    namespace: str = "ups",
    fields: Sequence[str] | None = None,
    segment_per_batch: bool = False,
    timeout: float | None = 3600.0,
    poll: PollPolicy | None = None,
    progress: Callable[[str, Any], None] | None = None,
) -> AudienceExport:
    """Evaluate (optional), create the dataset (if not given), export, wait, and scan.

    Args:
        segment_ids: the segments whose members to export.
        evaluate: run a segment job on them first, and wait for it.
        dataset_id: an existing dataset on the profile union schema; created when omitted.
        statuses: membership statuses to export (default realized + existing: "members now").
        fields: dot paths to export (default: every field).
        segment_per_batch: one batch per segment (the frame then has a ``segment_id`` column).
        progress: called as ``progress(step, job)`` while waiting (``"segment job"``,
            ``"export job"``).
    """
    if not segment_ids:
        raise ValueError("give at least one segment id to export")
    client = client or AEPClient(settings)
    segment_job = None
    if evaluate:
        created = create_segment_job(client, list(segment_ids))
        segment_job = wait_for_segment_job(
            client, created.id, timeout=timeout, poll=poll,
            progress=(lambda j: progress("segment job", j)) if progress else None,
        )
    if dataset_id is None:
        dataset_id = create_dataset(client, dataset_name)
    job = create_export_job(
        client, dataset_id,
        segments=[SegmentFilter(s, namespace, tuple(statuses)) for s in segment_ids],
        fields=fields, segment_per_batch=segment_per_batch,
    )
    job = wait_for_export_job(
        client, job.id, timeout=timeout, poll=poll,
        progress=(lambda j: progress("export job", j)) if progress else None,
    )
    return AudienceExport(scan_export_job(job, client=client), job, dataset_id, segment_job)
