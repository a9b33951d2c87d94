"""Traffic matrices: one immutable time series type, its file format, readers and a generator.

A :class:`TrafficSeries` is ``tm[t, i, j]``: the mean demand from node i to node j during
interval t, in Mbit/s, with a zero diagonal (traffic that stays inside a node never crosses
the network). Real series have holes: an interval whose matrix is all zero is a missing
measurement, not an idle network; :attr:`TrafficSeries.valid_mask` tells them apart so that
methods skip them instead of dividing by them.

Series are time series: a method deciding interval t may only look at intervals before t,
and evaluation uses the last part of a series (:meth:`TrafficSeries.split_by_fraction`).

The real SNDlib matrices are under the ZIB academic license: they are read from the shared
data folder (:func:`shared_data_dir`) and never copied into the project.
"""
from __future__ import annotations

import inspect
import io
import logging
import math
import os
import re
import tarfile
import tempfile
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

LOG = logging.getLogger(__name__)

TIME_FORMAT = "%Y%m%d-%H%M"
DAY_S = 86400


class TrafficError(ValueError):
    """Traffic data that cannot be used; the message names the file and the problem."""


def shared_data_dir() -> Path:
    """The shared data folder: ``$RYUTE_DATA``, else ``shared/data`` beside the project.

    The one place that knows where the (licensed, never copied) real data lives.
    """
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("RYUTE_DATA", default))


# -- the series ----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TrafficSeries:
    """``tm`` [T, N, N] float64 Mbit/s (read-only), ``nodes`` (N names), ``times`` (T strings
    ``YYYYMMDD-HHMM`` or empty), ``interval_s`` (seconds per matrix, None if unknown) and
    ``source`` (where it came from). Validated on construction: raises TrafficError."""

    tm: np.ndarray
    nodes: tuple[str, ...]
    times: tuple[str, ...] = ()
    interval_s: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        tm = np.array(self.tm, dtype=np.float64)  # a private copy, so it can be read-only
        nodes = tuple(str(n) for n in self.nodes)
        times = tuple(str(t) for t in self.times)
        _check_matrix(tm, nodes, times, self.source)
        tm.setflags(write=False)
        object.__setattr__(self, "tm", tm)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "times", times)
        if self.interval_s is not None:
            object.__setattr__(self, "interval_s", int(self.interval_s))

    def __len__(self) -> int:
        return self.tm.shape[0]

    def __repr__(self) -> str:
        return (f"TrafficSeries({len(self)} x {len(self.nodes)}x{len(self.nodes)}, "
                f"interval_s={self.interval_s}, source={self.source!r})")

    @property
    def valid_mask(self) -> np.ndarray:
        """[T] bool: intervals with a measurement (matrix not all zero)."""
        return np.asarray(self.tm.reshape(len(self), -1).any(axis=1))

    def slice(self, start: int | None = None, stop: int | None = None) -> TrafficSeries:
        """Intervals [start, stop), as with Python slicing."""
        window = slice(start, stop)
        return self._with(tm=self.tm[window], times=self.times[window] if self.times else ())

    def scaled(self, factor: float) -> TrafficSeries:
        """Every demand multiplied by ``factor`` (>= 0)."""
        if not factor >= 0 or not math.isfinite(factor):
            raise TrafficError(f"{self.source}: scale factor must be finite and >= 0, "
                               f"got {factor}")
        return self._with(tm=self.tm * factor)

    def aligned_to(self, graph: nx.DiGraph) -> TrafficSeries:
        """The same series with rows and columns in the graph's node order.

        Raises TrafficError naming the nodes that only one side has.
        """
        wanted = [str(n) for n in graph.nodes]
        missing_here = [n for n in wanted if n not in self.nodes]
        missing_there = [n for n in self.nodes if n not in set(wanted)]
        if missing_here or missing_there:
            name = graph.graph.get("name", "the topology")
            parts = []
            if missing_here:
                parts.append(f"no traffic for topology node(s) {_listing(missing_here)}")
            if missing_there:
                parts.append(f"node(s) {_listing(missing_there)} not in {name}")
            raise TrafficError(f"{self.source}: does not match {name}: " + "; ".join(parts))
        index = [self.nodes.index(n) for n in wanted]
        return self._with(tm=self.tm[:, index][:, :, index], nodes=tuple(wanted))

    def split_by_fraction(self, train: float, validation: float = 0.0
                          ) -> tuple[TrafficSeries, TrafficSeries, TrafficSeries]:
        """Contiguous (train, validation, test) parts; test is the rest, at the end.

        Contiguous and in time order, never shuffled: a model must not see the future.
        """
        if not (0 < train and 0 <= validation and train + validation < 1):
            raise TrafficError(f"{self.source}: need 0 < train, 0 <= validation and "
                               f"train + validation < 1, got {train}, {validation}")
        first = round(len(self) * train)
        second = round(len(self) * (train + validation))
        return self.slice(0, first), self.slice(first, second), self.slice(second, None)

    def _with(self, **changes: Any) -> TrafficSeries:
        fields = {"tm": self.tm, "nodes": self.nodes, "times": self.times,
                  "interval_s": self.interval_s, "source": self.source}
        return TrafficSeries(**{**fields, **changes})


