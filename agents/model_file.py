"""Model files: one zip per trained agent, safe to load (no code runs from the file).

Layout of the zip::

    manifest.json    {"format": "ryute-model-1", "sha256": {"weights.pt": ..., "metadata.json": ...}}
    metadata.json    topology and path-set fingerprints, encoding, network, training data, scores,
                     library versions (see :func:`save_model`)
    weights.pt       the network's ``state_dict``: tensors only, read with
                     ``torch.load(weights_only=True)``; parameters float32 or float16
                     (``network.weights_dtype``), loaded as float32

Shipped defaults (``--model default``, :func:`resolve_default`): ``agents/models/NAME.zip`` for
the topologies that have their own model (trained on the whole shared real series *and*
synthetic series of the project's generator, see :mod:`agents.train`), when its fingerprint
matches the network; else ``agents/models/generalist.zip``, one PathNet trained on many
topologies (:mod:`agents.generalist`), which decides on any network.

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
import re
import stat
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.agent import AgentPolicy, PathNet, SplitNet, set_torch_threads
from sim.envs.encoding import Encoding
from sim.paths import DEFAULT_K, DEFAULT_METHOD, PathSet
from sim.paths import METHODS as PATH_METHODS

log = logging.getLogger(__name__)

FORMAT = "ryute-model-1"
MEMBERS = ("manifest.json", "metadata.json", "weights.pt")
#: A model file larger than this is refused before anything is read (the shipped ones are < 3 MB).
MAX_BYTES = 256 * 2**20
#: What each member may inflate to, checked in the zip directory and again while reading.
SIGNATURE_MEMBER = "signature.json"
MEMBER_LIMITS = {"manifest.json": 64 * 2**10, "metadata.json": 16 * 2**20,
                 "weights.pt": MAX_BYTES, SIGNATURE_MEMBER: 4 * 2**10}
#: Trusted public keys: a PEM file or folder (see agents.model_signing), or already loaded.
TrustedKeys = str | os.PathLike | dict | None
MAX_JSON_DEPTH = 32
#: Shape limits, checked from the metadata before the network is built (anything allocated).
MAX_HIDDEN = 4096
MAX_LAYERS = 16
MAX_ROUNDS = 64
MAX_HISTORY = 1024
MAX_PARAMETERS = 64 * 2**20
DEFAULT_DIR = Path(__file__).resolve().parent / "models"
#: The embedded default for every network without a shipped model (see agents.generalist).
GENERALIST = DEFAULT_DIR / "generalist.zip"


class ModelFileError(ValueError):
    """A model file that cannot be used; the message says which file and why, in one line
    (torch's own messages, quoted in it, span several)."""

    def __init__(self, message: str) -> None:
        super().__init__(re.sub(r"\s*\n\s*", " ", message))


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


DEFAULT_PATHS = (DEFAULT_K, DEFAULT_METHOD)


def paths_of(metadata: dict[str, Any]) -> tuple[int, str]:
    """The candidate paths ``(k, method)`` a model is meant to run on: its ``deploy_paths``
    (chosen on its validation list) when it has them, else the ones it was trained on."""
    recipe = metadata.get("deploy_paths") or metadata.get("path_set") or {}
    try:
        k, method = int(recipe.get("k", DEFAULT_PATHS[0])), str(recipe.get("method",
                                                                             DEFAULT_PATHS[1]))
    except (AttributeError, TypeError, ValueError):
        return DEFAULT_PATHS
    return (k, method) if k >= 1 and method in PATH_METHODS else DEFAULT_PATHS


def model_paths(spec: str | os.PathLike, topology: str = "",
                trusted_keys: TrustedKeys = None) -> tuple[int, str]:
    """The candidate paths ``(k, method)`` of model ``spec`` (a file or ``"default"``, which is
    the topology's shipped model when there is one, else the generalist): what the controller
    and ``ryute evaluate`` build when the user names no paths. A model that cannot be read
    gives :data:`DEFAULT_PATHS` (loading it says why)."""
    try:
        path = resolve_default(topology)[0] if str(spec) == "default" else Path(spec)
        return paths_of(read_model(path, trusted_keys)[0])
    except (ModelFileError, OSError):
        return DEFAULT_PATHS


def read_model(path: str | os.PathLike, trusted_keys: TrustedKeys = None
               ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(metadata, state_dict)`` of a model file, checksums verified (and its signature, with
    ``trusted_keys``); no topology check."""
    metadata, state, _ = _read_model(Path(path), trusted_keys)
    return metadata, state


def _read_model(path: Path, trusted_keys: TrustedKeys = None
                ) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """``(metadata, state_dict, sha256 of the file)``; every failure a :class:`ModelFileError`."""
    blobs, digest = _read_members(path)
    if trusted_keys is not None:  # first: nothing of an untrusted file is decoded
        _check_signature(path, blobs, trusted_keys)
    manifest = _json_object(path, "manifest.json", blobs["manifest.json"])
    expected = manifest.get("sha256")
    if not isinstance(expected, dict):
        raise ModelFileError(f"{path}: unreadable manifest (no sha256 table)")
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: format {manifest.get('format')!r:.80}, expected {FORMAT!r}")
    for member in ("metadata.json", "weights.pt"):
        if expected.get(member) != _sha(blobs[member]):
            raise ModelFileError(f"{path}: checksum mismatch for {member}: the file is corrupt "
                                 "or was modified")
    metadata = _json_object(path, "metadata.json", blobs["metadata.json"])
    try:
        # weights_only: tensors and plain containers only; nothing in the file can run code.
        state = torch.load(io.BytesIO(blobs["weights.pt"]), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, TypeError, AttributeError,
            EOFError, OSError, MemoryError, RecursionError) as e:  # a corrupt file to the caller
        raise ModelFileError(f"{path}: cannot decode ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: weights.pt is not a state_dict of tensors")
    return metadata, state, digest


def _check_signature(path: Path, blobs: dict[str, bytes], trusted_keys: TrustedKeys) -> None:
    from agents.model_signing import SignatureError, check_signature, load_trusted_keys

    if trusted_keys is None:
        return
    try:
        keys = trusted_keys if isinstance(trusted_keys, dict) else load_trusted_keys(trusted_keys)
        check_signature(str(path), blobs["manifest.json"], blobs.get(SIGNATURE_MEMBER), keys)
    except SignatureError as error:
        raise ModelFileError(str(error)) from None


def _open_regular(path: Path) -> io.BufferedReader:
    """``path`` opened for reading if it is a regular file of at most MAX_BYTES.

    Checked before opening (a FIFO would block, /dev/zero never ends, a directory is no file),
    opened non-blocking all the same, and checked again on the open file, which may not be the
    one that was looked at."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"model file {path} not found") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"{path}: not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e.strerror or e})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
        os.close(fd)
        why = "not a regular file" if not stat.S_ISREG(info.st_mode) else \
            f"{info.st_size} bytes, larger than any model ({MAX_BYTES})"
        raise ModelFileError(f"{path}: {why}")
    os.set_blocking(fd, True)  # a regular file: blocking reads are bounded by its size
    return os.fdopen(fd, "rb")


