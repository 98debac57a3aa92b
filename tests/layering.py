#!/usr/bin/env python3
"""layering.py SRC_DIR [--self-test] - no #include in src/ points back up
the pipeline (ctest style/layering).

The pipeline runs pg/ (connection, decoder) -> event/ (the change model and
its encoders, which wrap the decoder's structs) -> sink/, on util/; the files
at the top of src/ (daemon, config, checkpoint, spool, main) wire it
together. So: util/ includes only util/; pg/ nothing from event/ or sink/;
event/ nothing from sink/; sink/ nothing from pg/ (sinks never see Postgres
types); and none of them a header from the top of src/.

Second rule: the pure modules (the libraries that link no libpq, see
CMakeLists.txt) reach no libpq or OpenSSL header, not even through another
project header: test_pace and the decoder tests and fuzz targets rely on it.

Each offending include is reported as FILE:LINE. The few known today are
listed in KNOWN below: reported as known, not failed; an entry that no longer
occurs fails too, so the list only shrinks.
"""

import os
import re
import sys
import tempfile

# The layers a file in each directory of src/ may include. Files at the top
# of src/ (layer "") are not listed: they may include any.
ALLOWED = {
    "util": {"util"},
    "pg": {"pg", "util"},
    "event": {"event", "pg", "util"},
    "sink": {"sink", "event", "util"},
    # ops/: metrics and the HTTP endpoint, beside the pipeline: the daemon
    # feeds it numbers and names, so it needs nothing of pg/, event/, sink/.
    "ops": {"ops", "util"},
}

# The pure libraries, as CMakeLists.txt names their source lists: their .c
# files and the headers of the same name link no libpq, no OpenSSL.
PURE_LISTS = ("PGS_UTIL_SOURCES", "PGS_DECODE_SOURCES", "PGS_PACE_SOURCES")
IMPURE_SYSTEM = re.compile(r"^(libpq-fe\.h|libpq/|openssl/)")

# Known violations of the layer rule, to be removed (issue 12), as exact
# (file, include) pairs relative to src/, e.g. ("pg/relcache.h",
# "event/valtype.h"), a comment above each saying why it is still there.
# Remove an entry with its include. Empty since b8cadcb took pg/relcache.h
# and pg/catalog.h off event/valtype.h.
KNOWN = set()

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer(rel):
    """The layer of a path relative to src/: its directory, "" at the top."""
    return rel.split("/", 1)[0] if "/" in rel else ""


def sources(src):
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if name.endswith((".c", ".h")):
                path = os.path.join(root, name)
                yield os.path.relpath(path, src).replace(os.sep, "/")


