from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pytest

from aep_io.predicates import to_arrow_filter

TABLE = pa.table({
    "a": [1, 5, 10, None],
    "s": pa.array([{"x": 1.0}, {"x": 2.5}, None, {"x": 4.0}]),
    "t": pa.array([datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC),
                   datetime(2025, 1, 1, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")),
    "c": ["US", "DE", "US", None],
})


@pytest.mark.parametrize(
    "expr",
    [
        pl.col("a") > 4,
        5 <= pl.col("a"),  # noqa: SIM300 - the literal on the left is the point
        (pl.col("a") != 5) & (pl.col("c") == "US"),
        (pl.col("a") < 2) | pl.col("c").is_null(),
        ~(pl.col("a") == 1),
        pl.col("s").struct.field("x") >= 2.5,
        pl.col("a").is_between(2, 10),
        pl.col("a").is_between(5, 10, closed="left"),
        pl.col("c").is_in(["DE", "FR"]),
        pl.col("a").is_in([1, 10]),
        pl.col("t") > pl.datetime(2024, 1, 1, time_zone="UTC"),
        pl.col("a").is_not_null(),
    ],
)
def test_translation_selects_the_same_rows_as_polars(expr: pl.Expr) -> None:
    arrow = to_arrow_filter(expr)
    assert arrow is not None, expr
    frame = pl.from_arrow(TABLE)
    assert isinstance(frame, pl.DataFrame)
    expected = frame.filter(expr)
    got = pl.from_arrow(TABLE.filter(arrow))
    assert isinstance(got, pl.DataFrame)
    assert got.equals(expected)


def test_untranslatable_conjuncts_are_left_out() -> None:
    expr = (pl.col("a") > 1) & pl.col("c").str.starts_with("U")
    assert str(to_arrow_filter(expr)) == "(a > 1)"
    assert to_arrow_filter(pl.col("c").str.len_chars() > 1) is None
    assert to_arrow_filter(None) is None


def test_or_with_an_untranslatable_side_is_dropped_whole() -> None:
    assert to_arrow_filter((pl.col("a") > 1) | pl.col("c").str.contains("x")) is None