def _read_members(path: Path) -> tuple[dict[str, bytes], str]:
    """The members of the zip, each within its size limit, and the file's sha256."""
    with _open_regular(path) as handle:
        digest = hashlib.sha256()
        while chunk := handle.read(2**20):
            digest.update(chunk)
        handle.seek(0)
        try:
            with zipfile.ZipFile(handle) as z:
                names = z.namelist()
                missing = [m for m in MEMBERS if m not in names]
                if missing:
                    raise ModelFileError(
                        f"{path}: not a ryute model file (missing {', '.join(missing)})")
                blobs = {m: _read_member(path, z, m) for m in MEMBERS}
                if SIGNATURE_MEMBER in names:
                    blobs[SIGNATURE_MEMBER] = _read_member(path, z, SIGNATURE_MEMBER)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError,
                EOFError, ValueError, RuntimeError, zlib.error) as e:
            if isinstance(e, ModelFileError):
                raise
            raise ModelFileError(f"{path}: corrupt or not a model file ({e})") from None
    return blobs, digest.hexdigest()


def _read_member(path: Path, z: zipfile.ZipFile, name: str) -> bytes:
    """One member, refused when its directory entry or what it inflates to exceeds its limit
    (a zip bomb's directory may lie about the size: the read stops at the limit)."""
    limit = MEMBER_LIMITS[name]
    info = z.getinfo(name)
    if info.file_size > limit or info.compress_size > limit:
        raise ModelFileError(f"{path}: member {name} of {info.file_size} bytes; at most {limit}")
    with z.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"{path}: member {name} inflates beyond {limit} bytes")
    return data