def includes(src, rel):
    """(line number, project header relative to src/ or None, text) for each
    #include of src/rel. Quoted names resolve as the compiler does here:
    beside the including file first, then under src/ (-Isrc)."""
    out = []
    with open(os.path.join(src, rel), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            kind, name = m.groups()
            cands = [name] if kind == "<" else [os.path.join(os.path.dirname(rel), name), name]
            target = None
            for c in cands:
                c = os.path.normpath(c).replace(os.sep, "/")
                if not c.startswith("../") and os.path.isfile(os.path.join(src, c)):
                    target = c
                    break
            out.append((n, target, name))
    return out


def pure_files(src):
    """The pure modules' files relative to src/, from the CMakeLists.txt
    beside src/."""
    with open(os.path.join(src, "..", "CMakeLists.txt"), encoding="utf-8") as f:
        cmake = f.read()
    out = set()
    for name in PURE_LISTS:
        m = re.search(r"set\(%s\s([^)]*)\)" % name, cmake)
        if not m:
            raise SystemExit("layering: no set(%s ...) in CMakeLists.txt" % name)
        for path in m.group(1).split():
            rel = os.path.relpath(path, "src").replace(os.sep, "/")
            out.update({rel, rel[:-2] + ".h"})
    return out


def impure_chain(graph, rel, seen):
    """The includes leading from rel to a libpq or OpenSSL header, as
    [(line, name), ...] from rel's own include on, or None."""
    if rel in seen:
        return None
    seen.add(rel)
    for n, target, name in graph[rel]:
        if target is None and IMPURE_SYSTEM.match(name):
            return [(n, "<%s>" % name)]
        rest = impure_chain(graph, target, seen) if target else None
        if rest:
            return [(n, target)] + rest
    return None


def check(src, known, pure):
    """Returns (failures, notes): lines to print, naming files as src/...
    (the directory's own name)."""
    failures, notes, found = [], [], set()
    top = os.path.basename(os.path.abspath(src))
    graph = {rel: includes(src, rel) for rel in sources(src)}
    for rel, incs in sorted(graph.items()):
        allowed = ALLOWED.get(layer(rel))
        if allowed is None:
            continue
        for n, target, _ in incs:
            if target is None or layer(target) in allowed:
                continue
            what = "%s/%s:%d: includes %s: %s/ may include only %s" % (
                top, rel, n, target, layer(rel), ", ".join(x + "/" for x in sorted(allowed)))
            if (rel, target) in known:
                found.add((rel, target))
                notes.append(what + " (known, to be removed (issue 12))")
            else:
                failures.append(what)
    for rel, target in sorted(known - found):
        failures.append("%s/%s: no longer includes %s: remove the pair from KNOWN in "
                        "tests/layering.py" % (top, rel, target))
    for rel in sorted(graph):
        chain = impure_chain(graph, rel, set()) if rel in pure else None
        if chain:
            failures.append("%s/%s:%d: reaches libpq or OpenSSL (%s), which a pure module must not"
                            % (top, rel, chain[0][0], " -> ".join(name for _, name in chain)))
    return failures, notes


def self_test():
    """The check itself fails where it must: a new violation, a stale
    allow-list entry, a pure module that reaches libpq through a header."""
    tree = {
        "util/a.h": "#include <stddef.h>\n",
        "pg/p.h": '#include "util/a.h"\n#include "event/e.h"\n',
        "pg/conn_int.h": "#include <libpq-fe.h>\n",
        "pg/pgoutput.c": '#include "pg/p.h"\n',
        "event/e.h": '#include "util/a.h"\n',
        "sink/s.c": '#include "s.h"\n',
        "sink/s.h": "\n",
        "event/g.c": '#include "pg/p.h"\n',
        "sink/u.c": '#include "event/e.h"\n',
        "daemon.c": '#include "pg/p.h"\n#include "sink/s.h"\n',
    }
    known = {("pg/p.h", "event/e.h")}
    cases = [  # (name, files changed, a failure that must be reported; None: none)
        ("clean tree with a known pair", {}, None),
        ("new violation", {"pg/q.c": '#include <stdio.h>\n\n#include "sink/s.h"\n'},
         "src/pg/q.c:3: includes sink/s.h"),
        ("relative path", {"sink/t.c": '#include "../pg/p.h"\n'}, "src/sink/t.c:1: includes pg/p.h"),
        ("top-level header", {"event/f.c": '#include "daemon.h"\n', "daemon.h": "\n"},
         "src/event/f.c:1: includes daemon.h"),
        ("stale allow-list entry", {"pg/p.h": '#include "util/a.h"\n'},
         "src/pg/p.h: no longer includes event/e.h"),
        ("pure module reaching libpq", {"pg/p.h": tree["pg/p.h"] + '#include "conn_int.h"\n'},
         "src/pg/pgoutput.c:1: reaches libpq or OpenSSL (pg/p.h -> pg/conn_int.h -> <libpq-fe.h>)"),
    ]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, changed, want) in enumerate(cases):
            d = os.path.join(tmp, str(i), "src")
            for rel, text in dict(tree, **changed).items():
                os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
                with open(os.path.join(d, rel), "w") as f:
                    f.write(text)
            failures, _ = check(d, known, {"pg/pgoutput.c", "util/a.h"})
            ok = not failures if want is None else any(f.startswith(want) for f in failures)
            print("self-test, %s: %s" % (name, "ok" if ok else "FAILED, got %r" % failures))
            bad += not ok
    return bad


def main():
    if len(sys.argv) < 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    if "--self-test" in sys.argv[2:] and self_test():
        return 1
    failures, notes = check(sys.argv[1], KNOWN, pure_files(sys.argv[1]))
    for line in notes:
        print(line)
    for line in failures:
        print(line)
    print("layering: %d offending include(s), %d known" % (len(failures), len(notes)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
