"""Controller configuration: one dataclass, documented defaults, a TOML file, CLI overrides.

Precedence (lowest to highest): the defaults below, a TOML file (``--config FILE`` or the
``RYUTE_CONFIG`` environment variable), command-line options. Keys in the TOML file have the
names of the fields below, at top level or under a ``[controller]`` table; the health fields
(:class:`~controller.decisions.HealthConfig`) at the same level too, or in a ``health`` table.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomllib

from controller.decisions import HealthConfig, Rollout
from sim.paths import METHODS as PATH_METHODS

# "RYUTE" in ASCII: every rule and group the app installs carries it, so that a restarted
# controller finds, reconciles and removes its own state without touching anyone else's.
DEFAULT_COOKIE = 0x5259555445


@dataclass(frozen=True)
class ControllerConfig:
    """Everything the controller can be told. Defaults suit a Mininet lab on one machine."""

    topology: str | None = None
    """Catalog name or topology file; None: work from discovery alone."""
    ofp_host: str = "0.0.0.0"
    """Address the OpenFlow listener binds to."""
    ofp_port: int = 6653
    """OpenFlow TCP port (IANA 6653)."""
    ofp_tls_cert: str | None = None
    """OpenFlow over TLS: the controller's certificate (PEM); with ``ofp_tls_key``, the
    OpenFlow port speaks TLS only (switches: ``ovs-vsctl set-controller br0 ssl:HOST:PORT``)."""
    ofp_tls_key: str | None = None
    """The private key of ``ofp_tls_cert`` (PEM)."""
    ofp_tls_ca: str | None = None
    """CA certificate(s) (PEM) that switch certificates must be signed by: with it, a switch
    without such a certificate is refused (mutual TLS); without it, any switch may connect."""
    rest_host: str = "127.0.0.1"
    """Address of the REST API; loopback by default so nothing is exposed by accident."""
    rest_port: int = 8080
    """Port of the REST API; 0 disables it."""
    rest_timeout_s: float = 30.0
    """A REST connection idle (or sending this slowly) for this long is closed."""
    rest_tls_cert: str | None = None
    """HTTPS for the REST API: its certificate (PEM, the chain after it); with
    ``rest_tls_key``, the REST port speaks HTTPS only (plain HTTP is refused). The token is
    still required for changes."""
    rest_tls_key: str | None = None
    """The private key of ``rest_tls_cert`` (PEM)."""
    poll_interval_s: float = 5.0
    """Statistics poll interval (2 s is a good value in emulation)."""
    lldp_interval_s: float = 1.0
    """How often every switch port sends an LLDP probe."""
    link_timeout_s: float = 3.5
    """A link not confirmed by LLDP for this long is considered gone."""
    capacity_scale: float = 1.0
    """Divide the topology file's capacities by this (Mininet's --scale: 1000 in emulation)."""
    default_capacity_mbps: float = 1000.0
    """Capacity of a link when neither the topology file nor the port speed gives one."""
    paths_k: int | None = None
    """Candidate paths per OD pair; None: the model's (``agents.model_file.model_paths``: the
    generalist runs on 8 ``te`` paths, a topology's own model on those it was trained on), 4
    without a model."""
    path_method: str | None = None
    """How candidate paths are chosen: hops, invcap, disjoint or te (``sim.paths.METHODS``);
    None: the model's, hops without a model."""
    local_repair: bool = True
    """Switches repair a link failure by themselves, before (and without) the controller:
    fast-failover groups onto detours and SELECT buckets that watch their ports (README,
    "Local repair"); False: only the controller moves traffic off a failed link."""
    model: str | None = None
    """Model file of the agent, or "default" for the shipped model of the topology; None: none."""
    allow_fallback_only: bool = False
    """Start even when ``model`` cannot be loaded: the fallback decides alone, and the status
    says "no model loaded". Off by default: a controller asked for an agent refuses to start
    without it (one line naming the file), so that a typo or a bad file is seen at once, not
    found weeks later in the decision log."""
    mode: str = "shadow"
    """shadow: the agent decides beside the fallback, only the fallback is installed;
    active: the agent's decision is installed while it is healthy."""
    rollout_fraction: float | None = None
    """Gradual activation (active mode only): the share of each OD pair's weight moved from the
    fallback's split to the agent's, in (0, 1]; None: the agent's decision in full."""
    rollout_step: float = 0.0
    """Widen ``rollout_fraction`` by this after every ``recover_after`` intervals whose measured
    MLU stays within the margin of the fallback's predicted MLU (0: it stays); one interval
    beyond it rolls back to the fallback and shadow mode, with the reason in the log."""
    rollout_ingress: tuple[str, ...] | None = None
    """A canary: the rollout moves only the OD pairs entering at these switches."""
    api_token: str | None = None
    """Bearer token for changes through the REST API; generated at start when the API listens
    on a non-loopback address and none is given. Model changes through REST need one."""
    trusted_keys: str | None = None
    """ed25519 public keys (a PEM file, or a folder of *.pub files; ``ryute model keygen``):
    when set, only model files signed by one of them are loaded (``ryute model sign``)."""
    adapt: bool = False
    """Fine-tune the model on measured matrices in a separate process and hot-swap the better
    candidates (needs a model; uses the API token)."""
    decision_log: str | None = None
    """JSON-lines file every decision is appended to (None: in memory only)."""
    metrics_od_pairs: bool = False
    """Export the measured demand of every OD pair (``ryute_od_demand_bytes_per_second``):
    N x (N - 1) series, so only on request."""
    record_dir: str | None = None
    """Keep the measured OD matrices as ``.tm.npz`` files in this folder
    (``controller.recorder``; ``ryute data join`` makes one series of them); None: not kept."""
    record_per_file: int = 288
    """Intervals per recorded file (288: a day of 5-minute intervals)."""
    record_files: int = 30
    """Recorded files kept; the oldest beyond it are deleted."""
    health: HealthConfig = dataclasses.field(default_factory=HealthConfig)
    """When the agent is not trusted, and when its last decision is held over a transient
    fault: ``budget_ms`` (50), ``mlu_margin`` (0.10), ``mlu_floor`` (0.02), ``drift_factor``
    (10), ``idle_mlu`` (0.05), ``recover_after`` (3), ``transient_limit`` (3),
    ``hold_intervals`` (3), ``stale_intervals`` (3), documented and checked in
    :class:`~controller.decisions.HealthConfig`; as keys they stand beside the others
    (``budget_ms = 100``) or in a ``health`` table; ``--budget-ms 100`` on the command line."""
    cookie: int = DEFAULT_COOKIE
    """OpenFlow cookie of every rule the app installs."""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.ofp_port < 65536:
            problems.append(f"ofp_port must be 1..65535, got {self.ofp_port}")
        if not 0 <= self.rest_port < 65536:
            problems.append(f"rest_port must be 0..65535, got {self.rest_port}")
        for name in ("poll_interval_s", "lldp_interval_s", "link_timeout_s", "rest_timeout_s"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("capacity_scale", "default_capacity_mbps"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("record_per_file", "record_files"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.paths_k is not None and self.paths_k < 1:
            problems.append(f"paths_k must be >= 1, got {self.paths_k}")
        if self.path_method is not None and self.path_method not in PATH_METHODS:
            problems.append(f"path_method must be {', '.join(PATH_METHODS)}, got "
                            f"{self.path_method!r}")
        if self.mode not in ("shadow", "active", "external"):
            problems.append(f"mode must be shadow, active or external, got {self.mode!r}")
        if self.link_timeout_s <= self.lldp_interval_s:
            problems.append("link_timeout_s must exceed lldp_interval_s")
        if not 0 < self.cookie < 2**64:
            problems.append("cookie must be a non-zero 64-bit integer")
        if (self.ofp_tls_cert is None) != (self.ofp_tls_key is None):
            problems.append("ofp_tls_cert and ofp_tls_key go together")
        if self.ofp_tls_ca is not None and self.ofp_tls_cert is None:
            problems.append("ofp_tls_ca needs ofp_tls_cert and ofp_tls_key")
        if (self.rest_tls_cert is None) != (self.rest_tls_key is None):
            problems.append("rest_tls_cert and rest_tls_key go together")
        if self.rest_tls_cert is not None and self.adapt:
            problems.append("adapt publishes over plain HTTP on loopback: not with "
                            "rest_tls_cert (yet)")
        problems += self._rollout_problems()
        token_problem = api_token_problem(self.api_token)
        if token_problem:
            problems.append(token_problem)
        if problems:
            raise ValueError("invalid controller configuration: " + "; ".join(problems))

    def rollout_fields(self) -> dict[str, Any]:
        """The rollout options as :meth:`Rollout.from_fields` takes them."""
        return {"fraction": self.rollout_fraction, "step": self.rollout_step or None,
                "ingress": list(self.rollout_ingress) if self.rollout_ingress is not None
                else None}

    def _rollout_problems(self) -> list[str]:
        if isinstance(self.rollout_ingress, str):  # "s1" would be read as ("s", "1")
            return ["rollout_ingress must be a list of switch names"]
        try:
            rollout = Rollout.from_fields(self.rollout_fields(), None)
        except (TypeError, ValueError) as error:
            return [f"rollout_{error}"]
        if rollout is not None and self.mode != "active":
            return [f"rollout_fraction, rollout_step and rollout_ingress need mode active, "
                    f"not {self.mode}"]
        return []

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> ControllerConfig:
        """Read a TOML file, then apply ``overrides`` (None values are ignored)."""
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ValueError(f"{path}: cannot read controller config: {error}") from error
        data = data.get("controller", data)
        return cls.from_mapping(data, source=str(path), **overrides)

    @classmethod
    def from_mapping(
        cls, data: dict[str, Any], source: str = "config", **overrides: Any
    ) -> ControllerConfig:
        known = {field.name for field in fields(cls)} | set(HEALTH_KEYS)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown option(s) {', '.join(unknown)}")
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        try:
            health = _health(merged)  # takes the health keys out of merged
            return cls(health=health, **merged)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from error

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> ControllerConfig:
        """Defaults < TOML file (``path`` or ``$RYUTE_CONFIG``) < overrides."""
        path = path or os.environ.get("RYUTE_CONFIG")
        if path:
            return cls.from_toml(path, **overrides)
        return cls.from_mapping({}, **overrides)

    def replace(self, **changes: Any) -> ControllerConfig:
        return dataclasses.replace(self, **changes)


def api_token_problem(token: object) -> str | None:
    """Why ``token`` cannot be the API token (None: it can, or none is set).

    An empty token set by a templated environment (``RYUTE_API_TOKEN=``) must not count as
    configured: it would stop the generated token on a non-loopback address and match any
    client whose header strips to nothing. Visible ASCII only, since it travels in an HTTP
    header, where a space or control character is ambiguous.
    """
    if token is None:
        return None
    if not isinstance(token, str):
        return f"api_token must be a string, got {type(token).__name__}"
    if not token:
        return "api_token is set but empty (unset it, or give a real token)"
    if not all("!" <= char <= "~" for char in token):
        return "api_token may hold visible ASCII characters only (no spaces or control characters)"
    return None


HEALTH_KEYS = tuple(field.name for field in fields(HealthConfig))


def _health(merged: dict[str, Any]) -> HealthConfig:
    """Take the health keys out of ``merged`` (a ``health`` table, then the keys beside the
    others, which win) into one :class:`HealthConfig`."""
    table = merged.pop("health", None) or {}
    if isinstance(table, HealthConfig):
        table = dataclasses.asdict(table)
    if not isinstance(table, dict):
        raise ValueError(f"health must be a table of {', '.join(HEALTH_KEYS)}")
    unknown = sorted(set(table) - set(HEALTH_KEYS))
    if unknown:
        raise ValueError("unknown option(s) " + ", ".join(f"health.{key}" for key in unknown))
    flat = {key: merged.pop(key) for key in HEALTH_KEYS if key in merged}
    return HealthConfig(**{**table, **flat})