def _json_object(path: Path, name: str, blob: bytes) -> dict[str, Any]:
    """A member that must hold one JSON object, at most MAX_JSON_DEPTH levels deep."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{path}: {name} is not UTF-8 ({e})") from None
    if _json_depth(text) > MAX_JSON_DEPTH:  # before the parser recurses into it
        raise ModelFileError(f"{path}: {name} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{path}: {name} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: {name} must be a JSON object, not {type(data).__name__}")
    return data


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _json_depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (vectorized: a crafted member may hold
    millions of them)."""
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text)).encode()
    if not brackets:
        return 0
    steps = np.frombuffer(brackets.translate(_BRACKET_STEPS), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int64).max())


def check_topology(
    metadata: dict[str, Any], path_set: PathSet, source: str = "model", name: str = ""
) -> None:
    """Raise :class:`ModelFileError` unless the model was trained for ``path_set``'s network and
    path set; the message names both topologies."""
    topo = _section(metadata, "topology")
    nodes, links = (value if isinstance(value, list) else []
                    for value in (topo.get("nodes"), topo.get("links")))
    here = topology_fingerprint(path_set)
    trained = (f"{str(topo.get('name') or 'an unnamed topology'):.80} ({len(nodes)} nodes, "
               f"{len(links)} links)")
    if topo.get("sha256") != here["sha256"]:
        names = set(map(str, nodes))
        differ = [n for n in here["nodes"] if n not in names][:3]
        hint = f"; nodes not in the model: {', '.join(differ)}" if differ else \
            "; same nodes, different links or capacities"
        raise ModelFileError(
            f"{source} was trained for topology {trained}, not for {name or 'this network'} "
            f"({len(here['nodes'])} nodes, {len(here['links'])} links, e.g. "
            f"{', '.join(here['nodes'][:3])}){hint}")
    ps = _section(metadata, "path_set")
    if ps.get("sha256") != path_set.fingerprint():
        raise ModelFileError(
            f"{source} was trained for {trained} with k={ps.get('k')!s:.20} "
            f"{ps.get('method')!s:.20} paths; "
            f"this path set has k={path_set.k} {path_set.method} paths "
            f"({path_set.fingerprint()[:12]} != {str(ps.get('sha256'))[:12]})")


def _network_shape(net: SplitNet | PathNet) -> dict[str, Any]:
    """What rebuilds ``net`` (with the encoding) before its weights are loaded."""
    if isinstance(net, PathNet):
        return {"class": "PathNet", "hidden": net.hidden, "rounds": net.rounds,
                "trend": net.trend}
    return {"class": "SplitNet", "n_inputs": len(net.index),
            "hidden": [m.out_features for m in net.body if isinstance(m, torch.nn.Linear)]}


def _section(metadata: dict[str, Any], name: str) -> dict[str, Any]:
    """A table of the metadata; a crafted file may put anything there."""
    value = metadata.get(name, {})
    return value if isinstance(value, dict) else {}


def _count(shape: dict[str, Any], name: str, low: int, high: int) -> int:
    """An integer field of the network's shape within [low, high]: checked before anything of
    that size is allocated (a 30 KB file claiming ``hidden: 20000`` took 1.6 GB)."""
    value = shape.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not low <= value <= high:
        raise ModelFileError(f"network {name} must be an integer in {low}..{high}, "
                             f"got {value!r:.40}")
    return int(value)


def _network(shape: dict[str, Any], encoding: Encoding) -> SplitNet | PathNet:
    kind = shape.get("class", "SplitNet")
    if kind == "PathNet":
        return PathNet(encoding, _count(shape, "hidden", 1, MAX_HIDDEN),
                       _count(shape, "rounds", 0, MAX_ROUNDS), bool(shape.get("trend", False)))
    if kind == "SplitNet":
        n_inputs = _count(shape, "n_inputs", 1, encoding.n_observations)
        n_actions = _count(shape, "n_actions", 1, encoding.n_actions)
        hidden = shape.get("hidden")
        if not isinstance(hidden, list) or len(hidden) > MAX_LAYERS:
            raise ModelFileError(f"network hidden must be a list of at most {MAX_LAYERS} widths")
        widths = [_count({"hidden": h}, "hidden", 1, MAX_HIDDEN) for h in hidden]
        sizes = [n_inputs, *widths, n_actions]
        parameters = sum(a * b for a, b in zip(sizes, sizes[1:]))
        if parameters > MAX_PARAMETERS:
            raise ModelFileError(f"network of {parameters} parameters; at most {MAX_PARAMETERS}")
        return SplitNet(np.zeros(n_inputs, np.int64), n_actions, widths)
    raise ModelFileError(f"unknown network class {kind!r:.40}")