def _check_matrix(tm: np.ndarray, nodes: tuple[str, ...], times: tuple[str, ...],
                  source: str) -> None:
    def fail(problem: str) -> TrafficError:
        return TrafficError(f"{source or 'traffic'}: {problem}")

    if tm.ndim != 3 or tm.shape[1] != tm.shape[2]:
        raise fail(f"tm must have shape [T, N, N], got {list(tm.shape)}")
    if tm.shape[1] != len(nodes):
        raise fail(f"tm is {tm.shape[1]}x{tm.shape[2]} but there are {len(nodes)} nodes")
    if len(set(nodes)) != len(nodes):
        raise fail("duplicate node names")
    if times and len(times) != tm.shape[0]:
        raise fail(f"{len(times)} times for {tm.shape[0]} matrices")
    if not np.isfinite(tm).all():
        raise fail("tm has non-finite values (NaN or infinity)")
    if (tm < 0).any():
        raise fail("tm has negative demands")
    if np.einsum("tii->ti", tm).any():
        raise fail("tm has a non-zero diagonal (traffic from a node to itself)")


def _listing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


# -- the .tm.npz format --------------------------------------------------------------------

def load_traffic(path: str | Path) -> TrafficSeries:
    """Read the shared ``.tm.npz`` format (keys tm, nodes, times, interval_s; the last two
    optional). A non-zero diagonal is dropped with a warning; anything else wrong is a
    TrafficError."""
    source = str(path)
    _check_npz_members(Path(path), source)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise TrafficError(f"{source}: no such file") from None
    except (OSError, ValueError, EOFError, NotImplementedError, zipfile.BadZipFile,
            zlib.error) as error:  # zlib: a member whose deflate stream is damaged
        raise TrafficError(f"{source}: not a .tm.npz file: {error}") from None
    for key in ("tm", "nodes"):
        if key not in arrays:
            raise TrafficError(f"{source}: missing key '{key}' (has {sorted(arrays)})")
    if arrays["tm"].dtype.kind not in "biuf":
        raise TrafficError(f"{source}: tm must hold numbers, not {arrays['tm'].dtype}")
    tm = np.array(arrays["tm"], dtype=np.float64)
    if tm.ndim == 3 and tm.shape[1] == tm.shape[2] and np.einsum("tii->ti", tm).any():
        LOG.warning("%s: dropping traffic from nodes to themselves (the diagonal)", source)
        tm[:, np.arange(tm.shape[1]), np.arange(tm.shape[1])] = 0.0
    return TrafficSeries(tm=tm, nodes=tuple(arrays["nodes"].reshape(-1).tolist()),
                         times=tuple(arrays.get("times", np.array([])).reshape(-1).tolist()),
                         interval_s=_interval(arrays.get("interval_s"), source),
                         source=source)


#: What one array of a .tm.npz may inflate to (a week of Cogentco at 5 min is ~0.6 GB).
MAX_MEMBER_BYTES = 2 * 2**30


