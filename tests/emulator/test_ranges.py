import pytest
from hypothesis import given
from hypothesis import strategies as st

from aep_io.emulator.ranges import RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [("bytes=0-0", 10, (0, 0)), ("bytes=5-", 10, (5, 9)), ("bytes=-3", 10, (7, 9)),
     ("bytes=-30", 10, (0, 9)), ("bytes=2-100", 10, (2, 9)), ("bytes=5-2", 10, None),
     ("items=0-1", 10, None), ("bytes=0-1,4-5", 10, None), ("bytes=-", 10, None),
     (None, 10, None)],
)
def test_examples(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10),
                                              ("bytes=-1", 0), ("bytes=0-0", 0)])
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


@given(size=st.integers(1, 10_000), first=st.integers(0, 20_000), length=st.integers(1, 20_000))
def test_served_range_lies_within_the_file(size: int, first: int, length: int) -> None:
    header = f"bytes={first}-{first + length - 1}"
    if first >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
        return
    lo, hi = parse_range(header, size)  # type: ignore[misc]
    assert lo == first and hi == min(first + length - 1, size - 1)


@given(size=st.integers(1, 10_000), suffix=st.integers(1, 20_000))
def test_suffix_ranges(size: int, suffix: int) -> None:
    lo, hi = parse_range(f"bytes=-{suffix}", size)  # type: ignore[misc]
    assert hi == size - 1 and hi - lo + 1 == min(suffix, size)