def _encoding(metadata: dict[str, Any], path_set: PathSet) -> Encoding:
    e = _section(metadata, "encoding")
    history = _count(e, "history", 1, MAX_HISTORY)
    try:
        return Encoding(path_set, float(e["scale_reference"]), history, float(e["logit_scale"]))
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise ModelFileError(f"bad encoding ({type(err).__name__}: {err})") from None


def load_agent(
    spec: str | os.PathLike, path_set: PathSet, topology: str = "", transfer: bool = False,
    trusted_keys: TrustedKeys = None,
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

    ``trusted_keys`` (a PEM file or folder of ed25519 public keys, see
    :mod:`agents.model_signing`): the file must carry a valid signature by one of them.
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
    try:
        agent = _load_agent(path, path_set, topology, transfer, trusted_keys)
    except (ModelFileError, FileNotFoundError):
        raise
    except Exception as err:  # noqa: BLE001 - the file is untrusted: any failure is a refusal
        log.debug("model %s", path, exc_info=True)
        raise ModelFileError(f"{path}: cannot be used ({type(err).__name__}: {err})") from None
    if resolved:
        agent.metadata["resolved"] = f"default: {path.name}, {resolved}"
    return agent


def _load_agent(path: Path, path_set: PathSet, topology: str, transfer: bool,
                trusted_keys: TrustedKeys) -> AgentPolicy:
    metadata, state, digest = _read_model(path, trusted_keys)
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: metadata format {metadata.get('format')!r:.80}")
    generalist = isinstance(metadata.get("generalist"), dict)
    if generalist and _section(metadata, "network").get("class") != "PathNet":
        raise ModelFileError(f"{path}: a generalist model must be a PathNet")
    try:
        check_topology(metadata, path_set, f"model {path}",
                       Path(topology).stem if topology else "")
    except ModelFileError as refusal:
        if not (transfer or generalist) or _section(metadata, "network").get("class") != "PathNet":
            raise
        if not generalist:
            log.info("%s: transferred to this topology (%s)", path, refusal)
        state = {k: v for k, v in state.items() if k not in ("index", "mean", "std")}
        # Observation statistics describe the training topology's traffic: no drift reference.
        metadata = {**metadata, "transferred_from": _section(metadata, "topology").get("name"),
                    "observation": {}}
    if generalist:
        # It reads traffic shares only: its encoding's scale says nothing about this network.
        metadata = {**metadata, "scale_free": True}
    n = _section(metadata, "network")
    try:
        encoding = _encoding(metadata, path_set)
        net = _network(n, encoding)
    except ModelFileError as err:
        raise ModelFileError(f"{path}: {err}") from None
    try:
        net.load_state_dict(state, strict="transferred_from" not in metadata)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{path}: weights do not match the described network ({err})") \
            from None
    if int(net.index.max()) >= encoding.n_observations or (
            encoding.n_actions != n.get("n_actions") and "transferred_from" not in metadata):
        raise ModelFileError(f"{path}: network does not fit the encoding of this path set")
    model_id = metadata.get("id")
    metadata = {**metadata, "id": model_id if isinstance(model_id, str) and model_id
                else f"{path.name}:{digest[:12]}", "path": str(path)}
    agent = AgentPolicy(net, encoding, metadata)
    # Warm-up: torch's one-time costs of a first forward pass (allocator, kernels) are paid
    # here, while loading, not by the first decision, which has a time budget in the
    # controller (a first decision of 82 ms against its 50 ms was seen on a busy machine).
    agent.action(np.zeros(encoding.n_observations, np.float32))
    return agent


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


def sign_model(path: str | os.PathLike, private_key: str | os.PathLike) -> str:
    """Add (or replace) the signature of model file ``path``; returns the key id. Written to
    a temporary file and renamed, so a reader never sees half a file."""
    from agents.model_signing import SIGNATURE_MEMBER, key_id, load_private_key, signature_document

    path = Path(path)
    read_model(path)  # only a model that loads is signed
    key = load_private_key(private_key)
    with zipfile.ZipFile(path) as z:
        parts = {name: z.read(name) for name in MEMBERS}
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
        z.writestr(SIGNATURE_MEMBER, signature_document(parts["manifest.json"], key))
    os.replace(tmp, path)
    return key_id(key.public_key())
