"""Adaptation beside a running controller, in its own process.

Every poll it reads the controller's latest measured OD matrix over REST, feeds it to an
:class:`~agents.adapt.Adapter`, and when the adapter has a fine-tuned candidate that beats the
current model on held-back recent matrices, writes it to a model file and asks the controller
to hot-swap it (``PUT /te/v1/model``, with the token). The controller validates the file like
any other model and keeps the current one if it refuses it. Training never runs in the
controller's process, so it never delays a decision.

    python -m agents.adapt_service --url http://127.0.0.1:8080 --topology abilene \\
        --model default --out-dir runs/adapt      # what `ryute controller --adapt` starts
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from agents.adapt import AdaptConfig, Adapter
from agents.model_file import load_agent, read_model, resolve_model, save_model
from api.client import ApiError, ControllerClient
from sim.paths import PathSet
from topologies.catalog import load_topology

LOG = logging.getLogger("ryute.adapt")


class AdaptationService:
    """One controller, one adapter; :meth:`poll_once` is one round of the loop."""

    def __init__(self, url: str, token: str | None, adapter: Adapter, out_dir: Path) -> None:
        self.api = ControllerClient(url, token)
        self.adapter = adapter
        self.out_dir = Path(out_dir)
        self.last_update: float | None = None
        self.published: list[Path] = []

    def poll_once(self) -> Path | None:
        """Observe the newest matrix (if new); fine-tune when due; publish a better model."""
        traffic = self.api.traffic(units="topology")
        updated = traffic.get("updated_at")
        if updated is None or updated == self.last_update or not traffic["od_mbps"]:
            return None
        self.last_update = updated
        self.adapter.observe(np.asarray(traffic["od_mbps"], dtype=np.float64))
        candidate = self.adapter.step()
        if candidate is None:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"adapted-{self.adapter.stats.published:04d}.zip"
        metadata = {k: v for k, v in candidate.metadata.items() if k not in ("id", "path")}
        save_model(path, candidate, metadata)
        try:
            answer = self.api.put_model(str(path.resolve()))
            LOG.info("published %s (held-back gain %.4f): controller runs %s", path,
                     self.adapter.stats.last_gain, answer.get("model"))
        except ApiError as error:
            if error.status is None:
                raise  # unreachable: the loop counts it
            LOG.error("controller refused %s: %s", path, error.reason)
            return None
        self.published.append(path)
        return path


def build(url: str, token: str | None, topology: str, model: str, out_dir: Path,
          config: AdaptConfig | None = None) -> AdaptationService:
    """The service for ``model`` on ``topology``, with the path set the model was trained on."""
    graph = load_topology(topology)
    metadata, _ = read_model(resolve_model(model, topology))
    paths = metadata.get("path_set", {})
    path_set = PathSet.from_graph(graph, k=int(paths.get("k", 4)),
                                  method=str(paths.get("method", "hops")))
    agent = load_agent(model, path_set, topology)
    return AdaptationService(url, token, Adapter(agent, graph, config), out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.adapt_service",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="controller REST API")
    parser.add_argument("--topology", required=True)
    parser.add_argument("--model", required=True, help="model file, or 'default'")
    parser.add_argument("--out-dir", type=Path, required=True, help="where adapted models go")
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval in seconds")
    parser.add_argument("--every", type=int, default=AdaptConfig.every,
                        help="new matrices between fine-tuning rounds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from agents.agent import set_torch_threads

    set_torch_threads()
    service = build(args.url, os.environ.get("RYUTE_API_TOKEN"), args.topology, args.model,
                    args.out_dir, AdaptConfig(every=args.every))
    parent, failures = os.getppid(), 0
    while os.getppid() == parent:  # the controller that started us is gone: so are we
        try:
            service.poll_once()
            failures = 0
        except (ApiError, OSError, ValueError) as error:
            failures += 1
            LOG.warning("poll failed (%d in a row): %s", failures, error)
            if failures >= 30:
                LOG.error("controller unreachable; adaptation stops")
                return 1
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
