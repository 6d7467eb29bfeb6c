import pytest

from aep_io.planning import BatchFile
from aep_io.sources import Source, looks_like_batch_id


@pytest.mark.parametrize(
    ("text", "is_batch"),
    [("01JABCDEF0123456789ABCDEFG", True), ("01M8JJMB1DPJWYCESREQXEF5FS", True),
     ("/tmp/x", False), ("s3://b/p", False), ("export.parquet", False), ("x", False)],
)
def test_batch_id_detection(text: str, is_batch: bool) -> None:
    assert looks_like_batch_id(text) is is_batch


def test_sorting_what_to_read() -> None:
    planned = BatchFile("B2XXXXXXXX", "F-1", "p.parquet", 1, "https://h/x")
    src = Source.of(["01JABCDEF0123456789ABCDEFG", "aep://01JB00000000000000000000",
                     "aep://B1XXXXXXXX/F-1/part.parquet", "s3://bucket/e/*.parquet", planned])
    assert src.batch_ids == ["01JABCDEF0123456789ABCDEFG", "01JB00000000000000000000"]
    assert src.urls == ["aep://B1XXXXXXXX/F-1/part.parquet", "s3://bucket/e/*.parquet"]
    assert src.planned == [planned]
    assert src.description == "2 batch(es), 1 planned file(s), 2 location(s)"


def test_nothing_to_read_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to read"):
        Source.of([])
    with pytest.raises(TypeError):
        Source.of([3])  # type: ignore[list-item]


def test_a_glob_matching_nothing(tmp_path: object) -> None:
    with pytest.raises(FileNotFoundError, match="no files match"):
        Source.of(f"{tmp_path}/*.parquet").files()