def _check_npz_members(path: Path, source: str) -> None:
    """Refuse, from the zip directory, a member that would inflate beyond MAX_MEMBER_BYTES
    (np.load would allocate all of it first)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except FileNotFoundError:
        raise TrafficError(f"{source}: no such file") from None
    except (OSError, EOFError, ValueError, NotImplementedError, zipfile.BadZipFile) as error:
        raise TrafficError(f"{source}: not a .tm.npz file: {error}") from None
    for info in members:
        if info.file_size > MAX_MEMBER_BYTES:
            raise TrafficError(f"{source}: member {info.filename} inflates to {info.file_size} "
                               f"bytes; at most {MAX_MEMBER_BYTES}")


def _interval(value: np.ndarray | None, source: str) -> int | None:
    if value is None:
        return None
    if value.size != 1 or value.dtype.kind not in "iuf" or not np.isfinite(value).all() \
            or value.reshape(-1)[0] <= 0 or value.reshape(-1)[0] != int(value.reshape(-1)[0]):
        raise TrafficError(f"{source}: interval_s must be one positive integer, got "
                           f"{value.tolist()!r:.60}")
    return int(value.reshape(-1)[0])


def save_traffic(series: TrafficSeries, path: str | Path) -> Path:
    """Write the shared ``.tm.npz`` format (tm as float32, as the shared files have it).

    Written to a temporary file then renamed, so a reader never sees half a file.
    """
    path = Path(path)
    arrays: dict[str, Any] = {  # Any: numpy types savez's **kwds as its own options
        "tm": series.tm.astype(np.float32),
        "nodes": np.array(series.nodes, dtype=str),
        "times": np.array(series.times, dtype=str),
    }
    if series.interval_s is not None:
        arrays["interval_s"] = np.array(series.interval_s, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as handle:
        try:
            np.savez_compressed(handle, **arrays)
            # The temporary file is private (0600); the series is a file like any other.
            os.chmod(handle.name, 0o666 & ~_umask())
        except BaseException:
            os.unlink(handle.name)
            raise
    os.replace(handle.name, path)
    return path


def join_series(sources: Sequence[str | Path]) -> TrafficSeries:
    """One series of several ``.tm.npz`` files (folders: their ``*.tm.npz``), in time order:
    by their times when all have them, else by file name. Controller recordings
    (``ryute controller --record DIR``) become one training or evaluation series this way.
    Files must have the same nodes and interval; an interval present in two files (the same
    time) is kept once."""
    paths: list[Path] = []
    for source in sources:
        source = Path(source)
        paths += sorted(source.glob("*.tm.npz")) if source.is_dir() else [source]
    if not paths:
        raise TrafficError(f"{', '.join(map(str, sources))}: no .tm.npz files")
    parts = [load_traffic(path) for path in paths]
    first = parts[0]
    source_name = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files from {paths[0]}"
    for part in parts[1:]:
        if part.nodes != first.nodes:
            raise TrafficError(f"{part.source}: other nodes than {first.source}")
        if part.interval_s != first.interval_s:
            raise TrafficError(f"{part.source}: interval {part.interval_s} s, "
                               f"{first.source} has {first.interval_s} s")
    if all(part.times for part in parts):
        parts.sort(key=lambda part: part.times[0])
        seen: set[str] = set()
        tms, times = [], []
        for part in parts:
            keep = [t for t, stamp in enumerate(part.times) if stamp not in seen]
            seen.update(part.times)
            tms.append(part.tm[keep])
            times += [part.times[t] for t in keep]
        return TrafficSeries(np.concatenate(tms), first.nodes, tuple(times), first.interval_s,
                             source=source_name)
    return TrafficSeries(np.concatenate([part.tm for part in parts]), first.nodes, (),
                         first.interval_s, source=source_name)


def _umask() -> int:
    """The process's umask (reading it means setting it, and back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# -- SNDlib demand matrices ----------------------------------------------------------------

UNITS_MBPS = {"BITPERSEC": 1e-6, "KBITPERSEC": 1e-3, "MBITPERSEC": 1.0, "GBITPERSEC": 1e3}
FILE_TIME = re.compile(r"(\d{8})-(\d{4})")


@dataclass(frozen=True)
class _DemandFile:
    name: str
    time: str | None
    interval_s: int | None
    nodes: list[str]
    demands: list[tuple[str, str, float]]


def read_sndlib_demands(paths: Iterable[str | Path],
                        nodes: Sequence[str] | None = None) -> TrafficSeries:
    """One matrix per SNDlib demand XML file (``<demands><demand><source><target>
    <demandValue>``), ordered by time.

    Time comes from the file name (``...-20040301-0000.xml``) or else from ``<meta><time>``;
    when some file has neither, the files stay in the given order and ``times`` is empty.
    Values are converted from ``<meta><unit>`` (MBITPERSEC etc.) to Mbit/s; without a unit
    they are taken as Mbit/s. ``nodes`` fixes the node order (a demand naming another node
    is a TrafficError); by default it is the files' node list, then any other demand
    endpoints in order of appearance.
    """
    files = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise TrafficError(f"{path}: cannot read: {error}") from None
        files.append(_parse_demand_xml(data, str(path)))
    return _demand_series(files, nodes, source=_describe([f.name for f in files]))


