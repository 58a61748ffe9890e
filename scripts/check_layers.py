#!/usr/bin/env python3
"""Refuses include cycles between the library's folders, and an installed header set that is
not closed.

Reads every `#include "qkv/FOLDER/..."` in include/qkv/FOLDER/ and src/FOLDER/ and fails, naming
the files, when one folder reaches another that reaches it back. The folders then form layers:
each may use the ones below it, never one above. src/cli/ and src/plugin/ sit outside the
library and are not checked. Then checks that every header in cmake/public_headers.txt (what
`cmake --install` installs) exists and includes only qkv headers listed there too.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
include = re.compile(r'^\s*#\s*include\s+"qkv/([a-z_]+)/[^"]+"', re.M)

edges = {}  # folder -> {folder it includes: first file that does}
for base in (root / "include" / "qkv", root / "src"):
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if folder.name in ("cli", "plugin"):
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix not in (".h", ".cpp", ".inc"):
                continue
            for target in include.findall(path.read_text(errors="replace")):
                if target != folder.name:
                    edges.setdefault(folder.name, {}).setdefault(target, path.relative_to(root))

# Tarjan's strongly connected components: any with more than one folder is a cycle.
index, low, stack, on_stack, cycles = {}, {}, [], set(), []
def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in edges.get(v, {}):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            cycles.append(sorted(component))

for v in sorted(set(edges) | {w for targets in edges.values() for w in targets}):
    if v not in index:
        visit(v)

for component in cycles:
    print("check_layers: include cycle between " + ", ".join(component) + ":", file=sys.stderr)
    for a in component:
        for b, path in sorted(edges.get(a, {}).items()):
            if b in component:
                print(f"  {a} -> {b} ({path})", file=sys.stderr)
public_list = root / "cmake" / "public_headers.txt"
public = [l.strip() for l in public_list.read_text().splitlines() if l.startswith("qkv/")]
unclosed = []
for header in public:
    path = root / "include" / header
    if not path.is_file():
        unclosed.append(f"{header}: listed, but there is no include/{header}")
        continue
    for target in re.findall(r'^\s*#\s*include\s+"(qkv/[^"]+)"', path.read_text(), re.M):
        if target not in public:
            unclosed.append(f"{header} includes {target}, which is not installed")
for line in unclosed:
    print(f"check_layers: {public_list.relative_to(root)}: {line}", file=sys.stderr)
sys.exit(1 if cycles or unclosed else 0)
