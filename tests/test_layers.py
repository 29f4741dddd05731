"""The import rule, kept true by a test: imports point down the layers, and no module imports itself back.

    bot.app (composition root) -> adapters -> bot.ingress -> bot.core -> bot.llm -> bot.observability
        -> bot.store -> bot.types / bot.errors / bot.config -> tools

A module may import its own layer or any layer below. Only `bot.app` imports adapters. Every import counts,
including the lazy ones inside functions and those under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "adapters", "tools")
LAYERS = (
    ("tools",),
    ("bot.types", "bot.errors", "bot.config"),
    ("bot.store",),
    ("bot.observability",),
    ("bot.llm",),
    ("bot.core",),
    ("bot.ingress",),
    ("adapters",),
    ("bot.app", "bot.__main__", "bot"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def layer(module: str) -> int:
    best, rank = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS"
    return rank


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that `path` imports (a `from package import name` of a submodule names it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for target in targets:
            # The longest prefix that is one of our modules: `bot.core.texts` or else the package `bot.core`.
            parts = target.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in modules:
                    found.add(candidate)
                    break
    return found


def graph() -> dict[str, set[str]]:
    modules = our_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{module} ({LAYERS[layer(module)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
        for module, targets in graph().items()
        for target in sorted(targets)
        if layer(target) > layer(module)
    ]
    assert upward == [], "\n".join(upward)


def test_only_the_composition_root_imports_adapters() -> None:
    offenders = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module.startswith("bot") and not module.startswith("bot.app") and module != "bot"
        for target in targets
        if target.startswith("adapters")
    ]
    assert offenders == [], "\n".join(offenders)


# What an adapter may name of the bot: the core's port (which carries the gate's answers and the surfaces' pages),
# the neutral types and the errors. Permissions, audit, tools and the rest are the core's business.
ADAPTER_PORT = frozenset({"bot.core.port", "bot.types", "bot.errors"})


def test_adapters_import_only_the_port_the_types_and_the_errors() -> None:
    offenders = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module.startswith("adapters")
        for target in targets
        if not target.startswith("adapters") and target not in ADAPTER_PORT
    ]
    assert offenders == [], "\n".join(offenders)


def test_only_the_composition_root_reads_the_settings() -> None:
    """Everything else is handed what it uses (adapters their SlackConfig / TeamsConfig, the model its
    ModelConfig, the core its limits), so no part depends on the shape of the environment."""
    offenders = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if not module.startswith(("bot.app", "bot.config")) and module != "bot"
        for target in targets
        if target == "bot.config"
    ]
    assert offenders == [], "\n".join(offenders)


def test_tools_import_nothing_of_the_bot() -> None:
    offenders = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module.startswith("tools")
        for target in targets
        if not target.startswith("tools")
    ]
    assert offenders == [], "\n".join(offenders)


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the module graph; any component of two or more is a cycle.
    A package's `__init__` importing its own submodules is how a package shows its public face, not a cycle,
    so the edge from a submodule up to its own package is not followed."""
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert cycles == [], "\n".join(" <-> ".join(c) for c in cycles)


def test_the_rule_sees_a_violation_when_there_is_one(tmp_path: Path) -> None:
    """The checker itself: an upward import and a cycle written to files are found."""
    a = tmp_path / "a.py"
    a.write_text("from bot.app.cli import main\nimport tools.registry\n")
    modules = our_modules()
    assert imports_of(a, modules) == {"bot.app.cli", "tools.registry"}
    assert layer("bot.app.cli") > layer("bot.core.agent") > layer("bot.store.base") > layer("tools.registry")
