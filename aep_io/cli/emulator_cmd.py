"""``aep-io emulator ...``: run the local AEP emulator and put synthetic exports into it."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape

from aep_io.cli.common import console, human_bytes

app = typer.Typer(help="The local AEP emulator (loopback only).", no_args_is_help=True)

DATA_OPTION = typer.Option(..., "--data", help="Directory holding the emulator's state.")


@app.command("generate")
def generate(
    data: Path = DATA_OPTION,
    profiles: int = typer.Option(100_000, help="Synthetic profiles to export."),
    parts: int = typer.Option(8, help="Parquet part files."),
    row_groups: int = typer.Option(16, help="Row groups per part."),
    seed: int = typer.Option(42, help="Random seed (same seed, same rows)."),
    store_schema: bool = typer.Option(
        True, help="Store the Arrow schema in the files (--no-store-schema mimics Spark writers)."
    ),
) -> None:
    """Generate synthetic XDM profiles and register them as an export batch."""
    from aep_io.emulator import Emulator

    if profiles < 1 or parts < 1 or row_groups < 1:
        raise typer.BadParameter("--profiles, --parts and --row-groups must be at least 1")
    started = time.perf_counter()
    emulator = Emulator(data)
    export = emulator.add_synthetic_export(
        profiles, parts=parts, row_groups_per_part=row_groups, seed=seed,
        store_schema=store_schema,
    )
    console.print(
        f"batch [bold]{export.batch_id}[/] in dataset {export.dataset_id}: "
        f"{export.record_count:,} profiles, {len(export.files)} files, "
        f"{human_bytes(export.size)} in {time.perf_counter() - started:.1f}s"
    )


@app.command("load")
def load(
    data: Path = DATA_OPTION,
    files: list[Path] | None = typer.Argument(
        None, help="Profile files (parquet, or JSON objects one per line / in an array)."
    ),
    profiles: int = typer.Option(0, help="Generate this many synthetic profiles instead."),
    seed: int = typer.Option(42, help="Random seed of the synthetic profiles."),
    sandbox: str = typer.Option("prod", help="Sandbox of the default org to load into."),
) -> None:
    """Load the profile store that segment and export jobs work on (replaces it)."""
    from aep_io.emulator import Emulator, Tenant
    from aep_io.emulator.profiles import ProfileLoadError

    if bool(profiles) == bool(files):
        raise typer.BadParameter("give either --profiles N or profile FILE arguments")
    if profiles < 0:
        raise typer.BadParameter("--profiles must be at least 1")
    started = time.perf_counter()
    emulator = Emulator(data)
    tenant = Tenant(emulator.default_tenant.org, sandbox)
    try:
        if profiles:
            count = emulator.profiles.load_synthetic(tenant, profiles, seed=seed)
        else:
            count = emulator.profiles.load_files(tenant, files or [])
    except ProfileLoadError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        emulator.close()
    console.print(
        f"loaded [bold]{count:,}[/] profiles into sandbox {sandbox} "
        f"in {time.perf_counter() - started:.1f}s"
    )


@app.command("serve")
def serve(
    data: Path = DATA_OPTION,
    port: int = typer.Option(8080, help="TCP port."),
    host: str = typer.Option("127.0.0.1", help="Loopback address to bind."),
    profiles: int = typer.Option(
        0, help="If > 0 and the emulator holds no batch yet, generate this many profiles first."
    ),
    fault: list[str] | None = typer.Option(
        None,
        "--fault",
        metavar="SPEC",
        help="Inject a fault (repeatable): comma-separated key=value, e.g. "
        "'kind=status,status=503,route=file,rate=0.05' or 'kind=expire_token,route=file,"
        "rate=0.01'. Keys: kind, status, header.<Name>, body, delay, route, method, path, "
        "times (none: unlimited), rate. Kinds: status, latency, reset, reset_mid_body, "
        "truncate, ignore_range, stale_listing, expire_token. While it runs, tests change "
        "faults through its HTTP API (/_emulator/faults).",
    ),
    fault_seed: int = typer.Option(
        0, "--fault-seed", metavar="N", help="Seed of the random draws of rate-based faults."
    ),
) -> None:
    """Serve the emulator in the foreground until interrupted (with faults from --fault)."""
    from aep_io.emulator import DEFAULT_CLIENT_ID, DEFAULT_ORG_ID, Emulator, Fault
    from aep_io.emulator.server import check_loopback, serve_forever

    try:
        check_loopback(host)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        faults = [Fault.parse(spec) for spec in fault or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--fault'") from None
    emulator = Emulator(data, fault_seed=fault_seed)
    for one in faults:
        emulator.faults.add(one)
    if profiles > 0 and not emulator.store.list("batch", emulator.default_tenant):
        export = emulator.add_synthetic_export(profiles)
        console.print(f"generated batch [bold]{export.batch_id}[/] ({export.record_count:,} rows)")
    url = f"http://{host}:{port}"
    console.print(f"AEP emulator on [bold]{url}[/] (data in {data}). Point aep_io at it with:")
    console.print(f"  export AEP_PLATFORM_URL={url} AEP_IMS_URL={url}")
    console.print(f"  export AEP_CLIENT_ID={DEFAULT_CLIENT_ID} AEP_ORG_ID={DEFAULT_ORG_ID}")
    console.print("  export AEP_CLIENT_SECRET=<the emulator's development secret, see README>")
    for one in faults:
        console.print(f"fault: {escape(one.to_spec())}")
    serve_forever(emulator, host=host, port=port)