def read_sndlib_archive(src: str | Path, nodes: Sequence[str] | None = None) -> TrafficSeries:
    """:func:`read_sndlib_demands` for every ``*.xml`` in a directory, ``.tgz``/``.tar.gz``/
    ``.tar`` or ``.zip`` (as SNDlib distributes them), read in memory without extracting."""
    src = Path(src)
    if src.is_dir():
        return read_sndlib_demands(sorted(src.rglob("*.xml")), nodes)
    if not src.is_file():
        raise TrafficError(f"{src}: no such file or directory")
    try:
        members = list(_archive_members(src))
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as error:
        raise TrafficError(f"{src}: cannot read archive: {error}") from None
    files = [_parse_demand_xml(data, f"{src}:{name}") for name, data in members]
    return _demand_series(files, nodes, source=str(src))


def _archive_members(src: Path) -> Iterable[tuple[str, bytes]]:
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as archive:
            for name in sorted(archive.namelist()):
                if name.endswith(".xml"):
                    yield name, archive.read(name)
        return
    if not tarfile.is_tarfile(src):
        raise TrafficError(f"{src}: not a directory, .tgz or .zip of SNDlib demand files")
    with tarfile.open(src) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile() and member.name.endswith(".xml"):
                data = archive.extractfile(member)  # a file member: never None
                if data is not None:
                    yield member.name, data.read()


def _parse_demand_xml(data: bytes, name: str) -> _DemandFile:
    try:
        root = ET.parse(io.BytesIO(data)).getroot()
    except ET.ParseError as error:
        raise TrafficError(f"{name}: not valid XML: {error}") from None
    meta = _find(root, "meta")
    unit = (_text(meta, "unit") or "MBITPERSEC").upper()
    if unit not in UNITS_MBPS:
        raise TrafficError(f"{name}: unknown unit '{unit}' (known: {', '.join(UNITS_MBPS)})")
    demands_el = _find(root, "demands")
    if demands_el is None:
        raise TrafficError(f"{name}: no <demands> element: not an SNDlib demand file")
    demands = [_demand(el, name, UNITS_MBPS[unit]) for el in demands_el
               if _local(el.tag) == "demand"]
    node_ids = [el.get("id", "") for el in root.iter() if _local(el.tag) == "node"]
    return _DemandFile(name, _file_time(name, _text(meta, "time")),
                       _granularity_s(_text(meta, "granularity")), node_ids, demands)


def _demand(element: ET.Element, name: str, factor: float) -> tuple[str, str, float]:
    src, dst, value = (_text(element, tag) for tag in ("source", "target", "demandValue"))
    where = f"{name}: demand '{element.get('id')}'"
    if not src or not dst or value is None:
        raise TrafficError(f"{where}: needs <source>, <target> and <demandValue>")
    try:
        number = float(value) * factor
    except ValueError:
        raise TrafficError(f"{where}: demandValue is not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise TrafficError(f"{where}: demandValue must be finite and >= 0, got {value!r}")
    return src, dst, number


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: ET.Element, name: str) -> ET.Element | None:
    return next((el for el in root.iter() if _local(el.tag) == name), None)


def _text(parent: ET.Element | None, name: str) -> str | None:
    if parent is None:
        return None
    child = next((el for el in parent if _local(el.tag) == name), None)
    return child.text.strip() if child is not None and child.text else None


def _file_time(name: str, meta_time: str | None) -> str | None:
    match = FILE_TIME.search(Path(name).name)
    if match:
        return f"{match.group(1)}-{match.group(2)}"
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y%m%d-%H%M"):
        try:
            return datetime.strptime(meta_time or "", fmt).strftime(TIME_FORMAT)
        except ValueError:
            continue
    return None


def _granularity_s(text: str | None) -> int | None:
    match = re.fullmatch(r"(\d+)\s*(min|h|s)", (text or "").strip().lower())
    if not match:
        return None
    return int(match.group(1)) * {"s": 1, "min": 60, "h": 3600}[match.group(2)]


