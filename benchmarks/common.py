"""Shared helpers of the benchmark scripts: machine description, JSON output, data location."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from topologies.traffic import shared_data_dir


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def traffic_file(name: str) -> Path | None:
    """A file of the shared (licensed, never copied) traffic data, or None when absent."""
    path = shared_data_dir() / "traffic" / name
    return path if path.exists() else None


def shared_case(topology: str, traffic_name: str):
    """``(graph, series aligned to it)`` of a shared traffic file, or None when it is absent."""
    from topologies.catalog import load_topology
    from topologies.traffic import load_traffic

    path = traffic_file(traffic_name)
    if path is None:
        return None
    graph = load_topology(topology)
    return graph, load_traffic(path).aligned_to(graph)


def emit(result: dict[str, Any], out: str | None) -> None:
    """Print the JSON document, and write it to ``out`` when given."""
    document = {"machine": machine(), "command": " ".join(sys.argv), **result}
    text = json.dumps(document, indent=1)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
