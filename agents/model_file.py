"""Model files: one zip per trained agent, safe to load (no code runs from the file).

Layout of the zip::

    manifest.json    {"format": "ryute-model-1", "sha256": {"weights.pt": ..., "metadata.json": ...}}
    metadata.json    topology and path-set fingerprints, encoding, network, training data, scores,
                     library versions (see :func:`save_model`)
    weights.pt       the network's ``state_dict``: tensors only, read with
                     ``torch.load(weights_only=True)``; parameters float32 or float16
                     (``network.weights_dtype``), loaded as float32

Shipped defaults (``--model default`` -> ``agents/models/NAME.zip``): one model per topology,
trained on the whole shared real series *and* synthetic series of the project's generator (see
:mod:`agents.train`), so the same file serves the real series and the demo's synthetic traffic.

Loading checks, in this order: it is a zip with these members, the checksums match, the metadata
is JSON of the known format, the model was trained for this topology and path set (else a message
naming both topologies), and the weights fit the network the metadata describes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import platform
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.agent import AgentPolicy, PathNet, SplitNet, set_torch_threads
from sim.envs.encoding import Encoding
from sim.paths import PathSet

log = logging.getLogger(__name__)

FORMAT = "ryute-model-1"
MEMBERS = ("manifest.json", "metadata.json", "weights.pt")
#: A model file larger than this is refused before anything is read (the shipped ones are < 3 MB).
MAX_BYTES = 256 * 2**20
DEFAULT_DIR = Path(__file__).resolve().parent / "models"
#: The embedded default for every network without a shipped model (see agents.generalist).
GENERALIST = DEFAULT_DIR / "generalist.zip"


class ModelFileError(ValueError):
    """A model file that cannot be used; the message says which file and why."""


# ---------------------------------------------------------------------- fingerprints
def topology_fingerprint(path_set: PathSet) -> dict[str, Any]:
    """Nodes, directed links with capacities, and their sha256: what a model is bound to."""
    doc = {
        "nodes": [str(n) for n in path_set.nodes],
        "links": [[str(u), str(v), float(c)] for (u, v), c in
                  zip(path_set.edges, path_set.capacities)],
    }
    blob = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return {**doc, "sha256": hashlib.sha256(blob).hexdigest()}


def path_set_fingerprint(path_set: PathSet) -> dict[str, Any]:
    return {"k": path_set.k, "method": path_set.method, "n_paths": path_set.n_paths,
            "n_candidates": int(path_set.candidate.sum()), "sha256": path_set.fingerprint()}


def library_versions() -> dict[str, str]:
    import scipy

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "numpy": np.__version__, "scipy": scipy.__version__}
    for name in ("stable_baselines3", "gymnasium"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions["ryute"] = version("ryute")
    except PackageNotFoundError:  # a source tree without `pip install -e .`
        versions["ryute"] = "source"

    return versions


# ---------------------------------------------------------------------- save
def save_model(path: str | os.PathLike, agent: AgentPolicy, metadata: dict[str, Any],
               weights_dtype: str = "float32") -> Path:
    """Write ``agent`` (network + encoding) and ``metadata`` (training description: ``topology``
    name, ``training``, ``config``, ``validation``...) to the zip ``path``, atomically.

    The fingerprints, encoding, network shape and library versions are added here, so every file
    carries them whoever calls this. ``weights_dtype="float16"`` stores the network's parameters
    (Linear weights and biases) in half precision, half the size; buffers (normalization, prior)
    stay float32 and loading turns everything back into float32. :func:`agents.train.train`
    checks on the validation slice that the rounding is harmless before it asks for it.
    """
    if weights_dtype not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be float32 or float16, got {weights_dtype!r}")
    path = Path(path)
    enc = agent.encoding
    net = agent.net
    meta = {
        **metadata,
        "format": FORMAT,
        "created": metadata.get("created") or datetime.now(timezone.utc).isoformat(
            timespec="seconds"),
        "topology": {"name": metadata.get("topology", {}).get("name", "")
                     if isinstance(metadata.get("topology"), dict)
                     else str(metadata.get("topology", "")),
                     **topology_fingerprint(enc.path_set)},
        "path_set": path_set_fingerprint(enc.path_set),
        "encoding": {"history": enc.history, "scale_reference": enc.scale_reference,
                     "logit_scale": enc.logit_scale, "n_actions": enc.n_actions,
                     "n_observations": enc.n_observations},
        "network": {**_network_shape(net), "n_actions": enc.n_actions,
                    "weights_dtype": weights_dtype},
        "versions": library_versions(),
    }
    buffer = io.BytesIO()
    parameters = {name for name, _ in net.named_parameters()}
    torch.save({k: (v.half() if k in parameters and weights_dtype == "float16" else v)
                .detach().cpu().contiguous() for k, v in net.state_dict().items()}, buffer)
    weights = buffer.getvalue()
    meta_bytes = json.dumps(meta, indent=1, sort_keys=True).encode()
    manifest = {"format": FORMAT, "sha256": {"weights.pt": _sha(weights),
                                             "metadata.json": _sha(meta_bytes)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=1))
        z.writestr("metadata.json", meta_bytes)
        z.writestr("weights.pt", weights)
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------- load
def resolve_model(spec: str | os.PathLike, topology: str = "",
                  path_set: PathSet | None = None) -> Path:
    """The file of ``spec``: a path, or ``"default"`` (see :func:`resolve_default`)."""
    if str(spec) != "default":
        return Path(spec)
    return resolve_default(topology, path_set)[0]


def resolve_default(topology: str = "", path_set: PathSet | None = None) -> tuple[Path, str]:
    """``(file, why)`` of ``--model default``: the shipped model of ``topology``
    (``agents/models/NAME.zip``) when there is one and (given ``path_set``) it was trained for
    that very network and path set; else the generalist (:data:`GENERALIST`), trained on many
    networks, none of them this one."""
    name = Path(topology).stem if topology else ""
    own = DEFAULT_DIR / f"{name}.zip"
    why = f"no shipped model for topology {name or '(unnamed)'!r}"
    if name and own.is_file() and name != GENERALIST.stem:
        if path_set is None:
            return own, f"the shipped model of {name}"
        try:
            check_topology(read_model(own)[0], path_set, f"shipped model {own.name}", name)
            return own, f"the shipped model of {name}"
        except ModelFileError as mismatch:
            why = str(mismatch)
    if not GENERALIST.is_file():
        shipped = sorted(p.stem for p in DEFAULT_DIR.glob("*.zip"))
        raise ModelFileError(f"{why}, and no generalist model {GENERALIST}; shipped: "
                             f"{', '.join(shipped) or 'none'}")
    return GENERALIST, f"the generalist ({why})"


def read_model(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(metadata, state_dict)`` of a model file, checksums verified; no topology check."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ModelFileError(f"{path}: {path.stat().st_size} bytes, larger than any model")
        with zipfile.ZipFile(path) as z:
            missing = [m for m in MEMBERS if m not in z.namelist()]
            if missing:
                raise ModelFileError(f"{path}: not a ryute model file (missing {', '.join(missing)})")
            blobs = {m: z.read(m) for m in MEMBERS}
    except FileNotFoundError:
        raise FileNotFoundError(f"model file {path} not found") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise ModelFileError(f"{path}: corrupt or not a model file ({e})") from None
    try:
        manifest = json.loads(blobs["manifest.json"])
        expected = manifest["sha256"]
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{path}: unreadable manifest ({e})") from None
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    for member in ("metadata.json", "weights.pt"):
        if expected.get(member) != _sha(blobs[member]):
            raise ModelFileError(f"{path}: checksum mismatch for {member}: the file is corrupt "
                                 "or was modified")
    try:
        metadata = json.loads(blobs["metadata.json"])
        # weights_only: tensors and plain containers only; nothing in the file can run code.
        state = torch.load(io.BytesIO(blobs["weights.pt"]), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, TypeError, AttributeError,
            EOFError, OSError) as e:  # any decoding failure is a corrupt file to the caller
        raise ModelFileError(f"{path}: cannot decode ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: weights.pt is not a state_dict of tensors")
    return metadata, state


def check_topology(
    metadata: dict[str, Any], path_set: PathSet, source: str = "model", name: str = ""
) -> None:
    """Raise :class:`ModelFileError` unless the model was trained for ``path_set``'s network and
    path set; the message names both topologies."""
    topo = metadata.get("topology", {})
    here = topology_fingerprint(path_set)
    trained = (f"{topo.get('name') or 'an unnamed topology'} ({len(topo.get('nodes', []))} nodes, "
               f"{len(topo.get('links', []))} links)")
    if topo.get("sha256") != here["sha256"]:
        names = set(map(str, topo.get("nodes", [])))
        differ = [n for n in here["nodes"] if n not in names][:3]
        hint = f"; nodes not in the model: {', '.join(differ)}" if differ else \
            "; same nodes, different links or capacities"
        raise ModelFileError(
            f"{source} was trained for topology {trained}, not for {name or 'this network'} "
            f"({len(here['nodes'])} nodes, {len(here['links'])} links, e.g. "
            f"{', '.join(here['nodes'][:3])}){hint}")
    ps = metadata.get("path_set", {})
    if ps.get("sha256") != path_set.fingerprint():
        raise ModelFileError(
            f"{source} was trained for {trained} with k={ps.get('k')} {ps.get('method')} paths; "
            f"this path set has k={path_set.k} {path_set.method} paths "
            f"({path_set.fingerprint()[:12]} != {str(ps.get('sha256'))[:12]})")


def _network_shape(net: SplitNet | PathNet) -> dict[str, Any]:
    """What rebuilds ``net`` (with the encoding) before its weights are loaded."""
    if isinstance(net, PathNet):
        return {"class": "PathNet", "hidden": net.hidden, "rounds": net.rounds,
                "trend": net.trend}
    return {"class": "SplitNet", "n_inputs": len(net.index),
            "hidden": [m.out_features for m in net.body if isinstance(m, torch.nn.Linear)]}


def _network(shape: dict[str, Any], encoding: Encoding) -> SplitNet | PathNet:
    kind = shape.get("class", "SplitNet")
    if kind == "PathNet":
        return PathNet(encoding, int(shape["hidden"]), int(shape["rounds"]),
                       bool(shape.get("trend", False)))
    if kind == "SplitNet":
        return SplitNet(np.zeros(int(shape["n_inputs"]), np.int64), int(shape["n_actions"]),
                        [int(h) for h in shape["hidden"]])
    raise ValueError(f"unknown network class {kind!r}")


def load_agent(
    spec: str | os.PathLike, path_set: PathSet, topology: str = "", transfer: bool = False
) -> AgentPolicy:
    """The agent stored in model file ``spec`` (a path or ``"default"``) for ``path_set``.

    ``topology`` names the network (used to find the default and in messages). Raises
    :class:`ModelFileError` for a corrupt file or a model of another topology,
    ``FileNotFoundError`` when the file does not exist.

    ``transfer``: a topology-aware model (``PathNet``) trained on another topology is accepted
    and its shared weights rebuilt on ``path_set`` (``metadata["transferred_from"]`` names the
    training topology; the training statistics of the shares, which belong to that topology's
    OD pairs, are dropped, so the adapter's share-drift check does not apply). Other models are
    still refused.
    """
    # Decisions are small: one torch thread (RYUTE_TORCH_THREADS), else on a busy machine its
    # threads wait for each other (a 3.6 ms Abilene decision took 230 ms with two).
    set_torch_threads()
    resolved = ""
    if str(spec) == "default":
        path, resolved = resolve_default(topology, path_set)
        log.info("model default: %s (%s)", path.name, resolved)
    else:
        path = Path(spec)
    metadata, state = read_model(path)
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: metadata format {metadata.get('format')!r}")
    generalist = isinstance(metadata.get("generalist"), dict)
    if generalist and metadata.get("network", {}).get("class") != "PathNet":
        raise ModelFileError(f"{path}: a generalist model must be a PathNet")
    try:
        check_topology(metadata, path_set, f"model {path}",
                       Path(topology).stem if topology else "")
    except ModelFileError as refusal:
        if not (transfer or generalist) or metadata.get("network", {}).get("class") != "PathNet":
            raise
        if not generalist:
            log.info("%s: transferred to this topology (%s)", path, refusal)
        state = {k: v for k, v in state.items() if k not in ("index", "mean", "std")}
        # Observation statistics describe the training topology's traffic: no drift reference.
        metadata = {**metadata, "transferred_from": metadata.get("topology", {}).get("name"),
                    "observation": {}}
    if generalist:
        # It reads traffic shares only: its encoding's scale says nothing about this network.
        metadata = {**metadata, "scale_free": True}
    if resolved:
        metadata = {**metadata, "resolved": f"default: {path.name}, {resolved}"}
    try:
        e, n = metadata["encoding"], metadata["network"]
        encoding = Encoding(path_set, float(e["scale_reference"]), int(e["history"]),
                            float(e["logit_scale"]))
        net = _network(n, encoding)
        net.load_state_dict(state, strict="transferred_from" not in metadata)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{path}: weights do not match the described network ({err})") \
            from None
    if int(net.index.max()) >= encoding.n_observations or (
            encoding.n_actions != n["n_actions"] and "transferred_from" not in metadata):
        raise ModelFileError(f"{path}: network does not fit the encoding of this path set")
    metadata = {**metadata, "id": metadata.get("id") or f"{path.name}:{_sha(path.read_bytes())[:12]}",
                "path": str(path)}
    return AgentPolicy(net, encoding, metadata)


def make_agent_policy(
    path_set: PathSet, graph: Any, model: str | os.PathLike = "default", topology: str = "",
    adapt: bool = False, transfer: bool = False,
):
    """The ``agent`` method of ``ryute evaluate``: the model's policy, wrapped in an
    :class:`~agents.adapt.AdaptivePolicy` with ``adapt`` (fine-tunes on past matrices only);
    ``transfer`` lets a topology-aware model decide on another topology (see load_agent)."""
    agent = load_agent(model, path_set, topology, transfer=transfer)
    if not adapt:
        return agent
    from agents.adapt import AdaptivePolicy

    return AdaptivePolicy(agent, graph)
