"""Flow exports to OD traffic matrices: the outputs of the common open collectors.

Readers turn one collector's output into :class:`Flow` records; :func:`aggregate` sums them
into a :class:`~topologies.traffic.TrafficSeries` by ingress and egress node, with a
:class:`NodeMap` (the mapping file) from router addresses and prefixes to the topology's nodes:

- **ingress** node: the router that exported the record (nfdump ``ra``, pmacct
  ``peer_src_ip``), when the mapping names it; else the node of the source address's prefix;
- **egress** node: the BGP next hop (nfdump ``nhb``, pmacct ``peer_dst_ip``: the egress
  router's address), when the mapping names it; else the node of the destination prefix.

A record whose ingress or egress is unknown, whose two ends are one node, or that was exported
by a router other than the node its source prefix attaches to (seen in transit, so counted
where it entered) is dropped, and the :class:`FlowReport` says how many bytes each reason cost.
A record spanning several intervals is spread over them in proportion to its duration.

Formats (``docs/formats.md`` has examples):

``nfdump``
    ``nfdump -o csv`` (nfdump 1.6 and 1.7: a fixed header ``ts,te,td,sa,da,...,ra,eng,exid,tr``;
    ``ts``/``te`` in the local time of the machine that ran nfdump; the ``Summary`` block
    after the records is skipped).
``pmacct``
    The ``print`` plugin's ``print_output: csv`` (a header of the aggregated primitives,
    ``PEER_SRC_IP,...,PACKETS,BYTES``) or ``print_output: json`` (one object per line). Time
    from ``stamp_inserted`` (``print_history``), ``timestamp_start``, or else from the file name
    (``print_output_file`` with ``%Y%m%d-%H%M``).
"""
from __future__ import annotations

import csv
import functools
import ipaddress
import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from topologies.traffic import FILE_TIME, TIME_FORMAT, TrafficError, TrafficSeries

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
NO_ADDRESS = {"", "0.0.0.0", "::", "0", "-"}  # what collectors print for a field they lack


@dataclass(frozen=True)
class Flow:
    """One flow record: ``start``/``end`` in seconds (times without a zone taken as UTC),
    ``bytes``, and the addresses the node mapping reads (None: the collector did not have it)."""

    start: float
    end: float
    bytes: float
    exporter: str | None = None
    next_hop: str | None = None
    src: str | None = None
    dst: str | None = None


# -- the mapping file ------------------------------------------------------------------------

@dataclass
class NodeMap:
    """Router addresses and prefixes to node names (``{"routers": {ADDRESS: NODE},
    "prefixes": {PREFIX: NODE}}``); the longest matching prefix wins."""

    routers: dict[Address, str]
    prefixes: dict[int, list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]]
    _matched: dict[str, str | None] = field(default_factory=dict, repr=False)  # address -> node

    @classmethod
    def from_file(cls, path: str | Path, nodes: Sequence[str]) -> NodeMap:
        source = str(path)
        try:
            data = json.loads(Path(path).read_text())
        except OSError as error:
            raise TrafficError(f"{source}: cannot read the mapping: "
                               f"{error.strerror or error}") from None
        except (json.JSONDecodeError, RecursionError) as error:
            raise TrafficError(f"{source}: not valid JSON: {error}") from None
        return cls.from_mapping(data, nodes, source)

    @classmethod
    def from_mapping(cls, data: Any, nodes: Sequence[str], source: str = "mapping") -> NodeMap:
        if not isinstance(data, dict) or not set(data) <= {"routers", "prefixes"} or not data:
            raise TrafficError(f"{source}: expected an object with 'routers' and/or "
                               "'prefixes' ({address or prefix: node})")
        known = set(nodes)

        def node(value: Any, key: str) -> str:
            if not isinstance(value, str) or value not in known:
                raise TrafficError(f"{source}: {key} maps to {value!r}, not a node of the "
                                   f"topology ({', '.join(list(nodes)[:5])}, ...)")
            return value

        routers: dict[Address, str] = {}
        for key, value in _table(data, "routers", source).items():
            routers[_parse(ipaddress.ip_address, key, "router address", source)] = node(value, key)
        prefixes: dict[int, list[Any]] = {}
        for key, value in _table(data, "prefixes", source).items():
            network = _parse(functools.partial(ipaddress.ip_network, strict=False), key,
                             "prefix", source)
            prefixes.setdefault(network.version, []).append((network, node(value, key)))
        for entries in prefixes.values():
            entries.sort(key=lambda entry: -entry[0].prefixlen)
        return cls(routers, prefixes)

    def router(self, text: str | None) -> str | None:
        address = _address(text)
        return self.routers.get(address) if address is not None else None

    def prefix(self, text: str | None) -> str | None:
        """The node of the longest prefix holding address ``text`` (remembered: flow exports
        repeat their addresses)."""
        if not text:
            return None
        if text not in self._matched:
            self._matched[text] = self._longest_match(_address(text))
        return self._matched[text]

    def _longest_match(self, address: Address | None) -> str | None:
        if address is None:
            return None
        for network, name in self.prefixes.get(address.version, ()):
            if address in network:
                return name
        return None


