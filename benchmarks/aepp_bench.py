"""Peer baseline: the ``aepp`` package's own download-and-read workflow against aep_io.

``python -m benchmarks.aepp_bench [--scale 0.1] [--pairs 3] [--json benchmarks/aepp_results.json]``

Both sides read every file of the cached synthetic export (``benchmarks/data.py``) from the
emulator, which runs as its own process on 127.0.0.1, into one pandas DataFrame:

* ``aepp``: ``aepp.configure(...)``, ``dataaccess.DataAccess()``, ``getBatchFiles`` (paged with
  its ``start``/``limit``), ``getFiles(dataSetFileId)`` for the listing, then per parquet file
  ``getFiles(dataSetFileId, path=name)`` + ``transformDataToDataFrame`` and one ``pd.concat``.
  aepp's own helper ``getParquetFilesToDataFrame`` raises ``TypeError`` on valid parquet (it
  ``list +=`` a ``BytesIO``, iterating its lines): a probe run records that error each time.
* ``aep_io``: ``read_arrow(batch_id, client=...)`` then ``.to_pandas()`` (the same pandas end
  result); the Arrow-only point (time and peak RSS when the table is ready) is reported too.

Each run is a fresh process, alternating aepp / aep_io for ``--pairs`` pairs. ``seconds`` is
whole-process time from just before the parent starts the child (interpreter start and imports
included) to the DataFrame being ready; peak RSS is the child's own (``VmHWM``, see
``benchmarks/memory.py``); bytes and requests come from the emulator's
``GET /_emulator/counters``. Both children install a loopback guard
(:func:`install_loopback_guard`) before importing anything else: any connection, datagram or name
lookup for a non-loopback address raises :class:`NonLoopbackError` before a packet leaves.

How aepp 0.6.0 is pointed at the emulator (it has no base-URL option; ``configure`` hard-codes
``https://platform.adobe.io`` and ``https://ims-na1.adobelogin.com`` for ``environment="prod"``):
after ``aepp.configure(org_id, client_id, secret, scopes, sandbox, environment="prod")`` the
benchmark overwrites ``aepp.config.endpoints["global"]`` (the Platform base URL, read when
``DataAccess`` is created) and ``aepp.config.config_object["imsEndpoint"]``,
``["oauthTokenEndpointV2"]`` (``POST {ims}/ims/token/v3``, client_credentials, used by the
``AdobeRequest`` that ``DataAccess()`` creates) and ``["oauthTokenEndpointV1"]``, plus
``endpoints["streaming"]["inlet"]``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "NonLoopbackError", "install_loopback_guard", "loopback_guard", "main",
    "uninstall_loopback_guard",
]

SKIP_MESSAGE = "skipped: aepp not installed (pip install -e .[bench])"
TARGET_SPEEDUP = 25.0
TARGET_MEMORY = 0.25
SCOPES = "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"


# -- loopback guard ---------------------------------------------------------------------------
class NonLoopbackError(RuntimeError):
    """A connection, datagram or name lookup aimed at something other than 127.0.0.1 / ::1.

    A ``RuntimeError`` rather than an ``OSError`` so HTTP libraries do not treat it as a
    transient network error (urllib3/httpx would wrap and retry an ``OSError``).
    """


#: Every refused destination, in order (the benchmark children report them).
REFUSED: list[str] = []
#: The real socket functions, called only once a destination was found to be loopback.
_REAL: dict[str, Any] = {}
#: What :func:`install_loopback_guard` replaced (``None`` while the guard is not installed).
_SAVED: dict[str, Any] | None = None
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def _host_is_loopback(host: object) -> bool:
    if host is None:  # getaddrinfo(None, port): the local wildcard/loopback, no lookup
        return True
    if isinstance(host, bytes | bytearray):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip().strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False  # any other name would need a DNS lookup: refused
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _check(what: str, family: int, address: object) -> None:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return  # AF_UNIX and friends never leave the machine
    host = address[0] if isinstance(address, tuple) and address else address
    if not _host_is_loopback(host):
        message = (f"loopback guard: refused {what} to {address!r}: this benchmark may only "
                   "talk to 127.0.0.1 / ::1")
        REFUSED.append(f"{what} {address!r}")
        raise NonLoopbackError(message)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check("connect", self.family, address)
    return _REAL["connect"](self, address)  # type: ignore[no-any-return]


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check("connect_ex", self.family, address)
    return int(_REAL["connect_ex"](self, address))


def _guarded_sendto(self: socket.socket, data: Any, *args: Any) -> int:
    if args:  # sendto(data, address) or sendto(data, flags, address)
        _check("sendto", self.family, args[-1])
    return int(_REAL["sendto"](self, data, *args))


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    if not _host_is_loopback(host):
        REFUSED.append(f"getaddrinfo {host!r}")
        raise NonLoopbackError(f"loopback guard: refused name lookup of {host!r}: this "
                               "benchmark may only talk to 127.0.0.1 / ::1")
    return _REAL["getaddrinfo"](host, port, *args, **kwargs)


def install_loopback_guard() -> Callable[[], None]:
    """Make every Python-level socket refuse non-loopback destinations; returns the undo.

    Wraps ``socket.socket.connect``/``connect_ex``/``sendto`` (``ssl.SSLSocket`` and
    ``socket.create_connection`` go through them) and ``socket.getaddrinfo`` (so no DNS query is
    sent for a remote name). The check runs before the real call, so a refused destination
    never sees a packet. Sockets opened by C libraries on their own are out of its reach (none
    are used here: both sides speak HTTP through Python sockets).
    """
    global _SAVED
    if _SAVED is None:
        _SAVED = {"connect": socket.socket.connect, "connect_ex": socket.socket.connect_ex,
                  "sendto": socket.socket.sendto, "getaddrinfo": socket.getaddrinfo}
        _REAL.update(_SAVED)
        socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
        socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = _guarded_getaddrinfo
    return uninstall_loopback_guard


def uninstall_loopback_guard() -> None:
    """Put the real socket functions back."""
    global _SAVED
    if _SAVED is None:
        return
    socket.socket.connect = _SAVED["connect"]  # type: ignore[method-assign]
    socket.socket.connect_ex = _SAVED["connect_ex"]  # type: ignore[method-assign]
    socket.socket.sendto = _SAVED["sendto"]  # type: ignore[method-assign]
    socket.getaddrinfo = _SAVED["getaddrinfo"]
    _SAVED = None


@contextlib.contextmanager
def loopback_guard() -> Iterator[None]:
    """The guard for the duration of a ``with`` block."""
    undo = install_loopback_guard()
    try:
        yield
    finally:
        undo()


# -- the children -----------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    from benchmarks.memory import peak_rss_mb

    return peak_rss_mb()


def _digest(df: Any) -> dict[str, Any]:
    """Order-independent fingerprints of a few columns (values, not just counts)."""
    import hashlib
    import math

    emails = sorted(v.get("address") or "" if isinstance(v, dict) else ""
                    for v in df["personalEmail"])
    values = [v.get("lifetimeValue") if isinstance(v, dict) else None for v in df["_acme"]]
    memberships = 0
    realized = 0
    for outer in df["segmentMembership"]:
        for _namespace, inner in outer if outer is not None else ():
            for _segment, membership in inner if inner is not None else ():
                memberships += 1
                realized += isinstance(membership, dict) and membership.get("status") == "realized"
    return {
        "columns": [str(c) for c in df.columns],
        "personalEmail.address sha256": hashlib.sha256("\n".join(emails).encode()).hexdigest(),
        "_acme.lifetimeValue fsum": math.fsum(v for v in values if v is not None and v == v),
        "segmentMembership entries": memberships,
        "segmentMembership realized": int(realized),
    }


def _aepp_connect(env: dict[str, str]) -> Any:
    """``aepp.configure`` with the emulator's credentials, then its endpoints overwritten."""
    import aepp
    from aepp import dataaccess

    aepp.configure(org_id=env["AEP_ORG_ID"], client_id=env["AEP_CLIENT_ID"],
                   secret=env["AEP_CLIENT_SECRET"], scopes=SCOPES, sandbox=env["AEP_SANDBOX"],
                   environment="prod")
    platform, ims = env["AEP_PLATFORM_URL"].rstrip("/"), env["AEP_IMS_URL"].rstrip("/")
    aepp.config.endpoints["global"] = platform
    aepp.config.endpoints["streaming"]["inlet"] = f"{platform}/data/core/edge"
    aepp.config.config_object["imsEndpoint"] = ims
    aepp.config.config_object["oauthTokenEndpointV1"] = f"{ims}/ims/token/v1"
    aepp.config.config_object["oauthTokenEndpointV2"] = f"{ims}/ims/token/v3"
    return dataaccess.DataAccess()  # fetches its token now, from the emulator's IMS


