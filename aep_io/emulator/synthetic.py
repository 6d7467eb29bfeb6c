"""Deterministic synthetic AEP XDM profile rows, shaped like a profile export.

The generator produces the columns an Adobe Experience Platform profile export job
writes to parquet (``identityMap``, ``person``, ``personalEmail``, ``homeAddress``, the
tenant field group ``_<tenant>`` and ``segmentMembership``), with realistic content and
distributions. It is used by the local AEP emulator, by tests and by benchmarks.

Everything is vectorised with numpy and pyarrow. Profiles are generated in fixed
internal blocks of :data:`BLOCK_ROWS` rows; block ``b`` draws its random numbers from
generators seeded with ``(seed, b)`` only, and rows within a block are prefix-stable.
A row therefore depends only on the spec and its global profile index: any slicing,
batching or split into part files yields the same rows in the same order, and a spec
with more profiles extends a spec with fewer.

Example::

    from aep_io.emulator.synthetic import SyntheticSpec, generate_table, write_parts

    spec = SyntheticSpec(profiles=10_000, seed=7)
    table = generate_table(spec)                  # pa.Table, 10,000 rows
    assert table.slice(10, 10).equals(generate_table(spec, 10, 20))
    paths = write_parts(spec, "/tmp/export", parts=4, store_schema=False)

Run ``python -m aep_io.emulator.synthetic 1000000`` to time a 1M-profile export.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "BLOCK_ROWS",
    "SyntheticSpec",
    "generate_table",
    "iter_record_batches",
    "profile_schema",
    "segment_ids",
    "write_parts",
]

#: Profiles per internal generation block (the unit of determinism).
BLOCK_ROWS = 65_536

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_DAY = 86_400_000_000
_TWO_YEARS_US = 730 * _US_PER_DAY

# Share of profiles whose segmentMembership is null / an empty map.
_P_SEGMENTS_NULL = 0.01
_P_SEGMENTS_EMPTY = 0.01
# Shape of the per-profile "segment window": larger -> more uneven segment popularity.
_POPULARITY_SKEW = 2.0

# Seed-sequence domains, so block streams never collide with spec-level streams.
_DOMAIN_BLOCK = 1
_DOMAIN_SPEC = 2


# --------------------------------------------------------------------------- vocabularies


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_MALE_FIRST = _words(
    "James John Robert Michael William David Richard Joseph Thomas Charles Christopher "
    "Daniel Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian "
    "George Timothy Ronald Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan "
    "Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander Patrick Frank "
    "Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Zachary Douglas Peter "
    "Kyle Noah Ethan Jeremy Walter Christian Keith Roger Terry Austin Sean Gerald Carl "
    "Harold Dylan Arthur Lawrence Jordan Jesse Bryan Bruce Gabriel Logan Alan Juan Albert "
    "Vincent Mason Liam Oliver Lucas Mateo Luca Pierre Hans Hiroshi Kenji Rahul Arjun Diego "
    "Rafael"
)

_FEMALE_FIRST = _words(
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy "
    "Betty Sandra Margaret Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa "
    "Deborah Stephanie Dorothy Rebecca Sharon Laura Cynthia Amy Kathleen Angela Shirley "
    "Brenda Emma Anna Pamela Nicole Samantha Katherine Christine Helen Debra Rachel "
    "Carolyn Janet Maria Catherine Heather Diane Olivia Julie Joyce Victoria Ruth Virginia "
    "Lauren Kelly Christina Joan Evelyn Judith Andrea Hannah Megan Cheryl Jacqueline Martha "
    "Madison Teresa Gloria Sara Janice Ann Kathryn Abigail Sophia Frances Alice Isabella "
    "Julia Grace Amber Natalie Charlotte Diana Chloe Lea Ingrid Yuki Sakura Priya Ananya "
    "Camila Lucia Sofia Ava Mia Zoe"
)

_LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter "
    "Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart "
    "Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed "
    "Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray "
    "Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez "
    "Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Fisher "
    "Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin "
    "Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens "
    "Murray Ford Castro Marshall Owens Harrison Fernandez Woods Washington Kennedy Wells "
    "Vargas Chen Freeman Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter "
    "Gordon Silva Shaw Snyder Dixon Hunt Palmer Wagner Black Robertson "
    "Stone Salazar Fox Warren Mills Meyer Schmidt Mueller Schneider Fischer Weber "
    "Dubois Lefebvre Moreau Tanaka Suzuki Takahashi Watanabe Sato Sharma Singh Kumar Gupta "
    "Santos Oliveira Pereira Costa Rossi Russo Bianchi Jansen Wong Wang"
)

_STREETS = _words(
    "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Walnut Sunset Lincoln Church "
    "Spring River Highland Forest Jackson Center Mill Meadow Ridge Chestnut Willow Cherry "
    "Franklin Madison Jefferson Valley Birch Harbor Market King Queen Victoria High Station "
    "Garden Bridge"
)
_STREET_SUFFIXES = ("St", "Ave", "Rd")
_STREET_SUFFIX_P = (0.5, 0.3, 0.2)

_EMAIL_DOMAINS = (
    "example.com",
    "mail.test",
    "example.net",
    "example.org",
    "inbox.test",
    "post.example",
)
_EMAIL_DOMAIN_P = (0.35, 0.2, 0.15, 0.1, 0.1, 0.1)

# (code, name, weight %, [(city, stateProvince, postal template)]); in a template
# "#" is a random digit, "@" a random upper-case letter, anything else is literal.
_COUNTRIES: tuple[tuple[str, str, float, tuple[tuple[str, str, str], ...]], ...] = (
    ("US", "United States", 45, (
        ("New York", "NY", "100##"), ("Los Angeles", "CA", "900##"),
        ("Chicago", "IL", "606##"), ("Houston", "TX", "770##"),
        ("Phoenix", "AZ", "850##"), ("Philadelphia", "PA", "191##"),
        ("San Antonio", "TX", "782##"), ("San Diego", "CA", "921##"),
        ("Dallas", "TX", "752##"), ("Seattle", "WA", "981##"),
        ("Denver", "CO", "802##"), ("Boston", "MA", "021##"),
        ("Atlanta", "GA", "303##"), ("Miami", "FL", "331##"),
        ("Portland", "OR", "972##"), ("Austin", "TX", "787##"),
    )),
    ("GB", "United Kingdom", 9, (
        ("London", "England", "SW# #@@"), ("Manchester", "England", "M# #@@"),
        ("Birmingham", "England", "B# #@@"), ("Leeds", "England", "LS# #@@"),
        ("Glasgow", "Scotland", "G# #@@"), ("Edinburgh", "Scotland", "EH# #@@"),
        ("Bristol", "England", "BS# #@@"), ("Cardiff", "Wales", "CF# #@@"),
    )),
    ("DE", "Germany", 8, (
        ("Berlin", "Berlin", "10###"), ("Hamburg", "Hamburg", "20###"),
        ("München", "Bayern", "80###"), ("Köln", "Nordrhein-Westfalen", "50###"),
        ("Frankfurt am Main", "Hessen", "60###"), ("Stuttgart", "Baden-Württemberg", "70###"),
        ("Düsseldorf", "Nordrhein-Westfalen", "40###"), ("Leipzig", "Sachsen", "04###"),
    )),
    ("FR", "France", 6, (
        ("Paris", "Île-de-France", "750##"),
        ("Marseille", "Provence-Alpes-Côte d'Azur", "130##"),
        ("Lyon", "Auvergne-Rhône-Alpes", "690##"), ("Toulouse", "Occitanie", "310##"),
        ("Nice", "Provence-Alpes-Côte d'Azur", "060##"),
        ("Nantes", "Pays de la Loire", "440##"),
        ("Bordeaux", "Nouvelle-Aquitaine", "330##"), ("Lille", "Hauts-de-France", "590##"),
    )),
    ("CA", "Canada", 6, (
        ("Toronto", "ON", "M#@ #@#"), ("Montréal", "QC", "H#@ #@#"),
        ("Vancouver", "BC", "V#@ #@#"), ("Calgary", "AB", "T#@ #@#"),
        ("Edmonton", "AB", "T#@ #@#"), ("Ottawa", "ON", "K#@ #@#"),
        ("Winnipeg", "MB", "R#@ #@#"), ("Halifax", "NS", "B#@ #@#"),
    )),
    ("JP", "Japan", 5, (
        ("Tokyo", "Tokyo", "1##-####"), ("Osaka", "Osaka", "5##-####"),
        ("Yokohama", "Kanagawa", "2##-####"), ("Nagoya", "Aichi", "4##-####"),
        ("Sapporo", "Hokkaido", "0##-####"), ("Fukuoka", "Fukuoka", "8##-####"),
        ("Kyoto", "Kyoto", "6##-####"), ("Kobe", "Hyogo", "65#-####"),
    )),
    ("BR", "Brazil", 4, (
        ("São Paulo", "SP", "0####-###"), ("Rio de Janeiro", "RJ", "2####-###"),
        ("Brasília", "DF", "7####-###"), ("Salvador", "BA", "4####-###"),
        ("Fortaleza", "CE", "6####-###"), ("Belo Horizonte", "MG", "3####-###"),
        ("Curitiba", "PR", "8####-###"), ("Recife", "PE", "5####-###"),
    )),
    ("IN", "India", 4, (
        ("Mumbai", "Maharashtra", "400###"), ("Delhi", "Delhi", "110###"),
        ("Bengaluru", "Karnataka", "560###"), ("Hyderabad", "Telangana", "500###"),
        ("Chennai", "Tamil Nadu", "600###"), ("Kolkata", "West Bengal", "700###"),
        ("Pune", "Maharashtra", "411###"), ("Ahmedabad", "Gujarat", "380###"),
    )),
    ("AU", "Australia", 3, (
        ("Sydney", "NSW", "2###"), ("Melbourne", "VIC", "3###"),
        ("Brisbane", "QLD", "4###"), ("Perth", "WA", "6###"),
        ("Adelaide", "SA", "5###"), ("Canberra", "ACT", "26##"),
        ("Hobart", "TAS", "7###"),
    )),
    ("ES", "Spain", 3, (
        ("Madrid", "Comunidad de Madrid", "28###"), ("Barcelona", "Cataluña", "08###"),
        ("Valencia", "Comunidad Valenciana", "46###"), ("Sevilla", "Andalucía", "41###"),
        ("Zaragoza", "Aragón", "50###"), ("Málaga", "Andalucía", "29###"),
        ("Bilbao", "País Vasco", "48###"),
    )),
    ("IT", "Italy", 3, (
        ("Roma", "Lazio", "001##"), ("Milano", "Lombardia", "201##"),
        ("Napoli", "Campania", "801##"), ("Torino", "Piemonte", "101##"),
        ("Firenze", "Toscana", "501##"), ("Bologna", "Emilia-Romagna", "401##"),
    )),
    ("NL", "Netherlands", 2, (
        ("Amsterdam", "Noord-Holland", "10## @@"), ("Rotterdam", "Zuid-Holland", "30## @@"),
        ("Den Haag", "Zuid-Holland", "25## @@"), ("Utrecht", "Utrecht", "35## @@"),
        ("Eindhoven", "Noord-Brabant", "56## @@"),
    )),
    ("MX", "Mexico", 2, (
        ("Ciudad de México", "CDMX", "06###"), ("Guadalajara", "Jalisco", "44###"),
        ("Monterrey", "Nuevo León", "64###"), ("Puebla", "Puebla", "72###"),
        ("Tijuana", "Baja California", "22###"),
    )),
)  # fmt: skip

_GENDERS = ("male", "female", "not_specified")
_GENDER_P = (0.475, 0.475, 0.02)  # remaining 3 % -> null
_EMAIL_STATUSES = ("active", "incomplete")
_LOYALTY_TIERS = ("bronze", "silver", "gold", "platinum")
_LOYALTY_P = (0.55, 0.28, 0.13, 0.04)
_LOYALTY_VALUE_FACTOR = (1.0, 1.8, 3.2, 6.0)
_NAMESPACES = ("ECID", "Email", "crmId")
_AUTH_STATES = ("ambiguous", "authenticated")
_SEGMENT_NAMESPACES = ("ups", "aam")
_SEGMENT_STATUSES = ("realized", "existing", "exited")
_SEGMENT_STATUS_P = (0.80, 0.15, 0.05)
_SEGMENT_VERSIONS = ("1", "2", "3")
_SEGMENT_VERSION_P = (0.70, 0.20, 0.10)
_P_EMAIL_IDENTITY = 0.70
_P_CRM_IDENTITY = 0.40
_P_VALID_UNTIL = 0.10


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate.

    Attributes:
        profiles: number of profiles (rows).
        seed: non-negative seed; every value generated is a function of it.
        tenant: tenant id; the tenant field group column is ``"_" + tenant``.
        ups_segments: number of distinct Platform (``ups``) segment ids.
        aam_segments: number of distinct Audience Manager (``aam``) segment ids.
        mean_ups_memberships: mean ``ups`` entries per profile (over all profiles).
        mean_aam_memberships: mean ``aam`` entries per profile (over all profiles).
        now: time-zone aware "current time"; qualification times fall in the two
            years before it.
    """

    profiles: int = 100_000
    seed: int = 42
    tenant: str = "acme"
    ups_segments: int = 170
    aam_segments: int = 30
    mean_ups_memberships: float = 10.6
    mean_aam_memberships: float = 1.9
    now: datetime = datetime(2026, 11, 1, tzinfo=UTC)

    def __post_init__(self) -> None:
        if self.profiles < 0:
            raise ValueError(f"profiles must be >= 0, got {self.profiles}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not self.tenant:
            raise ValueError("tenant must be a non-empty string")
        if self.ups_segments < 0 or self.aam_segments < 0:
            raise ValueError("segment counts must be >= 0")
        if self.aam_segments > 1_000_000:
            raise ValueError("aam_segments must be <= 1,000,000")
        if self.mean_ups_memberships < 0 or self.mean_aam_memberships < 0:
            raise ValueError("mean memberships must be >= 0")
        if self.now.tzinfo is None:
            raise ValueError("now must be time-zone aware")


def profile_schema(tenant: str = "acme") -> pa.Schema:
    """The Arrow schema of a profile export for ``tenant`` (column order is fixed)."""
    identity = pa.struct(
        [
            pa.field("id", pa.string()),
            pa.field("authenticatedState", pa.string()),
            pa.field("primary", pa.bool_()),
        ]
    )
    person = pa.struct(
        [
            pa.field(
                "name",
                pa.struct([pa.field("firstName", pa.string()), pa.field("lastName", pa.string())]),
            ),
            pa.field("birthDate", pa.date32()),
            pa.field("gender", pa.string()),
        ]
    )
    email = pa.struct(
        [
            pa.field("address", pa.string()),
            pa.field("primary", pa.bool_()),
            pa.field("status", pa.string()),
            pa.field("type", pa.string()),
        ]
    )
    address = pa.struct(
        [
            pa.field(name, pa.string())
            for name in ("street1", "city", "stateProvince", "postalCode", "country", "countryCode")
        ]
    )
    tenant_group = pa.struct(
        [
            pa.field("loyaltyTier", pa.string()),
            pa.field("lifetimeValue", pa.float64()),
            pa.field("customerSince", pa.date32()),
        ]
    )
    membership = pa.struct(
        [
            pa.field("version", pa.string()),
            pa.field("lastQualificationTime", pa.timestamp("us", tz="UTC")),
            pa.field("validUntil", pa.timestamp("us", tz="UTC")),
            pa.field("status", pa.string()),
        ]
    )
    return pa.schema(
        [
            pa.field("identityMap", pa.map_(pa.string(), pa.list_(identity))),
            pa.field("person", person),
            pa.field("personalEmail", email),
            pa.field("homeAddress", address),
            pa.field("_" + tenant, tenant_group),
            pa.field("segmentMembership", pa.map_(pa.string(), pa.map_(pa.string(), membership))),
        ]
    )


def segment_ids(spec: SyntheticSpec) -> dict[str, list[str]]:
    """Segment ids per namespace, deterministic in ``spec``.

    ``ups`` ids are UUID strings, ``aam`` ids distinct numeric strings of 6-8 digits.
    """
    return {
        ns: list(ids)
        for ns, ids in _segment_ids(spec.seed, spec.ups_segments, spec.aam_segments).items()
    }


def generate_table(spec: SyntheticSpec, start: int = 0, stop: int | None = None) -> pa.Table:
    """Profiles ``[start, stop)`` (``stop`` defaults to ``spec.profiles``) as a table.

    ``generate_table(spec, a, b)`` equals ``generate_table(spec).slice(a, b - a)``; the
    result has one chunk per internal block it touches.
    """
    start, stop = _check_range(spec, start, stop)
    schema = profile_schema(spec.tenant)
    return pa.Table.from_batches(list(_iter_block_slices(spec, start, stop)), schema=schema)


def iter_record_batches(
    spec: SyntheticSpec, start: int = 0, stop: int | None = None, batch_rows: int = 65_536
) -> Iterator[pa.RecordBatch]:
    """Stream profiles ``[start, stop)`` as record batches of exactly ``batch_rows`` rows.

    The last batch may be shorter. Batches that do not line up with the internal
    blocks are concatenated from block slices (a copy); aligned ones are zero-copy.
    """
    if batch_rows <= 0:
        raise ValueError(f"batch_rows must be > 0, got {batch_rows}")
    start, stop = _check_range(spec, start, stop)
    return _batches(spec, start, stop, batch_rows)


def _batches(
    spec: SyntheticSpec, start: int, stop: int, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    stream = _RowStream(_iter_block_slices(spec, start, stop))
    remaining = stop - start
    while remaining > 0:
        n = min(batch_rows, remaining)
        yield _concat(stream.take(n))
        remaining -= n


def write_parts(
    spec: SyntheticSpec,
    directory: str | os.PathLike[str],
    *,
    parts: int = 8,
    row_groups_per_part: int = 16,
    compression: str = "snappy",
    store_schema: bool = True,
    name_template: str = "part-{index:05d}-{uuid}-c000.{compression}.parquet",
) -> list[Path]:
    """Write all ``spec.profiles`` profiles as ``parts`` parquet files; return their paths.

    Part ``i`` holds the contiguous, near-equal range ``[i*N//parts, (i+1)*N//parts)``;
    it is written in row groups of ``ceil(rows_in_part / row_groups_per_part)`` rows
    (so at most ``row_groups_per_part`` of them). ``store_schema=False`` leaves out the
    ``ARROW:schema`` metadata, as Spark/AEP writers do. File names come from
    ``name_template`` with ``index``, ``uuid`` (one deterministic uuid per spec seed,
    shared by all parts, like a Spark job id) and ``compression``. Rows are streamed
    block by block, so memory stays bounded by a block plus a row group.
    """
    if parts <= 0:
        raise ValueError(f"parts must be > 0, got {parts}")
    if row_groups_per_part <= 0:
        raise ValueError(f"row_groups_per_part must be > 0, got {row_groups_per_part}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    schema = profile_schema(spec.tenant)
    job_uuid = _job_uuid(spec.seed)
    total = spec.profiles
    bounds = [i * total // parts for i in range(parts + 1)]
    # Blocks are generated in a background thread while the previous ones are encoded
    # (numpy, Arrow compute and the parquet writer release the GIL).
    blocks = _prefetch(_iter_block_slices(spec, 0, total), depth=2)
    stream = _RowStream(blocks)
    paths: list[Path] = []
    try:
        for index in range(parts):
            rows = bounds[index + 1] - bounds[index]
            name = name_template.format(index=index, uuid=job_uuid, compression=compression)
            group = max(1, math.ceil(rows / row_groups_per_part))
            with pq.ParquetWriter(
                out / name, schema, compression=compression, store_schema=store_schema
            ) as writer:
                remaining = rows
                while remaining > 0:
                    n = min(group, remaining)
                    table = pa.Table.from_batches(stream.take(n), schema=schema)
                    writer.write_table(table, row_group_size=n)
                    remaining -= n
            paths.append(out / name)
    finally:
        blocks.close()
    return paths


# --------------------------------------------------------------------------- internals


def _check_range(spec: SyntheticSpec, start: int, stop: int | None) -> tuple[int, int]:
    stop = spec.profiles if stop is None else stop
    if not 0 <= start <= stop <= spec.profiles:
        raise ValueError(f"need 0 <= start <= stop <= {spec.profiles}, got [{start}, {stop})")
    return start, stop


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)


class _RowStream:
    """Hands out exactly ``n`` rows at a time from an iterator of record batches."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches = batches
        self._head: pa.RecordBatch | None = None

    def take(self, n: int) -> list[pa.RecordBatch]:
        pieces: list[pa.RecordBatch] = []
        while n > 0:
            if self._head is None or self._head.num_rows == 0:
                self._head = next(self._batches)
                continue
            piece = self._head.slice(0, n)
            self._head = self._head.slice(piece.num_rows)
            pieces.append(piece)
            n -= piece.num_rows
        return pieces


def _prefetch(items: Iterator[pa.RecordBatch], depth: int) -> Generator[pa.RecordBatch, None, None]:
    """Run ``items`` in a daemon thread, ``depth`` items ahead of the consumer."""
    done = object()
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    cancelled = threading.Event()

    def put(item: object) -> bool:
        while not cancelled.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    worker = threading.Thread(target=produce, name="synthetic-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        cancelled.set()
        worker.join()


def _iter_block_slices(spec: SyntheticSpec, start: int, stop: int) -> Iterator[pa.RecordBatch]:
    """Rows ``[start, stop)``, one record batch per internal block touched."""
    if start >= stop:
        return
    ctx = _context(spec)
    for block in range(start // BLOCK_ROWS, (stop - 1) // BLOCK_ROWS + 1):
        base = block * BLOCK_ROWS
        lo = max(start, base) - base
        hi = min(stop, base + BLOCK_ROWS) - base
        batch = _build_block(ctx, block, hi)
        yield batch.slice(lo) if lo else batch


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijection on uint64 that looks random."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal ASCII digits of non-negative ints, shape (n, width)."""
    v = values.astype(np.uint64, copy=True)
    out = np.empty((v.shape[0], width), dtype=np.uint8)
    ten = np.uint64(10)
    for col in range(width - 1, -1, -1):
        out[:, col] = (v % ten).astype(np.uint8) + 48
        v //= ten
    return out


def _chars_to_strings(chars: np.ndarray, lengths: np.ndarray | None = None) -> pa.StringArray:
    """Build a string array from a (n, width) uint8 ASCII matrix (row i uses lengths[i])."""
    n, width = chars.shape
    if lengths is None:
        data = np.ascontiguousarray(chars).reshape(-1)
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    else:
        data = chars[np.arange(width) < lengths[:, None]]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _categorical(u: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Map uniforms in [0, 1) to codes ``0..len(probs)-1`` with the given probabilities.

    If the probabilities sum to less than one, the remainder maps to ``len(probs)``.
    """
    cum = np.cumsum(probs)
    if abs(cum[-1] - 1.0) < 1e-9:
        cum[-1] = 1.0
    return np.searchsorted(cum, u, side="right").astype(np.int32)


def _masked(codes: np.ndarray, mask: np.ndarray | None) -> pa.Array:
    return pa.array(codes, mask=mask) if mask is not None and mask.any() else pa.array(codes)


def _days(d: date) -> int:
    return (d - date(1970, 1, 1)).days


@lru_cache(maxsize=16)
def _segment_ids(seed: int, ups: int, aam: int) -> dict[str, tuple[str, ...]]:
    rng = np.random.default_rng([_DOMAIN_SPEC, 1, seed])
    ups_ids = tuple(str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(ups))
    aam_ids: list[str] = []
    seen: set[int] = set()
    while len(aam_ids) < aam:
        digits = int(rng.integers(6, 9))
        value = int(rng.integers(10 ** (digits - 1), 10**digits))
        if value not in seen:
            seen.add(value)
            aam_ids.append(str(value))
    return {"ups": ups_ids, "aam": tuple(aam_ids)}


@lru_cache(maxsize=16)
def _job_uuid(seed: int) -> str:
    rng = np.random.default_rng([_DOMAIN_SPEC, 2, seed])
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


class _Context:
    """Per-spec constants shared by all blocks (vocabularies as Arrow arrays etc.)."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self.schema = profile_schema(spec.tenant)
        self.types = {f.name: f.type for f in self.schema}
        rng = np.random.default_rng([_DOMAIN_SPEC, 3, spec.seed])
        # identities
        self.ecid_key1 = np.uint64(int(rng.integers(0, 2**63)))
        self.ecid_key2 = np.uint64(int(rng.integers(0, 2**63)))
        self.crm_mult = 1 + 2 * int(rng.integers(0, 5 * 10**7))  # odd
        if self.crm_mult % 5 == 0:
            self.crm_mult += 2  # now coprime with 10**9
        self.crm_add = int(rng.integers(0, 10**9))
        # names: first 100 male, then female
        self.first = pa.array(_MALE_FIRST + _FEMALE_FIRST)
        self.first_lower = pa.array([s.lower() for s in _MALE_FIRST + _FEMALE_FIRST])
        self.n_male, self.n_female = len(_MALE_FIRST), len(_FEMALE_FIRST)
        self.last = pa.array(_LAST)
        self.last_lower = pa.array([s.lower() for s in _LAST])
        self.domains = pa.array(_EMAIL_DOMAINS)
        self.streets = pa.array(_STREETS)
        self.suffixes = pa.array(_STREET_SUFFIXES)
        # cities (weight: country weight x Zipf-ish within the country)
        cities, states, countries, codes, templates, weights = [], [], [], [], [], []
        for code, country, weight, city_rows in _COUNTRIES:
            rank_w = np.array([1.0 / (r + 2) for r in range(len(city_rows))])
            rank_w *= weight / rank_w.sum()
            for (city, state, template), w in zip(city_rows, rank_w, strict=True):
                cities.append(city)
                states.append(state)
                countries.append(country)
                codes.append(code)
                templates.append(template)
                weights.append(w)
        self.cities = pa.array(cities)
        self.states = pa.array(states)
        self.countries = pa.array(countries)
        self.country_codes = pa.array(codes)
        self.city_p = np.array(weights) / np.sum(weights)
        width = max(len(t) for t in templates)
        self.postal_templates = np.zeros((len(templates), width), dtype=np.uint8)
        for i, t in enumerate(templates):
            self.postal_templates[i, : len(t)] = np.frombuffer(t.encode("ascii"), np.uint8)
        self.postal_lengths = np.array([len(t) for t in templates], dtype=np.int32)
        # small categorical vocabularies
        self.genders = pa.array(_GENDERS)
        self.email_statuses = pa.array(_EMAIL_STATUSES)
        self.email_type = pa.array(["personal"])
        self.tiers = pa.array(_LOYALTY_TIERS)
        self.namespaces = pa.array(_NAMESPACES)
        self.auth_states = pa.array(_AUTH_STATES)
        self.segment_namespaces = pa.array(_SEGMENT_NAMESPACES)
        self.segment_statuses = pa.array(_SEGMENT_STATUSES)
        self.segment_versions = pa.array(_SEGMENT_VERSIONS)
        # segments: ids, per-namespace sizes and a popularity permutation
        ids = _segment_ids(spec.seed, spec.ups_segments, spec.aam_segments)
        self.segment_keys = pa.array(list(ids["ups"]) + list(ids["aam"]), pa.string())
        self.segment_sizes = np.array([spec.ups_segments, spec.aam_segments], dtype=np.int64)
        self.segment_base = np.array([0, spec.ups_segments], dtype=np.int64)
        self.segment_rank_to_key = np.concatenate(
            [
                rng.permutation(spec.ups_segments),
                spec.ups_segments + rng.permutation(spec.aam_segments),
            ]
        ).astype(np.int32)
        covered = 1.0 - _P_SEGMENTS_NULL - _P_SEGMENTS_EMPTY
        self.segment_lambdas = (
            spec.mean_ups_memberships / covered,
            spec.mean_aam_memberships / covered,
        )
        # dates and times
        now_us = (spec.now - _EPOCH) // timedelta(microseconds=1)
        self.now_us = int(now_us)
        self.birth_lo, self.birth_hi = _days(date(1945, 1, 1)), _days(date(2008, 12, 31))
        self.since_lo = _days(date(2010, 1, 1))
        self.since_hi = max(self.since_lo + 1, _days(spec.now.astimezone(UTC).date()))


@lru_cache(maxsize=8)
def _context(spec: SyntheticSpec) -> _Context:
    return _Context(spec)


class _Draws:
    """Independent random streams of one block, one per quantity (``tag``).

    Each stream is used for exactly one draw whose size is the number of rows (or
    entries) generated, which makes every block prefix-stable: generating its first
    ``k`` rows gives the same rows as generating all of it and slicing.
    """

    def __init__(self, seed: int, block: int) -> None:
        self._seed = seed
        self._block = block

    def rng(self, tag: int) -> np.random.Generator:
        return np.random.default_rng([_DOMAIN_BLOCK, self._block, tag, self._seed])

    def uniform(self, tag: int, n: int) -> np.ndarray:
        return self.rng(tag).random(n)

    def integers(self, tag: int, low: int, high: int, n: int) -> np.ndarray:
        return self.rng(tag).integers(low, high, size=n)


def _build_block(ctx: _Context, block: int, n: int) -> pa.RecordBatch:
    """The first ``n`` rows of internal block ``block``."""
    spec = ctx.spec
    draws = _Draws(spec.seed, block)
    index = np.arange(block * BLOCK_ROWS, block * BLOCK_ROWS + n, dtype=np.uint64)

    has_email = draws.uniform(9, n) < _P_EMAIL_IDENTITY
    # personalEmail is null for about half of the profiles without an Email identity
    email_null = ~has_email & (draws.uniform(10, n) < 0.5)
    person, email_address = _person_and_email(ctx, draws, n)
    columns = [
        _identity_map(ctx, draws, index, email_address, has_email),
        person,
        _personal_email(ctx, draws, email_address, email_null),
        _home_address(ctx, draws, n),
        _tenant_group(ctx, draws, n),
        _segment_membership(ctx, draws, n),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=ctx.schema)


def _person_and_email(
    ctx: _Context, draws: _Draws, n: int
) -> tuple[pa.StructArray, pa.StringArray]:
    gender = _categorical(draws.uniform(1, n), _GENDER_P)  # 3 -> null
    # first name: gendered vocabulary, Zipf-ish within it; unknown gender -> either
    female = (gender == 1) | ((gender >= 2) & (draws.uniform(2, n) < 0.5))
    u_first = draws.uniform(3, n) ** 1.5
    first_idx = np.where(
        female,
        ctx.n_male + (u_first * ctx.n_female).astype(np.int32),
        (u_first * ctx.n_male).astype(np.int32),
    )
    last_idx = (draws.uniform(4, n) ** 1.5 * len(ctx.last)).astype(np.int32)
    birth = draws.integers(5, ctx.birth_lo, ctx.birth_hi + 1, n).astype(np.int32)
    name = pa.StructArray.from_arrays(
        [ctx.first.take(first_idx), ctx.last.take(last_idx)],
        fields=list(ctx.types["person"]["name"].type),
    )
    person = pa.StructArray.from_arrays(
        [name, pa.array(birth, pa.date32()), ctx.genders.take(_masked(gender, gender == 3))],
        fields=list(ctx.types["person"]),
    )
    # first.last{number}@domain, number absent for ~30 %
    number = draws.integers(6, 1, 10_000, n)
    number_str = pc.cast(pa.array(number), pa.string())
    number_str = pc.if_else(pa.array(draws.uniform(7, n) < 0.3), "", number_str)
    domain = _categorical(draws.uniform(8, n), _EMAIL_DOMAIN_P)
    address = pc.binary_join_element_wise(
        ctx.first_lower.take(first_idx),
        ".",
        ctx.last_lower.take(last_idx),
        number_str,
        "@",
        ctx.domains.take(domain),
        "",
    )
    return person, address


def _identity_map(
    ctx: _Context,
    draws: _Draws,
    index: np.ndarray,
    email_address: pa.StringArray,
    has_email: np.ndarray,
) -> pa.MapArray:
    n = index.shape[0]
    has_crm = draws.uniform(11, n) < _P_CRM_IDENTITY
    # ECID: 18 random-looking digits + 20 digits of a seed-keyed bijection of the index
    unique = _mix64(index + ctx.ecid_key1)
    noise = _mix64(unique ^ ctx.ecid_key2) % np.uint64(9 * 10**17) + np.uint64(10**17)
    ecid = _chars_to_strings(np.hstack([_digits(noise, 18), _digits(unique, 20)]))
    # crmId: "CRM" + 9 digits, a bijection of index mod 1e9
    crm_num = ((index % np.uint64(10**9)) * np.uint64(ctx.crm_mult) + np.uint64(ctx.crm_add)) % (
        np.uint64(10**9)
    )
    prefix = np.broadcast_to(np.frombuffer(b"CRM", np.uint8), (n, 3))
    crm = _chars_to_strings(np.hstack([prefix, _digits(crm_num, 9)]))

    present = np.column_stack([np.ones(n, dtype=bool), has_email, has_crm])
    flat = np.flatnonzero(present.reshape(-1))
    row, ns = flat // 3, flat % 3
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(present.sum(axis=1), out=offsets[1:])
    primary_ns = np.where(has_crm, 2, np.where(has_email, 1, 0))
    ids = pa.concat_arrays([ecid, email_address, crm]).take(ns * n + row)
    identity_type = ctx.types["identityMap"].item_type
    items = pa.StructArray.from_arrays(
        [ids, ctx.auth_states.take((ns > 0).astype(np.int8)), pa.array(ns == primary_ns[row])],
        fields=list(identity_type.value_type),
    )
    lists = pa.ListArray.from_arrays(
        np.arange(len(flat) + 1, dtype=np.int32), items, type=identity_type
    )
    return pa.MapArray.from_arrays(
        offsets, ctx.namespaces.take(ns), lists, type=ctx.types["identityMap"]
    )


def _personal_email(
    ctx: _Context, draws: _Draws, address: pa.StringArray, null: np.ndarray
) -> pa.StructArray:
    n = len(address)
    mask = null if null.any() else None
    status = (draws.uniform(12, n) >= 0.93).astype(np.int8)
    return pa.StructArray.from_arrays(
        [
            pc.if_else(pa.array(null), pa.scalar(None, pa.string()), address),
            pa.array(np.ones(n, dtype=bool), mask=mask),
            ctx.email_statuses.take(_masked(status, mask)),
            ctx.email_type.take(_masked(np.zeros(n, dtype=np.int8), mask)),
        ],
        fields=list(ctx.types["personalEmail"]),
        mask=pa.array(null),
    )


def _home_address(ctx: _Context, draws: _Draws, n: int) -> pa.StructArray:
    city = np.minimum(
        np.searchsorted(np.cumsum(ctx.city_p), draws.uniform(20, n), side="right"),
        len(ctx.city_p) - 1,
    )
    house = (np.exp(draws.uniform(21, n) * np.log(9999.0))).astype(np.int64)  # 1..9998
    street = pc.binary_join_element_wise(
        pc.cast(pa.array(house), pa.string()),
        ctx.streets.take(draws.integers(22, 0, len(ctx.streets), n)),
        ctx.suffixes.take(_categorical(draws.uniform(23, n), _STREET_SUFFIX_P)),
        " ",
    )
    template = ctx.postal_templates[city]
    noise = draws.rng(24).integers(0, 260, size=template.shape, dtype=np.uint16)
    chars = np.where(
        template == ord("#"),
        noise % 10 + ord("0"),
        np.where(template == ord("@"), noise % 26 + ord("A"), template),
    ).astype(np.uint8)
    postal = _chars_to_strings(chars, ctx.postal_lengths[city])
    return pa.StructArray.from_arrays(
        [
            street,
            ctx.cities.take(city),
            ctx.states.take(city),
            postal,
            ctx.countries.take(city),
            ctx.country_codes.take(city),
        ],
        fields=list(ctx.types["homeAddress"]),
    )


def _tenant_group(ctx: _Context, draws: _Draws, n: int) -> pa.StructArray:
    tier = np.minimum(_categorical(draws.uniform(30, n), _LOYALTY_P), len(_LOYALTY_P) - 1)
    value = draws.rng(31).lognormal(mean=5.0, sigma=1.1, size=n)
    value = np.round(value * np.asarray(_LOYALTY_VALUE_FACTOR)[tier], 2)
    since = draws.integers(32, ctx.since_lo, ctx.since_hi, n).astype(np.int32)
    name = "_" + ctx.spec.tenant
    return pa.StructArray.from_arrays(
        [ctx.tiers.take(tier), pa.array(value), pa.array(since, pa.date32())],
        fields=list(ctx.types[name]),
    )


def _segment_membership(ctx: _Context, draws: _Draws, n: int) -> pa.MapArray:
    """segmentMembership: {namespace: {segmentId: membership}}.

    Per profile and namespace: ``k ~ Poisson`` entries (clipped to the namespace size
    ``S``), chosen as ``k`` distinct positions of a window ``[0, W)`` with ``k <= W <= S``
    (``W`` skewed towards ``k``), visited as ``(start + j*stride) mod W`` with ``stride``
    coprime with ``W``. Low positions are therefore popular and high ones rare; a fixed
    per-seed permutation maps positions to segment ids.
    """
    kind = draws.uniform(40, n)
    is_null = kind < _P_SEGMENTS_NULL
    covered = kind >= _P_SEGMENTS_NULL + _P_SEGMENTS_EMPTY
    sizes = ctx.segment_sizes
    counts = (
        np.column_stack(
            [
                np.minimum(draws.rng(41).poisson(ctx.segment_lambdas[0], n), sizes[0]),
                np.minimum(draws.rng(42).poisson(ctx.segment_lambdas[1], n), sizes[1]),
            ]
        )
        * covered[:, None]
    )
    window = counts + (
        (sizes - counts + 1)
        * np.column_stack([draws.uniform(43, n), draws.uniform(44, n)]) ** _POPULARITY_SKEW
    ).astype(np.int64)
    window = np.maximum(np.minimum(window, sizes), 1)
    stride = 1 + (
        np.column_stack([draws.uniform(45, n), draws.uniform(46, n)]) * (window - 1)
    ).astype(np.int64)
    bad = np.gcd(stride, window) != 1
    while bad.any():  # walk to the next coprime stride (1 always is)
        stride[bad] = stride[bad] % np.maximum(window[bad] - 1, 1) + 1
        bad = np.gcd(stride, window) != 1
    start = (np.column_stack([draws.uniform(47, n), draws.uniform(48, n)]) * window).astype(
        np.int64
    )

    # outer map entries (one per present namespace, "ups" before "aam")
    flat_counts = counts.reshape(-1)
    outer = np.flatnonzero(flat_counts > 0)
    outer_ns = (outer % 2).astype(np.int32)
    outer_offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum((counts > 0).sum(axis=1), out=outer_offsets[1:])
    inner_counts = flat_counts[outer]
    inner_offsets = np.zeros(len(outer) + 1, dtype=np.int32)
    np.cumsum(inner_counts, out=inner_offsets[1:])
    total = int(inner_offsets[-1])

    # entries
    j = np.arange(total, dtype=np.int64) - np.repeat(inner_offsets[:-1], inner_counts)
    pos = (
        np.repeat(start.reshape(-1)[outer], inner_counts)
        + j * np.repeat(stride.reshape(-1)[outer], inner_counts)
    ) % np.repeat(window.reshape(-1)[outer], inner_counts)
    key_index = ctx.segment_rank_to_key[np.repeat(ctx.segment_base[outer_ns], inner_counts) + pos]
    status = _categorical(draws.uniform(50, total), _SEGMENT_STATUS_P)
    version = np.minimum(_categorical(draws.uniform(51, total), _SEGMENT_VERSION_P), 2)
    qualified = ctx.now_us - draws.integers(52, 0, _TWO_YEARS_US, total)
    valid_null = draws.uniform(53, total) >= _P_VALID_UNTIL
    valid_until = qualified + draws.integers(54, 30, 91, total) * _US_PER_DAY

    timestamp = pa.timestamp("us", tz="UTC")
    outer_type = ctx.types["segmentMembership"]
    inner_type = outer_type.item_type
    items = pa.StructArray.from_arrays(
        [
            ctx.segment_versions.take(version),
            pa.array(qualified, timestamp),
            pa.array(valid_until, timestamp, mask=valid_null),
            ctx.segment_statuses.take(np.minimum(status, 2)),
        ],
        fields=list(inner_type.item_type),
    )
    inner = pa.MapArray.from_arrays(
        inner_offsets, ctx.segment_keys.take(key_index), items, type=inner_type
    )
    return pa.MapArray.from_arrays(
        outer_offsets,
        ctx.segment_namespaces.take(outer_ns),
        inner,
        type=outer_type,
        mask=pa.array(is_null),
    )


# --------------------------------------------------------------------------- benchmark

if __name__ == "__main__":
    import resource
    import sys
    import tempfile
    import time

    n_profiles = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    bench_spec = SyntheticSpec(profiles=n_profiles)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        written = write_parts(bench_spec, tmp)
        seconds = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in written)
        entries = 0
        for p in written:
            col = pq.read_table(p, columns=["segmentMembership"]).column(0)
            for chunk in col.chunks:
                # offsets respect slicing; .items does not (fine: we index it by offsets)
                outer_offsets = chunk.offsets.to_numpy()
                inner_offsets = chunk.items.offsets.to_numpy()
                entries += int(inner_offsets[outer_offsets[-1]] - inner_offsets[outer_offsets[0]])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"profiles={n_profiles:,} parts={len(written)} seconds={seconds:.2f} "
        f"size_mb={size / 1e6:.1f} membership_entries={entries:,} peak_rss_mb={peak_mb:.0f}"
    )