def _table(data: dict, key: str, source: str) -> dict:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise TrafficError(f"{source}: '{key}' must be an object {{address: node}}")
    return table


def _parse(parse: Callable[[str], Any], text: Any, what: str, source: str) -> Any:
    try:
        return parse(str(text))
    except ValueError:
        raise TrafficError(f"{source}: {text!r} is not a valid {what}") from None


def _address(text: str | None) -> Address | None:
    if text is None or text.strip() in NO_ADDRESS:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


# -- aggregation -------------------------------------------------------------------------------

@dataclass
class FlowReport:
    """What an import read and what it dropped, in records and bytes."""

    records: int = 0
    bytes: float = 0.0
    kept_bytes: float = 0.0
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> records
    dropped_bytes: defaultdict[str, float] = field(
        default_factory=lambda: defaultdict(float))  # reason -> bytes

    def drop(self, reason: str, flow: Flow) -> None:
        self.dropped[reason] += 1
        self.dropped_bytes[reason] += flow.bytes

    def summary(self) -> str:
        kept = 100 * self.kept_bytes / self.bytes if self.bytes else 0.0
        parts = [f"{self.records} records, {self.bytes:.6g} bytes; {kept:.1f} % of the bytes "
                 "mapped to OD pairs"]
        parts += [f"dropped ({reason}): {count} records, "
                  f"{100 * self.dropped_bytes[reason] / self.bytes:.2g} % of the bytes"
                  for reason, count in sorted(self.dropped.items())]
        return "; ".join(parts)


def od_pair(flow: Flow, mapping: NodeMap) -> tuple[str, str] | str:
    """The (ingress, egress) nodes of ``flow``, or why it has none."""
    exporter, source = mapping.router(flow.exporter), mapping.prefix(flow.src)
    if exporter is not None and source is not None and exporter != source:
        return "exported away from its ingress"
    ingress = exporter or source
    egress = mapping.router(flow.next_hop) or mapping.prefix(flow.dst)
    if ingress is None:
        return "no ingress node"
    if egress is None:
        return "no egress node"
    if ingress == egress:
        return "inside one node"
    return ingress, egress


def aggregate(flows: Iterable[Flow], mapping: NodeMap, nodes: Sequence[str], interval_s: int,
              sampling_rate: float = 1.0, source: str = "flows") -> tuple[TrafficSeries, FlowReport]:
    """The series of mean demands (Mbit/s) per ``interval_s`` (intervals aligned to multiples
    of it; one without records is missing, all zero), and the report."""
    if interval_s <= 0 or not sampling_rate > 0:
        raise TrafficError("the interval and the sampling rate must be > 0")
    index = {name: i for i, name in enumerate(nodes)}
    volume: defaultdict[tuple[int, int, int], float] = defaultdict(float)  # (t, i, j) -> bytes
    report = FlowReport()
    for flow in flows:
        report.records += 1
        report.bytes += flow.bytes
        pair = od_pair(flow, mapping)
        if isinstance(pair, str):
            report.drop(pair, flow)
            continue
        report.kept_bytes += flow.bytes
        i, j = index[pair[0]], index[pair[1]]
        for interval, share in _spread(flow.start, flow.end, interval_s):
            volume[interval, i, j] += flow.bytes * share
    if not volume:
        raise TrafficError(f"{source}: no flow maps to an OD pair of the topology "
                           f"({report.summary()}); check the mapping file")
    first, last = min(key[0] for key in volume), max(key[0] for key in volume)
    tm = np.zeros((last - first + 1, len(nodes), len(nodes)))
    for (interval, i, j), total in volume.items():
        tm[interval - first, i, j] = total * sampling_rate * 8 / 1e6 / interval_s
    times = tuple(datetime.fromtimestamp(t * interval_s, timezone.utc).strftime(TIME_FORMAT)
                  for t in range(first, last + 1))
    return TrafficSeries(tm, tuple(nodes), times, interval_s, source), report


