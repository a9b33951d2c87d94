"""The layers of ARCHITECTURE.md, checked on the source: ``api <- topologies <- sim <- agents
<- controller <- lab``. A module imports only from its own layer or the layers below it, the
first-party imports form no cycle, and no module below ``lab/`` starts ``python -m controller...``
or ``python -m lab...`` (an upward dependency that an import scan alone does not see).

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import is
still a dependency. ``tests/`` and ``benchmarks/`` may import anything, and so may ``ryute``
(the public API over all the layers), which no layer imports.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("api", "topologies", "sim", "agents", "controller", "lab")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
FRAMEWORKS = {
    # framework: the modules (or packages) that may import it
    "os_ken": ("controller", "lab"),
    "eventlet": ("controller", "lab"),
    "torch": ("agents", "controller", "lab"),  # the TE core (sim/) imports neither torch nor os-ken
    "stable_baselines3": ("agents", "controller", "lab"),
    "mininet": ("lab", "topologies.mininet"),  # the testbed is the lab's; topologies/ holds the topos
}
LAUNCH = re.compile(r"-m\s+([A-Za-z_][\w.]*)")


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of the layered packages under ``root``."""
    found = {}
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported(tree: ast.AST, package: str, known: set[str]) -> set[str]:
    """Modules ``tree`` imports (``package``: the package the module is in, for
    relative imports); ``from pkg import mod`` counts as ``pkg.mod`` when that is a module, else
    as ``pkg``."""
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in known else base)
    return targets


def launched(tree: ast.AST) -> set[str]:
    """Modules that string literals of ``tree`` start with ``-m``: ``[..., "-m", "pkg.mod", ...]``
    in a list or tuple, or ``"... -m pkg.mod ..."`` in one string. Docstrings and other bare
    string statements are prose, not launches."""
    prose = {id(node.value) for node in ast.walk(tree)
             if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            items = node.elts
            for flag, target in zip(items, items[1:]):
                if (isinstance(flag, ast.Constant) and flag.value == "-m"
                        and isinstance(target, ast.Constant) and isinstance(target.value, str)):
                    targets.add(target.value)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in prose):
            targets.update(LAUNCH.findall(node.value))
    return targets


def layer(module: str) -> int | None:
    return RANK.get(module.split(".")[0])


def within(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


def violations(root: Path) -> tuple[list[str], list[str], dict[str, set[str]]]:
    """(imports against the layers, launches against the layers, the first-party import graph)."""
    found = modules(root)
    graph: dict[str, set[str]] = {}
    bad_imports, bad_launches = [], []
    for name, path in found.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = imported(tree, package, set(found))
        graph[name] = {target for target in targets if layer(target) is not None} - {name}
        where = path.relative_to(root)
        for target in sorted(targets):
            allowed = FRAMEWORKS.get(target.split(".")[0])
            if allowed is not None and not within(name, allowed):
                bad_imports.append(f"{where}: imports {target} (only {', '.join(allowed)} may)")
        for target in sorted(graph[name]):
            if layer(target) > layer(name):
                bad_imports.append(f"{where}: imports {target} ({LAYERS[layer(name)]} is below "
                                   f"{LAYERS[layer(target)]})")
        for target in sorted(launched(tree)):
            target_layer = layer(target)
            if target_layer is None:
                continue
            if target_layer > layer(name) or (
                    layer(name) < RANK["lab"] and target_layer >= RANK["controller"]):
                bad_launches.append(f"{where}: launches python -m {target}")
    return bad_imports, bad_launches, graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# -- the project ----------------------------------------------------------------------------
def test_imports_follow_the_layers():
    bad_imports, _, _ = violations(ROOT)
    assert not bad_imports, "imports against the layers:\n" + "\n".join(bad_imports)


def test_nothing_below_lab_launches_the_controller_or_the_lab():
    _, bad_launches, _ = violations(ROOT)
    assert not bad_launches, "launches against the layers:\n" + "\n".join(bad_launches)


def test_first_party_imports_form_no_cycle():
    _, _, graph = violations(ROOT)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_layer_imports_the_public_api():
    """``ryute`` (the public API) re-exports from every layer, above all of them: a layer that
    imported it would depend on every layer above its own."""
    found = modules(ROOT)
    users = [name for name, path in found.items()
             if any(target.split(".")[0] == "ryute" for target in imported(
                 ast.parse(path.read_text()), name, set(found)))]
    assert users == []
    assert (ROOT / "ryute" / "__init__.py").is_file()


def test_every_layer_is_scanned():
    """The scan sees the packages (a moved or renamed package would make the checks vacuous)."""
    found = modules(ROOT)
    for package in LAYERS:
        assert sum(name.split(".")[0] == package for name in found) > 1, package


# -- the checks themselves, on small trees -------------------------------------------------
def _tree(root: Path, files: dict[str, str]) -> Path:
    for package in LAYERS:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    for relative, source in files.items():
        (root / relative).write_text(source)
    return root


def test_an_upward_import_is_found_also_inside_a_function(tmp_path):
    root = _tree(tmp_path, {
        "sim/core.py": "def f():\n    from controller import app\n",
        "controller/app.py": "from sim.core import f\nfrom agents import policy\n",
        "agents/policy.py": "import topologies.catalog\nimport torch\n",
        "topologies/catalog.py": "",
        "topologies/mininet.py": "from mininet.topo import Topo\n",
        "sim/bed.py": "def start():\n    import mininet.net\n",
        "lab/bed.py": "import mininet.net\nimport os_ken\nfrom controller import app\n",
    })
    bad_imports, _, _ = violations(root)
    assert bad_imports == ["sim/bed.py: imports mininet.net (only lab, topologies.mininet may)",
                           "sim/core.py: imports controller.app (sim is below controller)"]


def test_a_launch_from_below_the_lab_is_found_and_prose_is_not(tmp_path):
    root = _tree(tmp_path, {
        "sim/bed.py": ('"""Runs ``python -m controller.cli`` (prose)."""\n'
                       'import sys\nCOMMAND = [sys.executable, "-m", "controller.cli", "controller"]\n'
                       'SHELL = "python3 -m lab.demo --quick"\nOWN = [sys.executable, "-m", "sim.replay"]\n'),
        "controller/app.py": 'ADAPTER = ["python", "-m", "agents.adapt_service"]\n'
                             'SELF = ["python", "-m", "controller.cli"]\n',
        "lab/bed.py": 'import sys\nCOMMAND = [sys.executable, "-m", "controller.cli"]\n',
    })
    _, bad_launches, _ = violations(root)
    assert bad_launches == ["sim/bed.py: launches python -m controller.cli",
                            "sim/bed.py: launches python -m lab.demo",
                            "controller/app.py: launches python -m controller.cli"]


def test_a_cycle_through_lazy_imports_is_found(tmp_path):
    root = _tree(tmp_path, {
        "agents/train.py": "def main():\n    from agents import train_cli\n",
        "agents/train_cli.py": "def run():\n    from agents.train import main\n",
        "agents/sb3.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import agents.agent\n",
        "agents/agent.py": "",
    })
    _, _, graph = violations(root)
    assert cycles(graph) == [["agents.train", "agents.train_cli"]]