def _demand_series(files: list[_DemandFile], nodes: Sequence[str] | None,
                   source: str) -> TrafficSeries:
    if not files:
        raise TrafficError(f"{source}: no SNDlib demand files found")
    if all(f.time for f in files):
        files = sorted(files, key=lambda f: f.time or "")
    order = list(nodes) if nodes is not None else _node_order(files)
    index = {node: i for i, node in enumerate(order)}
    tm = np.zeros((len(files), len(order), len(order)))
    for t, demand_file in enumerate(files):
        for src, dst, value in demand_file.demands:
            unknown = [n for n in (src, dst) if n not in index]
            if unknown:
                raise TrafficError(f"{demand_file.name}: demand {src} -> {dst}: unknown "
                                   f"node(s) {_listing(unknown)}")
            if src != dst:
                tm[t, index[src], index[dst]] += value
    times = tuple(f.time or "" for f in files) if all(f.time for f in files) else ()
    interval = files[0].interval_s or _interval_from_times(times)
    return TrafficSeries(tm, tuple(order), times, interval, source)


def _node_order(files: list[_DemandFile]) -> list[str]:
    order: dict[str, None] = dict.fromkeys(files[0].nodes)
    for demand_file in files:
        for src, dst, _ in demand_file.demands:
            order.setdefault(src)
            order.setdefault(dst)
    return list(order)


def _interval_from_times(times: Sequence[str]) -> int | None:
    if len(times) < 2:
        return None
    stamps = [datetime.strptime(t, TIME_FORMAT) for t in times]
    steps = np.diff([s.timestamp() for s in stamps])
    return int(np.median(steps)) if len(steps) and np.median(steps) > 0 else None