def _spread(start: float, end: float, interval_s: int) -> Iterator[tuple[int, float]]:
    """(interval, share of the bytes) of a record active from ``start`` to ``end``."""
    first = math.floor(start / interval_s)
    if end <= start:
        yield first, 1.0
        return
    last = math.ceil(end / interval_s) - 1
    for interval in range(first, last + 1):
        overlap = min(end, (interval + 1) * interval_s) - max(start, interval * interval_s)
        if overlap > 0:
            yield interval, overlap / (end - start)


# -- readers -----------------------------------------------------------------------------------

def read_nfdump_csv(path: Path) -> Iterator[Flow]:
    """Records of ``nfdump -o csv`` output (see the module docstring)."""
    with _open(path) as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        columns = _columns(header, ("ts", "te", "sa", "da", "ibyt"), path,
                           "nfdump CSV (nfdump -o csv)")
        for line, row in enumerate(rows, start=2):
            if not row or not "".join(row).strip():
                continue
            if row[0].strip() == "Summary":  # nfdump's totals follow the records
                return
            value = _row(row, columns, path, line)
            yield Flow(start=_time(value("ts"), path, line), end=_time(value("te"), path, line),
                       bytes=_number(value("ibyt"), path, line), exporter=value("ra"),
                       next_hop=value("nhb"), src=value("sa"), dst=value("da"))


PMACCT_CSV = {"PEER_SRC_IP": "exporter", "PEER_DST_IP": "next_hop", "SRC_IP": "src",
              "DST_IP": "dst"}
PMACCT_JSON = {"peer_ip_src": "exporter", "peer_ip_dst": "next_hop", "ip_src": "src",
               "ip_dst": "dst"}


def read_pmacct(path: Path) -> Iterator[Flow]:
    """Records of the pmacct ``print`` plugin, CSV or JSON (told apart by the first line)."""
    with _open(path) as handle:
        # print_markers (--START (pid)--, --END (pid)--) frame each purge: not records
        lines = ((number, text) for number, text in enumerate(handle, start=1)
                 if text.strip() and not text.startswith("--"))
        first = next(lines, None)
        if first is None:
            return
        if first[1].lstrip().startswith("{"):
            yield from _pmacct_json(itertools.chain([first], lines), path)
        else:
            yield from _pmacct_csv(first[1], lines, path)


def _pmacct_csv(header: str, lines: Iterator[tuple[int, str]], path: Path) -> Iterator[Flow]:
    separator = next((sep for sep in (",", ";", "|", "\t")
                      if "BYTES" in header.strip().split(sep)), ",")
    columns = _columns(next(csv.reader([header], delimiter=separator)), ("BYTES",), path,
                       "pmacct print CSV (a header with BYTES)")
    if not {"PEER_SRC_IP", "SRC_IP"} & set(columns):
        raise TrafficError(f"{path}: no ingress in the records: aggregate peer_src_ip or "
                           "src_host")
    file_time = _file_time(path)
    for line, text in lines:
        row = next(csv.reader([text], delimiter=separator))
        value = _row(row, columns, path, line)
        start = _pmacct_time(value("STAMP_INSERTED") or value("TIMESTAMP_START"), file_time,
                             path, line)
        end = value("TIMESTAMP_END")
        yield Flow(start=start, end=_time(end, path, line) if end else start,
                   bytes=_number(value("BYTES"), path, line),
                   **{name: value(key) for key, name in PMACCT_CSV.items()})


