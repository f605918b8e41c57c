#!/usr/bin/env python3
"""Draws the import graph between the modules of one crate and finds its
circles: `scripts/module-graph.py node` (a crate folder). Prints one line
per module with the modules it imports, marks imports that point up to an
enclosing module, and lists every circle (strongly connected set of
modules). Exits 1 when there is a circle, so a check can use it.

A module imports another when its source names a path into it (`use
super::x::Y`, `crate::a::b::f()`); a path ending at an item of a module's
own file (`super::Shared`) points at that module. A module's arrows to
its own children (`mod x; use x::Y;`) are not drawn: a parent calling
into its parts is the layout, a part reaching back up is what the
"(up)" mark shows. Test modules
(`#[cfg(test)] mod tests`) are left out: they read everything by design."""
import os
import re
import sys

root = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "node", "src")
modules = {}  # module path (tuple) -> source without its tests
for folder, _, files in os.walk(root):
    for name in files:
        if not name.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(folder, name), root)[:-3].split(os.sep)
        if rel[-1] in ("mod", "lib", "main"):
            rel = rel[:-1]
        text = open(os.path.join(folder, name)).read()
        text = re.split(r"#\[cfg\(test\)\](?:\s*#!?\[[^\]]*\])*\s*(?:pub(?:\(crate\))?\s+)?mod tests", text)[0]
        text = re.sub(r"//[^\n]*", "", text)
        modules[tuple(rel)] = text


def expand(prefix, body):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    body = body.strip()
    if not body.startswith("{"):
        return [prefix + body]
    parts, depth, start = [], 0, 1
    for i, ch in enumerate(body):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                parts.append(body[start:i])
        elif ch == "," and depth == 1:
            parts.append(body[start:i])
            start = i + 1
    out = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        m = re.match(r"([\w:]*?)(\{.*\}|[\w*]+(?: as \w+)?)$", part, re.S)
        if m:
            out += expand(prefix + m.group(1), m.group(2))
    return out


def paths(text):
    found = []
    for m in re.finditer(r"\buse\s+(crate|super|self)::([^;]*);", text, re.S):
        head, rest = m.group(1), re.sub(r"\s+", " ", m.group(2))
        found += [head + "::" + p for p in expand("", rest)]
    found += re.findall(r"\b(?:crate|super)(?:::\w+)+", text)
    return found


def resolve(here, path):
    parts = path.split("::")
    if parts[0] == "crate":
        base, parts = (), parts[1:]
    else:
        base = here
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
    target = base
    for p in parts:
        if target + (p,) in modules:
            target = target + (p,)
        else:
            break
    return target


edges = {m: set() for m in modules}
for here, text in modules.items():
    for path in paths(text):
        target = resolve(here, path)
        if target != here and target in modules:
            edges[here].add(target)

name = lambda m: "::".join(m) or "crate"
up = 0
for m in sorted(edges):
    marks = []
    for t in sorted(edges[m]):
        back = t == m[: len(t)]
        up += back
        marks.append(name(t) + (" (up)" if back else ""))
    print(f"{name(m)} -> {', '.join(marks)}")

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop()
            on.discard(w)
            scc.append(w)
            if w == v:
                break
        if len(scc) > 1:
            sccs.append(sorted(scc))


for v in sorted(edges):
    if v not in index:
        visit(v)
arrows = sum(len(t) for t in edges.values())
print(f"\n{len(modules)} modules, {arrows} arrows, {up} pointing up to an enclosing module")
for scc in sccs:
    print("circle:", " <-> ".join(name(m) for m in scc))
print(f"{len(sccs)} circles")
sys.exit(1 if sccs else 0)
