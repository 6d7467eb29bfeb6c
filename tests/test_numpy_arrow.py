"""numpy <-> Arrow without pyarrow's pandas probe: same values as pyarrow's own conversions, and
a fresh process that reads and flattens never imports pandas."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aep_io.numpy_arrow import from_numpy, not_null, string_scalar, strings, to_numpy

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "float32", "float64"]


@given(st.sampled_from(DTYPES), st.lists(st.integers(0, 100), max_size=40), st.data())
def test_round_trips_match_pyarrow(dtype: str, values: list[int], data: st.DataObject) -> None:
    arr = np.array(values, dtype=dtype)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(values),
                                       max_size=len(values))), dtype=bool)  # fmt: skip
    ours = from_numpy(arr, mask=mask)
    assert ours.equals(pa.array(arr, mask=mask))
    start = data.draw(st.integers(0, len(values)))
    length = data.draw(st.integers(0, len(values) - start))
    plain = pa.array(arr)
    assert to_numpy(plain.slice(start, length)).tolist() == arr[start : start + length].tolist()


@given(st.lists(st.booleans(), max_size=70), st.integers(0, 70), st.integers(0, 70))
def test_booleans_pack_and_unpack_with_slices(values: list[bool], start: int, length: int
                                              ) -> None:  # fmt: skip
    arr = np.array(values, dtype=bool)
    ours = from_numpy(arr)
    assert ours.equals(pa.array(arr))
    start = min(start, len(values))
    assert to_numpy(ours.slice(start, length)).tolist() == values[start : start + length]


def test_strings_scalars_and_null_filling() -> None:
    assert strings(["a", "", "ümlaut"]).equals(pa.array(["a", "", "ümlaut"]))
    assert strings([]).equals(pa.array([], pa.string()))
    assert string_scalar("ups").equals(pa.scalar("ups"))
    mask = pa.array([True, None, False, None])
    assert not_null(mask).equals(pc.fill_null(mask, False))
    assert not_null(mask).null_count == 0


def test_other_types_are_refused() -> None:
    with pytest.raises(TypeError, match="not a primitive"):
        to_numpy(pa.array(["x"]))
    with pytest.raises(TypeError, match="not a primitive"):
        from_numpy(np.array(["x"], dtype=object))


@pytest.mark.slow
def test_reading_and_flattening_never_imports_pandas(tmp_path: Path) -> None:
    """pandas is installed here (Dask needs it); a process that flattens membership must not
    pay its ~0.2 s import. pyarrow's probe imports it at the first pa.array/to_numpy/scalar."""
    pytest.importorskip("pandas")
    from aep_io.emulator.synthetic import SyntheticSpec, generate_table

    path = tmp_path / "export.parquet"
    pq.write_table(generate_table(SyntheticSpec(profiles=2_000)), path)
    script = textwrap.dedent(f"""
        import sys
        import pyarrow.parquet as pq
        import polars as pl
        from aep_io.membership import audience_sizes, flatten_membership_arrow
        table = pq.ParquetFile({str(path)!r}).read()
        assert flatten_membership_arrow(table).num_rows > 0
        assert flatten_membership_arrow(table, namespace="ups").num_rows > 0
        frame = pl.from_arrow(table)
        assert audience_sizes(frame.lazy()).collect().height > 0
        print("pandas" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip() == "False", done.stdout + done.stderr
