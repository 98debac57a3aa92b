#!/usr/bin/env python3
"""compare_builds.py — do two pgstream binaries write the same bytes?

For a change that must not alter output (a restructuring), run the binary
from before and the one from after on the same WAL and compare what they
write, byte for byte, in every format:

    python3 tests/tools/compare_builds.py OLD_BIN NEW_BIN [N] [--callgrind]

One scratch cluster; one slot per binary and format, created before the
changes, so each reads exactly the same WAL: the benchmark's reference
workload (bench/workload/, N rows, default 20000), every value rule of
test_values.py, every operation of test_ops.py (replica identities,
unchanged TOAST, ALTER TABLE, TRUNCATE, logical messages), and user-defined
types (domains, arrays of domains, enums) that go through the catalog.
Prints one line per format and exits 1 on the first difference. With
--callgrind each binary also runs under valgrind's callgrind and the
instructions it executed are printed side by side: a cost comparison that,
unlike a timing, does not depend on what else the machine is doing."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import ROOT, Cluster, lsn_str  # noqa: E402
from test_values import VALS_ROWS, VALS_TABLE  # noqa: E402

FORMATS = ["json", "pretty"]

STATEMENTS = [
    VALS_TABLE,
    VALS_ROWS,
    "UPDATE vals SET t = 'changed', ia = '{9}' WHERE id = 1",
    "DELETE FROM vals WHERE id = 2",
    "CREATE TABLE t_full (id int PRIMARY KEY, name text, n int)",
    "ALTER TABLE t_full REPLICA IDENTITY FULL",
    "INSERT INTO t_full VALUES (1, 'a', 1), (2, 'b', 2)",
    "UPDATE t_full SET name = 'c' WHERE id = 1",
    "UPDATE t_full SET n = n WHERE id = 2",
    "DELETE FROM t_full WHERE id = 1",
    "CREATE TABLE t_idx (a int NOT NULL, b int NOT NULL, c text)",
    "CREATE UNIQUE INDEX t_idx_ab ON t_idx (a, b)",
    "ALTER TABLE t_idx REPLICA IDENTITY USING INDEX t_idx_ab",
    "INSERT INTO t_idx VALUES (1, 2, 'x')",
    "UPDATE t_idx SET b = 3 WHERE a = 1",
    "DELETE FROM t_idx WHERE a = 1",
    "CREATE TABLE t_toast (id int PRIMARY KEY, big text, n int)",
    "ALTER TABLE t_toast ALTER COLUMN big SET STORAGE EXTERNAL",
    "INSERT INTO t_toast VALUES (1, repeat('x', 100000), 1)",
    "UPDATE t_toast SET n = 2 WHERE id = 1",
    "CREATE TABLE t_alter (id int PRIMARY KEY, a text)",
    "INSERT INTO t_alter VALUES (1, 'x')",
    "ALTER TABLE t_alter ADD COLUMN b int DEFAULT 7",
    "INSERT INTO t_alter VALUES (2, 'y', 8)",
    "ALTER TABLE t_alter DROP COLUMN a",
    "UPDATE t_alter SET b = 10 WHERE id = 1",
    "CREATE TABLE t_tr1 (id int PRIMARY KEY)",
    "CREATE TABLE t_tr2 (id int PRIMARY KEY)",
    "INSERT INTO t_tr1 VALUES (1)",
    "TRUNCATE t_tr1, t_tr2 RESTART IDENTITY CASCADE",
    "CREATE SCHEMA \"other schema\"",
    "CREATE TABLE \"other schema\".\"odd name\" (\"k ey\" int PRIMARY KEY, \"v=al\" text)",
    "INSERT INTO \"other schema\".\"odd name\" VALUES (1, 'v')",
    "CREATE DOMAIN posint AS int CHECK (VALUE > 0)",
    "CREATE DOMAIN tags AS text[]",
    "CREATE TYPE mood AS ENUM ('sad', 'ok')",
    "CREATE TABLE t_types (id int PRIMARY KEY, p posint, ps posint[], tg tags, m mood, ms mood[])",
    "INSERT INTO t_types VALUES (1, 5, '{1,2}', '{a,b}', 'ok', '{sad,ok}')",
    "SELECT pg_logical_emit_message(true, 'app', 'hello \u2713')",
    "SELECT pg_logical_emit_message(false, 'raw', '\\xff00fe'::bytea)",
    "BEGIN; INSERT INTO t_full VALUES (10, 'in', 1); "
    "SELECT pg_logical_emit_message(true, 'in txn', 'x'); COMMIT",
]


def slot(binary, fmt):
    return "cmp_%d_%s" % (binary, fmt)


def instructions(prefix, argv):
    """Run argv under callgrind; the instructions it executed."""
    out = tempfile.mktemp(prefix="pgstream-callgrind-")
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                        *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=1800)
    if p.returncode != 0:
        sys.exit("%s under callgrind exited %d: %s" % (prefix, p.returncode,
                                                       p.stderr.decode()[-2000:]))
    with open(out) as f:
        total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
    if os.environ.get("KEEP_CALLGRIND"):
        print("callgrind output of %s: %s" % (prefix, out))
    else:
        os.unlink(out)
    return total


def main():
    args = [a for a in sys.argv[1:] if a != "--callgrind"]
    callgrind = len(args) != len(sys.argv) - 1
    if len(args) not in (2, 3):
        sys.exit(__doc__)
    bins = args[0:2]
    n = int(args[2]) if len(args) == 3 else 20000
    c = Cluster("max_replication_slots = 30")
    try:
        c.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
        workload = os.path.join(ROOT, "bench", "workload")
        psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", c.url()]
        subprocess.run(psql + ["-f", os.path.join(workload, "schema.sql")], check=True)
        for b in range(2):
            for fmt in FORMATS + (["callgrind"] if callgrind else []):
                c.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                      (slot(b, fmt),))
        subprocess.run(psql + ["-v", "n=%d" % n, "-f", os.path.join(workload, "workload.sql")],
                       check=True, stdout=subprocess.DEVNULL)
        for stmt in STATEMENTS:
            subprocess.run(psql + ["-c", stmt], check=True, stdout=subprocess.DEVNULL)
        end = lsn_str(c.current_lsn())
        same = True
        for fmt in FORMATS:
            out = []
            for b, binary in enumerate(bins):
                p = subprocess.run([binary, "--database-url", c.url(), "--slot", slot(b, fmt),
                                    "--publication", "pgstream_pub", "--format", fmt,
                                    "--end-lsn", end, "--env-file", "/dev/null"],
                                   capture_output=True, timeout=600)
                if p.returncode != 0:
                    sys.exit("%s exited %d: %s" % (binary, p.returncode, p.stderr.decode()))
                out.append(p.stdout)
            lines = out[0].count(b"\n")
            if out[0] == out[1]:
                print("%s: identical, %d bytes, %d lines" % (fmt, len(out[0]), lines))
            else:
                same = False
                at = next(i for i, (x, y) in enumerate(zip(out[0], out[1])) if x != y) \
                    if any(x != y for x, y in zip(out[0], out[1])) else min(map(len, out))
                print("%s: DIFFERENT (%d and %d bytes), first at byte %d:\n  %r\n  %r"
                      % (fmt, len(out[0]), len(out[1]), at, out[0][at - 40:at + 80],
                         out[1][at - 40:at + 80]))
        if callgrind:
            ir = [instructions(binary, [binary, "--database-url", c.url(), "--slot",
                                        slot(b, "callgrind"), "--publication", "pgstream_pub",
                                        "--format", "json", "--end-lsn", end, "--env-file",
                                        "/dev/null"])
                  for b, binary in enumerate(bins)]
            print("callgrind, json to /dev/null: %d and %d instructions (%.3fx)"
                  % (ir[0], ir[1], ir[1] / ir[0]))
        sys.exit(0 if same else 1)
    finally:
        c.close()


if __name__ == "__main__":
    main()