def _describe(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{len(names)} SNDlib demand files"


# -- synthetic traffic ---------------------------------------------------------------------

SYNTHETIC_STEPS = 7 * 288
"""Intervals of ``"synthetic"`` when neither the spec nor the caller names ``steps``: a week."""


def load_series(traffic: TrafficSeries | str | os.PathLike, graph: nx.DiGraph, *,
                steps: int = SYNTHETIC_STEPS, seed: int = 0) -> TrafficSeries:
    """A traffic argument as a series aligned to ``graph`` (the one resolver of every command).

    ``traffic`` is a :class:`TrafficSeries`, a ``.tm.npz`` file, or ``"synthetic"`` with
    optional :func:`synthetic_traffic` parameters (``"synthetic:steps=576,seed=3,load=0.5"``);
    ``steps`` and ``seed`` apply where the spec does not name them. Raises TrafficError for an
    empty series or a parameter :func:`synthetic_traffic` does not take.
    """
    from topologies.catalog import parse_spec

    if isinstance(traffic, TrafficSeries):
        series = traffic.aligned_to(graph)
    elif is_synthetic(traffic):
        _, params = parse_spec(str(traffic))
        values: dict[str, Any] = {"steps": steps, "seed": seed,
                                  **{key: _spec_value(value) for key, value in params.items()}}
        unknown = sorted(set(values) - _SYNTHETIC_PARAMETERS)
        if unknown:
            raise TrafficError(f"{traffic}: synthetic traffic has no parameter "
                               f"{', '.join(unknown)}; it takes "
                               f"{', '.join(sorted(_SYNTHETIC_PARAMETERS))}")
        series = synthetic_traffic(graph, **values)
    else:
        series = load_traffic(Path(traffic)).aligned_to(graph)
    if len(series) == 0:
        raise TrafficError(f"{series.source}: the series is empty")
    return series


def is_synthetic(traffic: object) -> bool:
    """Whether a traffic argument asks for :func:`synthetic_traffic` (``"synthetic[:...]"``)."""
    return isinstance(traffic, str) and traffic.partition(":")[0] == "synthetic"


def _spec_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def synthetic_traffic(graph: nx.DiGraph, steps: int, seed: int, interval_s: int = 300,
                      load: float = 0.3, *, diurnal_amplitude: float = 0.5,
                      noise: float = 0.1, bursts_per_day: float = 4.0,
                      burst_factor: float = 4.0, burst_steps: int = 6,
                      start: str = "20240101-0000") -> TrafficSeries:
    """A seeded gravity-model series between the nodes whose ``hosts`` attribute is true.

    - Gravity: node weights are drawn once per seed (log-normal); demand i -> j is
      proportional to w_i · w_j.
    - Diurnal cycle: every demand follows ``1 + a·sin(2π·(time of day − 6 h)/24 h)``,
      lowest at midnight, highest at noon, mean 1.
    - Bursts: about ``bursts_per_day`` events a day; each multiplies one random OD pair by
      ``burst_factor`` for 1..``burst_steps`` intervals.
    - Noise: multiplicative log-normal with standard deviation ``noise`` and mean 1.

    Scale: over whole days the total demand averages ``load × C / h`` (bursts add a little),
    with C the sum of all (directed) link capacities and h the mean hop count of the min-hop
    paths between host pairs. Routed on min-hop paths, that traffic occupies about
    ``load × C``: ``load`` is then the mean link utilization. Callers rescale
    (:meth:`TrafficSeries.scaled`) for other targets.

    The same seed gives the same series; different seeds give different ones.
    """
    hosts = [i for i, (_, has) in enumerate(graph.nodes(data="hosts", default=True)) if has]
    _check_synthetic_args(graph, hosts, steps, interval_s, load)
    rng = np.random.default_rng(seed)
    n = graph.number_of_nodes()
    weights = np.zeros(n)
    weights[hosts] = rng.lognormal(mean=0.0, sigma=1.0, size=len(hosts))
    base = np.outer(weights, weights)
    np.fill_diagonal(base, 0.0)
    base *= _target_total_mbps(graph, hosts, load) / base.sum()

    t0 = datetime.strptime(start, TIME_FORMAT)
    seconds = np.arange(steps) * interval_s + (t0.hour * 3600 + t0.minute * 60)
    diurnal = 1.0 + diurnal_amplitude * np.sin(2 * np.pi * (seconds % DAY_S - DAY_S / 4) / DAY_S)
    # One array of the output's size, modified in place: zoo graphs reach 197 nodes.
    tm = rng.lognormal(-noise**2 / 2, noise, size=(steps, n, n)) if noise > 0 \
        else np.ones((steps, n, n))
    tm *= base
    tm *= diurnal[:, None, None]
    _add_bursts(tm, rng, interval_s, hosts, bursts_per_day, burst_factor, burst_steps)

    times = tuple((t0 + timedelta(seconds=int(s) * interval_s)).strftime(TIME_FORMAT)
                  for s in range(steps))
    return TrafficSeries(tm, tuple(str(v) for v in graph.nodes), times, interval_s,
                         source=f"synthetic({graph.graph.get('name', '')}, seed={seed}, "
                                f"load={load})")


def _check_synthetic_args(graph: nx.DiGraph, hosts: list[int], steps: int, interval_s: int,
                          load: float) -> None:
    name = graph.graph.get("name", "topology")
    if len(hosts) < 2:
        raise TrafficError(f"{name}: synthetic traffic needs at least 2 nodes with hosts")
    if steps < 1 or interval_s < 1:
        raise TrafficError(f"{name}: steps and interval_s must be >= 1, got {steps}, "
                           f"{interval_s}")
    if not load > 0 or not math.isfinite(load):
        raise TrafficError(f"{name}: load must be positive, got {load}")


def _target_total_mbps(graph: nx.DiGraph, hosts: list[int], load: float) -> float:
    """``load × (sum of link capacities) / (mean min-hop count between host pairs)``."""
    names = list(graph.nodes)
    host_names = {names[i] for i in hosts}
    hops = [length for src in host_names
            for dst, length in nx.single_source_shortest_path_length(graph, src).items()
            if dst in host_names and dst != src]
    if len(hops) < len(host_names) * (len(host_names) - 1):
        raise TrafficError(f"{graph.graph.get('name', 'topology')}: some host pairs have "
                           "no path")
    capacity = sum(c for _, _, c in graph.edges(data="capacity_mbps"))
    return load * capacity / float(np.mean(hops))


def _add_bursts(tm: np.ndarray, rng: np.random.Generator, interval_s: int, hosts: list[int],
                per_day: float, factor: float, max_steps: int) -> None:
    steps = tm.shape[0]
    for _ in range(rng.poisson(per_day * steps * interval_s / DAY_S)):
        src, dst = rng.choice(hosts, size=2, replace=False)
        begin = int(rng.integers(steps))
        tm[begin:begin + int(rng.integers(1, max_steps + 1)), src, dst] *= factor


_SYNTHETIC_PARAMETERS = frozenset(
    name for name in inspect.signature(synthetic_traffic).parameters if name != "graph")
