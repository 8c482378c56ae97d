#!/usr/bin/env python3
"""Fail when a module of src/ imports from a module above its layer, or when the top-level
modules' import graph has a cycle.

The layers (design.md, "Added with the second plan"): each top-level module of the crate may
import only from modules of lower layers, and from its own layer's modules only where an
edge below says so. An import is any `crate::NAME` path in the code (a `use`, an attribute, a
path in an expression), comments and string literals aside, and the names inside
`use crate::{a::.., b}`. `super::` and `self::` stay inside a module and are not counted.

    scripts/check-layers.py            check; print the graph's layer violations and cycles
    scripts/check-layers.py --graph    also print every edge
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

# Lowest first. A module may import any module of a lower layer.
LAYERS = [
    ["model"],
    ["config"],
    ["store", "telemetry"],
    ["error"],
    ["metrics"],
    ["token"],
    ["import"],
    ["state"],
    ["middleware"],
    ["surface"],
    ["dialect"],
    ["verify", "ui", "ops"],
    ["openapi"],
    ["app"],
    ["server"],
    ["cli"],
]
# Modules compiled only for tests may look at anything.
TEST_ONLY = {"test_strategies"}

SRC = Path(__file__).resolve().parent.parent / "src"


def strip(code: str) -> str:
    """Drop comments, string and char literals (roughly, but enough for paths)."""
    code = re.sub(r"/\*.*?\*/", " ", code, flags=re.S)
    out = []
    for line in code.splitlines():
        line = re.sub(r'r#*"(?:[^"\\]|\\.)*"#*', '""', line)
        line = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
        line = re.sub(r"'(?:[^'\\]|\\.)'", "' '", line)
        line = line.split("//", 1)[0]
        out.append(line)
    return "\n".join(out)


def group_heads(text: str, start: int):
    """The first path segment of each item of the brace group opening at text[start]."""
    depth, item, heads = 0, "", []
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                heads.append(item)
                break
        if depth == 1 and ch == ",":
            heads.append(item)
            item = ""
        elif depth >= 1:
            item += ch
    return [h.strip().split("::")[0].strip() for h in heads if h.strip()]


def imports(path: Path):
    text = strip(path.read_text())
    names = set()
    for m in re.finditer(r"\bcrate::(\{|[A-Za-z_][A-Za-z0-9_]*)", text):
        if m.group(1) == "{":
            names.update(group_heads(text, m.start(1)))
        else:
            names.add(m.group(1))
    return names


def top_module(path: Path):
    rel = path.relative_to(SRC)
    if len(rel.parts) == 1:
        stem = rel.stem
        return None if stem in ("lib", "main") else stem
    return rel.parts[0]


def main():
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    edges = defaultdict(set)
    where = defaultdict(list)
    modules = set()
    for path in sorted(SRC.rglob("*.rs")):
        mod = top_module(path)
        if mod is None:
            continue
        modules.add(mod)
        for name in imports(path):
            if name != mod:
                edges[mod].add(name)
                where[(mod, name)].append(str(path.relative_to(SRC.parent)))
    problems = []
    for mod in sorted(modules - set(layer_of) - TEST_ONLY):
        problems.append(f"{mod}: not in any layer of scripts/check-layers.py; add it where it belongs")
    for mod in sorted(edges):
        if mod in TEST_ONLY or mod not in layer_of:
            continue
        for dep in sorted(edges[mod]):
            if dep not in modules:
                continue  # a crate-level item re-exported by lib.rs, or a macro
            if dep not in layer_of:
                continue
            if layer_of[dep] >= layer_of[mod]:
                files = ", ".join(sorted(set(where[(mod, dep)])))
                problems.append(f"{mod} (layer {layer_of[mod]}) imports {dep} (layer {layer_of[dep]}) in {files}")
    # Cycles among top-level modules (test-only modules aside), whatever the layers say.
    graph = {m: {d for d in edges[m] if d in modules and d not in TEST_ONLY} for m in modules if m not in TEST_ONLY}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    for c in cycles:
        problems.append("import cycle: " + " -> ".join(c))
    if "--graph" in sys.argv:
        for m in sorted(graph):
            print(f"{m}: {', '.join(sorted(graph[m]))}")
    if problems:
        print("check-layers: the module graph breaks the layering:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        sys.exit(1)
    print(f"check-layers: {len(graph)} modules in {len(LAYERS)} layers, no upward import, no cycle")


if __name__ == "__main__":
    main()