def _aepp_parquet_files(access: Any, batch_id: str) -> list[tuple[str, str]]:
    """(dataSetFileId, file name) of every parquet file of the batch, through aepp's calls."""
    entries: list[dict[str, Any]] = []
    start, limit = 0, 100
    while True:  # getBatchFiles returns one page and never follows _links.next
        page = access.getBatchFiles(batch_id, start=start, limit=limit)
        if not isinstance(page, list):
            raise RuntimeError(f"getBatchFiles({batch_id}) returned {page!r:.500}")
        entries += page
        if len(page) < limit:
            break
        start += limit
    found: list[tuple[str, str]] = []
    todo = [e["dataSetFileId"] for e in entries]
    while todo:
        dsf = todo.pop(0)
        listing = access.getFiles(dataSetFileId=dsf)
        if not isinstance(listing, dict) or "data" not in listing:
            raise RuntimeError(f"getFiles({dsf}) returned {listing!r:.500}")
        for item in listing["data"]:
            if "dataSetFileId" in item:  # a directory dataset file (aep_api.md §6.2 b)
                todo.append(item["dataSetFileId"])
            elif str(item.get("name", "")).endswith(".parquet"):
                found.append((dsf, item["name"]))
    return found


def _child_aepp(ctx: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    access = _aepp_connect(ctx["env"])
    files = _aepp_parquet_files(access, ctx["batch_id"])
    frames = []
    for dsf, name in files:
        data = access.getFiles(dataSetFileId=dsf, path=name)  # io.BytesIO for .parquet
        frames.append(access.transformDataToDataFrame(data))
        del data
    df = pd.concat(frames, ignore_index=True)
    seconds, rss = _since(ctx), _peak_rss_mb()
    del frames
    return {"seconds": seconds, "peak_rss_mb": rss, "rows": len(df), "files": len(files),
            "digest": _digest(df)}


def _child_aep_io(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io import AEPClient, Settings, read_arrow

    with AEPClient(Settings.from_env(ctx["env"])) as client:
        table = read_arrow(ctx["batch_id"], client=client)
    arrow_seconds, arrow_rss = _since(ctx), _peak_rss_mb()
    df = table.to_pandas()
    seconds, rss = _since(ctx), _peak_rss_mb()
    return {"seconds": seconds, "peak_rss_mb": rss, "rows": len(df),
            "arrow_seconds": arrow_seconds, "arrow_peak_rss_mb": arrow_rss,
            "arrow_rows": table.num_rows, "digest": _digest(df)}


def _child_aepp_helper(ctx: dict[str, Any]) -> dict[str, Any]:
    """aepp's own ``getParquetFilesToDataFrame`` on the first parquet file: does it work?"""
    access = _aepp_connect(ctx["env"])
    dsf, name = _aepp_parquet_files(access, ctx["batch_id"])[0]
    try:
        df = access.getParquetFilesToDataFrame(dataSetFileId=dsf, paths=[name])
    except Exception as exc:  # the probe's purpose is to report it
        return {"works": False, "error": f"{type(exc).__name__}: {str(exc)[:70]}", "rows": 0}
    return {"works": True, "error": None, "rows": len(df)}


def _since(ctx: dict[str, Any]) -> float:
    import time

    return time.time() - float(ctx["launched"])


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "aepp": _child_aepp, "aep_io": _child_aep_io, "aepp_helper": _child_aepp_helper,
}


def _child_main(name: str, raw_ctx: str) -> int:
    import json
    import os

    install_loopback_guard()  # before anything that could open a socket is imported
    ctx = json.loads(raw_ctx)
    try:
        result = CHILDREN[name](ctx)
    finally:
        if REFUSED:
            print(f"loopback guard refused: {REFUSED}", file=sys.stderr, flush=True)
    result["refused"] = list(REFUSED)
    print("RESULT " + json.dumps(result), flush=True)
    # skip tearing down millions of pandas objects: not part of either workflow
    os._exit(0 if not REFUSED else 3)


# -- the parent -------------------------------------------------------------------------------
class _Counters:
    """Reads ``GET /_emulator/counters`` with one client (one token for the whole run, so the
    parent's own token request never lands in a child's figures)."""

    def __init__(self, env: dict[str, str]) -> None:
        from aep_io import AEPClient, Settings

        self.url = f"{env['AEP_PLATFORM_URL'].rstrip('/')}/_emulator/counters"
        self.client = AEPClient(Settings.from_env(env))

    def read(self) -> dict[str, Any]:
        return self.client.get_json(self.url)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.client.close()


def _delta(before: dict[str, Any], after: dict[str, Any], key: str) -> dict[str, int]:
    kinds = set(before[key]) | set(after[key])
    out = {k: int(after[key].get(k, 0)) - int(before[key].get(k, 0)) for k in sorted(kinds)}
    return {k: v for k, v in out.items() if v and k != "admin"}  # admin: our own counter reads


def _child_env() -> dict[str, str]:
    import os

    # no proxy may divert the children's requests off the machine (the guard would refuse them)
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def _run_child(name: str, ctx: dict[str, Any], counters: _Counters) -> dict[str, Any]:
    import json
    import subprocess
    import time
    from pathlib import Path

    before = counters.read()
    launched = time.time()
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.aepp_bench", "--child", name,
         json.dumps({**ctx, "launched": launched})],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
        env=_child_env(),
    )
    wall = time.perf_counter() - started
    after = counters.read()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{name} run failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(line[len("RESULT "):])
    result["wall"] = wall
    result["bytes_by_kind"] = _delta(before, after, "bytes_by_kind")
    result["requests_by_kind"] = _delta(before, after, "requests_by_kind")
    result["bytes"] = sum(result["bytes_by_kind"].values())
    result["requests"] = sum(result["requests_by_kind"].values())
    return result


