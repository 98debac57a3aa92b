#!/usr/bin/python3
"""cycle.py — pgstream under valgrind memcheck: a normal start, a few
hundred changes of every kind streamed, a stop by SIGTERM, then a run that
exits by itself at --end-lsn. Any invalid read or write, any use of an
uninitialised value, and any definitely or indirectly lost block fails the
test; "still reachable" memory (libpq's and OpenSSL's process-lifetime
caches) is allowed, since nothing frees it before exit by design.

Run by ctest as valgrind/cycle with PGSTREAM_BIN and VALGRIND set."""

import os
import re
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
from harness import Cluster, PgStream, lsn_str  # noqa: E402

VALGRIND = os.environ.get("VALGRIND", "valgrind")
C = None


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric, tags text[],"
          " doc jsonb, big text, at timestamptz DEFAULT now())")
    C.sql("CREATE TABLE audit (k int, v text)")
    C.sql("ALTER TABLE audit REPLICA IDENTITY FULL")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    C.sql("SELECT pg_create_logical_replication_slot('vg', 'pgoutput')")


def tearDownModule():
    C.close()


def workload(base):
    """Every op, a few hundred changes; returns how many events it makes."""
    conn = C.connect()
    cur = conn.cursor()
    events = 0

    def run(sql, *args):
        nonlocal events
        cur.execute(sql, args)
        events += cur.rowcount

    run("INSERT INTO items (id, name, price, tags, doc, big) SELECT g + %s, 'n' || g,"
        " g * 1.5, ARRAY['a', 'b'], jsonb_build_object('g', g),"
        " CASE WHEN g %% 50 = 0 THEN repeat(md5(g::text), 200) END"
        " FROM generate_series(1, 300) g", base)
    # Unchanged TOAST values come through as 'u' columns.
    run("UPDATE items SET price = price + 1 WHERE id > %s", base)
    run("DELETE FROM items WHERE id > %s AND id %% 3 = 0", base)
    run("INSERT INTO audit SELECT g, 'v' || g FROM generate_series(1, 50) g")
    run("UPDATE audit SET v = v || '!'")
    run("DELETE FROM audit WHERE k <= 25")
    cur.execute("TRUNCATE audit")
    cur.execute("SELECT pg_logical_emit_message(true, 'vg', 'transactional')")
    cur.execute("SELECT pg_logical_emit_message(false, 'vg', '\\xff00'::bytea)")
    events += 3
    # A schema change mid-stream: a new Relation message, a new column.
    cur.execute("ALTER TABLE audit ADD COLUMN extra_%d int DEFAULT 7" % base)
    run("INSERT INTO audit (k, v) VALUES (1, 'after alter')")
    conn.close()
    return events


def under_valgrind(p):
    log = os.path.join(p.workdir, "valgrind.log")
    p.argv = [VALGRIND, "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
              "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
              "--num-callers=30", "--log-file=" + log, *p.argv]
    return log


class Valgrind(unittest.TestCase):
    def check_clean(self, rc, log, p):
        with open(log) as f:
            report = f.read()
        # --quiet leaves the log empty unless valgrind found something.
        self.assertEqual((rc, report), (0, ""),
                         "exit %s; valgrind:\n%s\npgstream stderr:\n%s" % (rc, report, p.stderr()))

    def test_1_start_stream_sigterm(self):
        p = PgStream(C, "--status-interval", "1", slot="vg")
        log = under_valgrind(p)
        try:
            p.start()
            p.wait_stderr("listening for changes", timeout=120)
            n = workload(0)
            events = p.wait_events(n, timeout=300)
            self.assertEqual(len(events), n)
            self.assertEqual({e["op"] for e in events},
                             {"insert", "update", "delete", "truncate", "message"})
            p.signal(signal.SIGTERM)
            rc = p.proc.wait(timeout=120)
            self.check_clean(rc, log, p)
        finally:
            p.close()

    def test_2_end_lsn_exit(self):
        n = workload(1000)
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), slot="vg")
        log = under_valgrind(p)
        try:
            rc = p.run(timeout=300)
            self.assertEqual(len(p.events()), n, p.stderr())
            self.check_clean(rc, log, p)
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main()