def _pmacct_json(lines: Iterable[tuple[int, str]], path: Path) -> Iterator[Flow]:
    file_time = _file_time(path)
    for line, text in lines:
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            raise TrafficError(f"{path}:{line}: not a JSON object: {error}") from None
        if not isinstance(record, dict):
            raise TrafficError(f"{path}:{line}: not a JSON object")
        if record.get("event_type", "purge") != "purge" or "bytes" not in record:
            continue  # print_markers (purge_init, purge_close) carry no traffic
        start = _pmacct_time(record.get("stamp_inserted") or record.get("timestamp_start"),
                             file_time, path, line)
        end = record.get("timestamp_end")
        yield Flow(start=start, end=_time(str(end), path, line) if end else start,
                   bytes=_number(record["bytes"], path, line),
                   **{name: _text(record.get(key)) for key, name in PMACCT_JSON.items()})


READERS: dict[str, Callable[[Path], Iterator[Flow]]] = {"nfdump": read_nfdump_csv,
                                                        "pmacct": read_pmacct}


def import_flows(fmt: str, sources: Sequence[str | Path], mapping: str | Path,
                 nodes: Sequence[str], interval_s: int = 300,
                 sampling_rate: float = 1.0) -> tuple[TrafficSeries, FlowReport]:
    """Read every file of ``sources`` (files, or folders of files) in format ``fmt`` and
    aggregate them (see :func:`aggregate`)."""
    if fmt not in READERS:
        raise TrafficError(f"unknown flow format {fmt!r}; known: {', '.join(READERS)}")
    node_map = NodeMap.from_file(mapping, nodes)
    paths = [path for source in sources for path in _files(Path(source))]
    flows = (flow for path in paths for flow in READERS[fmt](path))
    return aggregate(flows, node_map, nodes, interval_s, sampling_rate,
                     source=", ".join(str(s) for s in sources))


def _files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise TrafficError(f"{source}: an empty folder")
        return files
    if not source.is_file():
        raise TrafficError(f"{source}: no such file or directory")
    return [source]


def _open(path: Path):
    try:
        return open(path, newline="", encoding="utf-8", errors="replace")
    except OSError as error:
        raise TrafficError(f"{path}: cannot read: {error.strerror or error}") from None


def _columns(header: list[str] | None, required: Sequence[str], path: Path,
             what: str) -> dict[str, int]:
    columns = {name.strip(): i for i, name in enumerate(header or [])}
    missing = [name for name in required if name not in columns]
    if missing:
        raise TrafficError(f"{path}: not {what}: no column {', '.join(missing)} in the first "
                           f"line")
    return columns


def _row(row: list[str], columns: dict[str, int], path: Path, line: int):
    if len(row) < len(columns):
        raise TrafficError(f"{path}:{line}: {len(row)} fields, the header has {len(columns)}")

    def value(name: str) -> str | None:
        return row[columns[name]].strip() if name in columns else None
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(text: Any, path: Path, line: int) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise TrafficError(f"{path}:{line}: {text!r} is not a byte count") from None
    if not math.isfinite(value) or value < 0:
        raise TrafficError(f"{path}:{line}: {text!r} is not a byte count")
    return value


def _time(text: str | None, path: Path, line: int) -> float:
    """Seconds of ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (taken as UTC), RFC 3339 (with its zone)
    or epoch seconds (pmacct's ``timestamps_since_epoch``)."""
    text = (text or "").strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TrafficError(f"{path}:{line}: {text!r} is not a time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _pmacct_time(text: str | None, file_time: float | None, path: Path, line: int) -> float:
    if text:
        return _time(text, path, line)
    if file_time is None:
        raise TrafficError(f"{path}:{line}: the record has no time: set print_history "
                           "(stamp_inserted), aggregate timestamp_start, or put %Y%m%d-%H%M "
                           "in print_output_file")
    return file_time


def _file_time(path: Path) -> float | None:
    found = FILE_TIME.search(path.name)
    if not found:
        return None
    moment = datetime.strptime(f"{found.group(1)}-{found.group(2)}", TIME_FORMAT)
    return moment.replace(tzinfo=timezone.utc).timestamp()