def _check_same(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every run of both sides: same rows and the same column fingerprints."""
    problems = []
    reference = runs["aepp"][0]
    for name, results in runs.items():
        for i, r in enumerate(results):
            if r["rows"] != reference["rows"]:
                problems.append(f"{name} run {i + 1}: {r['rows']} rows, aepp {reference['rows']}")
            for key, value in reference["digest"].items():
                if r["digest"].get(key) != value:
                    problems.append(f"{name} run {i + 1}: {key} {r['digest'].get(key)!r} "
                                    f"!= aepp {value!r}")
    return problems


def _summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    import statistics

    aepp, ours = runs["aepp"], runs["aep_io"]

    def ratios(ours_key: str, rss_key: str) -> dict[str, Any]:
        speed = [a["seconds"] / o[ours_key] for a, o in zip(aepp, ours, strict=True)]
        memory = [o[rss_key] / a["peak_rss_mb"] for a, o in zip(aepp, ours, strict=True)]
        return {
            "speedup_median": statistics.median(speed), "speedups": speed,
            "memory_ratio_median": statistics.median(memory), "memory_ratios": memory,
            "speedup_target_met": statistics.median(speed) >= TARGET_SPEEDUP,
            "memory_target_met": statistics.median(memory) <= TARGET_MEMORY,
        }

    return {"pandas": ratios("seconds", "peak_rss_mb"),
            "arrow_only": ratios("arrow_seconds", "arrow_peak_rss_mb")}


def _spread(values: list[float], fmt: str = ".2f") -> str:
    import statistics

    return (f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
            if len(values) > 1 else f"{values[0]:{fmt}}")


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    runs, summary = report["runs"], report["summary"]
    table = Table(title=f"aepp {report['aepp_version']} vs aep_io: whole batch into one "
                        f"pandas DataFrame ({report['meta']['profiles']:,} profiles, "
                        f"{report['meta']['bytes'] / 1e6:.1f} MB, {report['pairs']} pair(s))")
    for col in ("variant", "seconds (median, min-max)", "peak RSS MB (median, min-max)",
                "rows", "MB moved", "requests", "aepp / this, time", "this / aepp, memory"):
        table.add_column(col, justify="left" if col == "variant" else "right")

    def moved(rs: list[dict[str, Any]]) -> tuple[str, str]:
        import statistics

        mb = statistics.median(r["bytes"] for r in rs) / 1e6
        by_kind = rs[0]["requests_by_kind"]
        reqs = ", ".join(f"{k} {v}" for k, v in by_kind.items())
        return f"{mb:.1f}", f"{statistics.median(r['requests'] for r in rs):.0f} ({reqs})"

    aepp_mb, aepp_req = moved(runs["aepp"])
    ours_mb, ours_req = moved(runs["aep_io"])
    table.add_row("aepp getFiles + transformDataToDataFrame + pd.concat",
                  _spread([r["seconds"] for r in runs["aepp"]]),
                  _spread([r["peak_rss_mb"] for r in runs["aepp"]], ".0f"),
                  f"{runs['aepp'][0]['rows']:,}", aepp_mb, aepp_req, "1", "1")
    for label, key, secs, rss in (
        ("aep_io read_arrow + to_pandas", "pandas", "seconds", "peak_rss_mb"),
        ("aep_io read_arrow (Arrow only)", "arrow_only", "arrow_seconds", "arrow_peak_rss_mb"),
    ):
        s = summary[key]
        table.add_row(label, _spread([r[secs] for r in runs["aep_io"]]),
                      _spread([r[rss] for r in runs["aep_io"]], ".0f"),
                      f"{runs['aep_io'][0]['rows']:,}", ours_mb, ours_req,
                      f"{s['speedup_median']:.1f}x", f"{s['memory_ratio_median']:.2f}")
    console.print(table)
    targets = Table(title=f"targets: >= {TARGET_SPEEDUP:g}x faster at <= "
                          f"{TARGET_MEMORY:g} of aepp's peak memory (medians of per-pair ratios)")
    for col in ("aep_io end result", "speedup", f">= {TARGET_SPEEDUP:g}x", "memory ratio",
                f"<= {TARGET_MEMORY:g}"):
        targets.add_column(col, justify="left" if col == "aep_io end result" else "right")
    for label, key in (("pandas DataFrame (like for like)", "pandas"),
                       ("Arrow table", "arrow_only")):
        s = summary[key]
        targets.add_row(label, f"{s['speedup_median']:.1f}x",
                        "[green]met[/]" if s["speedup_target_met"] else "[red]not met[/]",
                        f"{s['memory_ratio_median']:.3f}",
                        "[green]met[/]" if s["memory_target_met"] else "[red]not met[/]")
    console.print(targets)
    helper = report["aepp_helper"]
    console.print(f"aepp getParquetFilesToDataFrame on valid parquet: "
                  f"{'works' if helper['works'] else 'raises ' + str(helper['error'])}")
    same = report["same_result"]
    console.print("same rows and column fingerprints on every run: "
                  + ("[green]yes[/]" if not same else f"[red]NO[/]: {same}"))
    console.print("loopback guard: no refused destination in any child (all traffic to "
                  f"{report['emulator']})")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import importlib.metadata
    import importlib.util
    import json
    from pathlib import Path

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 3 and argv[0] == "--child":
        return _child_main(argv[1], argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="x 1M profiles (default 0.1)")
    parser.add_argument("--pairs", type=int, default=3, help="aepp / aep_io pairs (default 3)")
    parser.add_argument("--json", default="benchmarks/aepp_results.json", help="where to write")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("aepp") is None:
        print(SKIP_MESSAGE)
        return 0
    from benchmarks.bytecode import compile_aep_io

    compile_aep_io()  # measured processes import aep_io as installed (benchmarks/bytecode.py)

    from benchmarks.data import dataset
    from benchmarks.servers import EmulatorProcess

    meta = dataset(args.scale)
    version = importlib.metadata.version("aepp")
    print(f"data: {meta['profiles']:,} profiles, {meta['bytes'] / 1e6:.1f} MB in "
          f"{len(meta['parts'])} parts (batch {meta['batch_id']}); aepp {version}", flush=True)
    emulator = EmulatorProcess(meta["emulator_dir"])
    counters: _Counters | None = None
    try:
        env = emulator.env()
        ctx = {"env": env, "batch_id": meta["batch_id"]}
        counters = _Counters(env)
        counters.read()  # its token first
        helper = _run_child("aepp_helper", ctx, counters)
        runs: dict[str, list[dict[str, Any]]] = {"aepp": [], "aep_io": []}
        for i in range(args.pairs):
            for name in ("aepp", "aep_io") if i % 2 == 0 else ("aep_io", "aepp"):
                result = _run_child(name, ctx, counters)
                runs[name].append(result)
                print(f"pair {i + 1}/{args.pairs} {name}: {result['seconds']:.2f} s, "
                      f"{result['peak_rss_mb']:.0f} MB peak RSS, {result['rows']:,} rows",
                      flush=True)
    finally:
        if counters is not None:
            counters.close()
        emulator.stop()
    report: dict[str, Any] = {
        "meta": meta, "pairs": args.pairs, "aepp_version": version, "emulator": emulator.url,
        "aepp_configuration": {
            "configure": {"org_id": env["AEP_ORG_ID"], "client_id": env["AEP_CLIENT_ID"],
                          "secret": "<emulator default secret>", "scopes": SCOPES,
                          "sandbox": env["AEP_SANDBOX"], "environment": "prod"},
            "overwritten": {
                'aepp.config.endpoints["global"]': "AEP_PLATFORM_URL",
                'aepp.config.endpoints["streaming"]["inlet"]': "AEP_PLATFORM_URL/data/core/edge",
                'aepp.config.config_object["imsEndpoint"]': "AEP_IMS_URL",
                'aepp.config.config_object["oauthTokenEndpointV1"]': "AEP_IMS_URL/ims/token/v1",
                'aepp.config.config_object["oauthTokenEndpointV2"]': "AEP_IMS_URL/ims/token/v3",
            },
        },
        "aepp_helper": helper, "runs": runs, "summary": _summary(runs),
        "same_result": _check_same(runs),
    }
    _print_report(report)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0 if not report["same_result"] else 1


if __name__ == "__main__":
    sys.exit(main())
