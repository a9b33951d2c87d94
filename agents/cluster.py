"""Ray, when one machine is outgrown: the costly, independent parts of a training or
evaluation run (path sets, LP optima, held-out scores) as Ray tasks.

Ray is an optional extra (``pip install ryute[cluster]``). ``ray_map(f, jobs, "local")`` starts
a local Ray (``ray.init()``); any other address joins that cluster. Results come back in the
order of ``jobs``, so a run that builds on them is the same whether the work ran here or on
Ray (each job must be a pure function of its arguments, e.g. with its own random stream).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


def ray_map(function: Callable[..., Any], jobs: Sequence[tuple[Any, ...]],
            address: str = "local") -> list[Any]:
    """``[function(*job) for job in jobs]``, each call a Ray task, in order."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("Ray is not installed: pip install 'ryute[cluster]' (or drop "
                           "--ray-address)") from None
    if not ray.is_initialized():
        # Ray starts local workers at niceness 15: on a shared machine they would yield to
        # everything else, though they are the run's own work.
        os.environ.setdefault("RAY_worker_niceness", "0")
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        log.info("Ray: %s CPUs", ray.cluster_resources().get("CPU"))
    remote = ray.remote(function)
    return ray.get([remote.remote(*job) for job in jobs])
