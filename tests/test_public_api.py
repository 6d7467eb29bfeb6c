import aep_io


def test_all_names_resolve_and_are_documented() -> None:
    for name in aep_io.__all__:
        obj = getattr(aep_io, name)
        if name != "__version__":
            assert obj.__doc__, f"{name} has no docstring"


def test_all_is_sorted_and_unique() -> None:
    assert len(set(aep_io.__all__)) == len(aep_io.__all__)


def test_library_core_never_imports_the_emulator() -> None:
    import subprocess
    import sys

    code = ("import sys, aep_io, aep_io.polars_io, aep_io.duckdb_io, aep_io.downloads;"
            "print(any(m.startswith('aep_io.emulator') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
