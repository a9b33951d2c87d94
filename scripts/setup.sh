#!/usr/bin/env bash
# Idempotent set-up for ryute on Debian 12 (also in the Vagrant VM, a Debian 12 box).
#
#   scripts/setup.sh venv     Python virtualenv in .venv with ryute and its dev tools (no root)
#   scripts/setup.sh system   Debian packages + Open vSwitch daemons, userspace datapath (root)
#   scripts/setup.sh all      both
#
# A second run checks and changes nothing: packages are installed only when missing, the
# virtualenv is reinstalled only when pyproject.toml changed, the daemons started only when
# `ovs-vsctl show` does not answer.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
DEBIAN_PACKAGES=(openvswitch-switch openvswitch-common mininet iperf3 ethtool iputils-ping
                 iproute2 procps python3-venv
                 chromium chromium-driver  # the browser of the dashboard test (no download)
                 prometheus)  # promtool and the server of the monitoring test
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl

log() { echo "setup: $*"; }

need_root() {
    if [[ $EUID -ne 0 ]]; then
        echo "setup: '$1' needs root: $2" >&2
        echo "setup: run it as root (e.g. 'sudo make test'), or run 'make test-unit' for the" \
             "tests that need neither root nor Open vSwitch." >&2
        exit 1
    fi
}

setup_venv() {
    local stamp="$VENV/.ryute-installed"
    local want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "virtualenv $VENV is up to date"
        return
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    log "installing ryute and its dependencies into $VENV"
    # torch is pinned to the CPU build in pyproject.toml; an unpinned torch pulls CUDA.
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -e "$ROOT[dev,cluster,tensorboard]"
    echo "$want" > "$stamp"
}

setup_packages() {
    need_root "installing Debian packages" "apt-get installs ${DEBIAN_PACKAGES[*]}"
    local missing=()
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "Debian packages present"
        return
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package scripts try to start services through systemd/invoke-rc.d; on machines
    # without an init system that fails harmlessly, and we start the daemons ourselves below.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_ovs() {
    need_root "starting Open vSwitch" "ovsdb-server and ovs-vswitchd run as root"
    if timeout 5 ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
        log "Open vSwitch answers"
        return
    fi
    log "starting ovsdb-server and ovs-vswitchd (userspace datapath, no systemd)"
    # No kernel module here: bridges use datapath_type=netdev, which needs only the daemon.
    "$OVS_CTL" --no-ovs-vswitchd --system-id=random start >/dev/null
    "$OVS_CTL" --no-ovsdb-server --no-monitor start >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do
        if ovs-vsctl --timeout=3 show >/dev/null 2>&1 && pidof ovs-vswitchd >/dev/null; then
            log "Open vSwitch $(ovs-vsctl --version | head -1 | awk '{print $NF}') answers"
            return
        fi
        sleep 0.5
    done
    echo "setup: Open vSwitch did not start; see /var/log/openvswitch/*.log" >&2
    exit 1
}

case "${1:-all}" in
    venv) setup_venv ;;
    system) setup_packages; setup_ovs ;;
    all) setup_packages; setup_ovs; setup_venv ;;
    *) echo "usage: $0 venv|system|all" >&2; exit 2 ;;
esac
