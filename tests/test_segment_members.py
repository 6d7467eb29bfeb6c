"""segment_members reads only the leaves it needs and agrees with the full flatten."""

from __future__ import annotations

import polars as pl

from aep_io import AEPClient, flatten_membership, scan_batches
from aep_io.emulator import Emulator, ExportBatch
from aep_io.emulator.synthetic import SyntheticSpec, segment_ids
from aep_io.members import segment_members


def test_members_match_the_full_flatten(client: AEPClient, export: ExportBatch,
                                        emulator: Emulator) -> None:
    segment = segment_ids(SyntheticSpec())["ups"][5]
    emulator.counters.reset()
    members = segment_members(export.batch_id, segment, client=client)
    leaf_bytes = emulator.counters.bytes_sent("file")
    assert members.height > 0
    full = (
        flatten_membership(scan_batches(export.batch_id, client=client), namespace="ups")
        .filter((pl.col("segment_id") == segment)
                & pl.col("status").is_in(["realized", "existing", "entering"]))
        .select(members.columns)
        .collect()
    )
    assert members.sort(members.columns).equals(full.sort(full.columns))
    assert leaf_bytes < 0.45 * export.size  # timestamps, versions and the rest stay unread


def test_exited_members_on_request(client: AEPClient, export: ExportBatch) -> None:
    segment = segment_ids(SyntheticSpec())["ups"][5]
    exited = segment_members(export.batch_id, segment, statuses=["exited"], client=client)
    assert set(exited["status"].to_list()) == {"exited"}
