#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The architecture, checked: reads every include of the production code
(common/ and daemon/) and fails on

  - an include pointing the wrong way: common/ never includes daemon/; inside
    each tree a folder includes only itself and the folders below it (LAYERS);
  - an include cycle among modules (a module is NAME.c with NAME.h), beyond
    forward declarations, which need no include;
  - a function over MAX_FUNCTION_LINES lines (signature to closing brace) or a
    file over MAX_FILE_LINES lines;
  - common/ logging above debug: library code returns errors, daemon/ decides
    what to log.

    check-layout.py SOURCE_ROOT          exit 1 and one line per problem
    check-layout.py --report SOURCE_ROOT the module graph's figures, too

The rule is read from the tree, so a new file in a new folder fails until
its folder is placed in LAYERS.
"""
import re
import sys
from pathlib import Path

MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 600

# Lowest first.  A folder may include its own files and those of any folder of
# a lower rank; folders of the same rank know nothing of each other.
LAYERS = {
    "common": {"base": 0, "http": 1, "api": 2, "config": 3, "client": 4},
    "daemon": {"core": 0, "http": 1, "policy": 2, "upstream": 2, "observe": 2,
               "jobs": 3, "handlers": 4, "main": 5},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
LOUD_LOG = re.compile(r'\blog_(info|notice|warning|error|emerg|alert|crit)(_errno)?\s*\(')


def sources(root):
    for tree in LAYERS:
        for p in sorted((root / tree).rglob("*")):
            if p.suffix in (".c", ".h") and p.is_file():
                yield p


def place(root, p):
    """(tree, folder) of a production file, or None for anything else."""
    rel = p.relative_to(root).parts
    if len(rel) < 3 or rel[0] not in LAYERS:
        return None
    return rel[0], rel[1]


def module(root, p):
    """NAME.c, NAME.h and a private NAME-internal.h are one module, and so is a
    .c file whose first include is NAME-internal.h (it completes NAME: split
    for size, one module by what it shares)."""
    name = str(p.relative_to(root).with_suffix(""))
    if p.suffix == ".c":
        first = INCLUDE.search(p.read_text())
        if first and first.group(1).endswith("-internal.h") and \
                Path(first.group(1)).parent == p.relative_to(root).parent:
            name = str(Path(first.group(1)).with_suffix(""))
    return name[:-len("-internal")] if name.endswith("-internal") else name


def check_includes(root, files, problems):
    graph = {}
    for p in files:
        src = place(root, p)
        me = module(root, p)
        graph.setdefault(me, set())
        for inc in INCLUDE.findall(p.read_text()):
            target = root / inc
            if not target.is_file():
                if "/" in inc:
                    problems.append("%s: includes %s, which does not exist" % (p.relative_to(root), inc))
                continue   # generated (denvrd-version.h) or a system header
            dst = place(root, target)
            if dst is None:
                continue
            graph[me].add(module(root, target))
            if src == dst:
                continue
            if src[0] == "common" and dst[0] == "daemon":
                problems.append("%s: common/ includes daemon/ (%s)" % (p.relative_to(root), inc))
                continue
            if src[0] != dst[0]:
                continue   # daemon/ using common/ is the point of common/
            ranks = LAYERS[src[0]]
            if src[1] not in ranks or dst[1] not in ranks:
                problems.append("%s: folder %s/%s has no place in check-layout.py's LAYERS" % (
                    p.relative_to(root), src[0], src[1] if src[1] not in ranks else dst[1]))
                continue
            if ranks[dst[1]] >= ranks[src[1]]:
                problems.append("%s: includes %s: %s/%s may not depend on %s/%s" % (
                    p.relative_to(root), inc, src[0], src[1], dst[0], dst[1]))
    for me in graph:
        graph[me].discard(me)
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


SIGNATURE_START = re.compile(r"^[A-Za-z_][\w\s\*,()\[\]]*\(")


def functions(text):
    """(name, first line, length) of each function defined in C text written in
    this project's style: the signature starts in column 0, the body ends with
    a "}" alone in column 0."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if SIGNATURE_START.match(line) and not line.startswith(("typedef", "struct ", "enum ")) or \
           re.match(r"^(static\s+)?(const\s+)?(struct|enum)\s+\w+\s*\**\s*\w+\s*\(", line):
            j = i
            sig = line
            while not lines[j].rstrip().endswith("{") and not lines[j].rstrip().endswith(";") and j + 1 < len(lines):
                j += 1
                sig += lines[j]
            if lines[j].rstrip().endswith("{") and "=" not in sig.split("(")[0]:
                k = j + 1
                while k < len(lines) and lines[k].rstrip() != "}":
                    k += 1
                name = re.search(r"(\w+)\s*\(", sig)
                out.append((name.group(1) if name else "?", i + 1, k - i + 1))
                i = k + 1
                continue
            i = j + 1
            continue
        i += 1
    return out


def main(argv):
    report = "--report" in argv
    args = [a for a in argv[1:] if a != "--report"]
    root = Path(args[0] if args else Path(__file__).resolve().parent.parent).resolve()
    files = list(sources(root))
    problems = []
    if not files:
        problems.append("no production sources under %s" % root)

    graph = check_includes(root, files, problems)
    for comp in cycles(graph):
        problems.append("include cycle among %d modules: %s" % (len(comp), " ".join(comp)))

    longest, biggest = [], []
    for p in files:
        text = p.read_text()
        rel = p.relative_to(root)
        n = text.count("\n")
        biggest.append((n, str(rel)))
        if n > MAX_FILE_LINES:
            problems.append("%s: %d lines (at most %d)" % (rel, n, MAX_FILE_LINES))
        if p.suffix == ".c":
            for name, line, length in functions(text):
                longest.append((length, "%s:%d %s()" % (rel, line, name)))
                if length > MAX_FUNCTION_LINES:
                    problems.append("%s:%d: %s() is %d lines (at most %d)" % (
                        rel, line, name, length, MAX_FUNCTION_LINES))
        if rel.parts[0] == "common" and rel.name not in ("log.c", "log.h"):
            for m in LOUD_LOG.finditer(text):
                problems.append("%s:%d: common/ logs above debug (log_%s): return the error instead" % (
                    rel, text.count("\n", 0, m.start()) + 1, m.group(1)))

    if report:
        edges = sum(len(v) for v in graph.values())
        print("modules %d, include edges %d, cycles %d" % (len(graph), edges, len(cycles(graph))))
        print("longest functions: " + ", ".join("%s %d" % (w, n) for n, w in sorted(longest, reverse=True)[:8]))
        print("biggest files: " + ", ".join("%s %d" % (w, n) for n, w in sorted(biggest, reverse=True)[:8]))
    for p in problems:
        print(p)
    if problems:
        print("check-layout: %d problem(s)" % len(problems))
        return 1
    print("check-layout: %d files, %d modules, no problem" % (len(files), len(graph)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
