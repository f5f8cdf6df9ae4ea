"""
The shape of the package, checked: imports run one way between the
layers, nothing imports in a circle, and no module grows past what a
newcomer can read (docs/architecture.rst explains the layers).

The imports are read from the source with C{ast}, so a module that is only
imported lazily (inside a function) counts as much as one imported at the
top: either way the two modules depend on each other.
"""

from __future__ import annotations

import ast
import os
from typing import Dict, List, Set

from twisted.trial.unittest import SynchronousTestCase

import ftx

PACKAGE = os.path.dirname(os.path.abspath(ftx.__file__))

#: Who may import whom. A module of the key's layer may import modules of
#: the layers listed, and its own; anything else runs the wrong way.
ALLOWED = {
    "errors": set(),
    "protocol": {"errors"},
    "_io": {"errors", "protocol"},
    "server": {"errors", "protocol", "_io"},
    "client": {"errors", "protocol", "_io"},
    "cli": {"errors", "protocol", "_io", "client"},
    "testing": {"errors", "protocol", "_io", "server", "client"},
    "": {"errors", "protocol", "_io", "server", "client", "cli", "testing"},
}

#: Lines a module may have: "about 500" (issue 11), with a tenth to spare
#: so that a docstring added to a full module does not force a split; past
#: this it should be split by concern.
MAX_LINES = 550


def _moduleName(path: str) -> str:
    relative = os.path.relpath(path, os.path.dirname(PACKAGE))
    parts = relative[: -len(".py")].split(os.sep)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Dict[str, str]:
    found = {}
    for directory, _, filenames in os.walk(PACKAGE):
        for filename in filenames:
            if filename.endswith(".py"):
                path = os.path.join(directory, filename)
                found[_moduleName(path)] = path
    return found


def _imports(name: str, path: str, known: Set[str]) -> Set[str]:
    """
    The ftx modules C{name} imports, wherever in the file the import is.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    targets: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = base + "." + alias.name
                targets.add(full if full in known else base)
    return {t for t in targets if t in known and t != name}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """
    Every strongly connected group of more than one module (Tarjan).
    """
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    onStack: Set[str] = set()
    groups: List[List[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        onStack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in onStack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                onStack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


class StructureTests(SynchronousTestCase):
    def test_noImportCircles(self) -> None:
        """
        No group of ftx modules imports each other in a circle.
        """
        self.assertEqual(_cycles(_graph()), [])

    def test_layersImportDownwardOnly(self) -> None:
        """
        The server and the client never import each other; protocol,
        errors and the I/O layer import neither; the command line sits
        on the client only.
        """
        wrong = []
        for module, targets in sorted(_graph().items()):
            layer = _layer(module)
            allowed = ALLOWED.get(layer, set()) | {layer}
            for target in sorted(targets):
                if target != "ftx" and _layer(target) not in allowed:
                    wrong.append("{} imports {}".format(module, target))
        self.assertEqual(wrong, [])

    def test_everyLayerIsKnown(self) -> None:
        """
        A new top-level module or package is placed in the layer table on
        purpose, not by default.
        """
        layers = {_layer(module) for module in _modules()}
        self.assertEqual(layers - set(ALLOWED), set())

    def test_modulesStaySmall(self) -> None:
        long = []
        for module, path in sorted(_modules().items()):
            with open(path, encoding="utf-8") as f:
                count = sum(1 for _ in f)
            if count > MAX_LINES:
                long.append("{}: {} lines".format(module, count))
        self.assertEqual(long, [])

    def test_checkerSeesImports(self) -> None:
        """
        The checker itself finds imports of every form, so the tests above
        cannot pass by reading nothing.
        """
        graph = _graph()
        self.assertIn("ftx.protocol.wire", graph["ftx.server.protocol"])
        self.assertIn("ftx.errors", graph["ftx.protocol.wire"])
        self.assertGreater(sum(len(targets) for targets in graph.values()), 100)
        self.assertEqual(_cycles({"a": {"b"}, "b": {"a"}, "c": set()}), [["a", "b"]])
