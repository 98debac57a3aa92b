"""Fault injection, part 4: the database changes shape under pgstream.

8. The publication altered while streaming (a table added: its changes
   start appearing; a table removed: its changes stop), then dropped: a
   clear error and exit 1, nothing lost before it.
9. Schema changes under load: ADD COLUMN, DROP COLUMN, ALTER TYPE, RENAME
   COLUMN, RENAME TABLE, a new table, with a kill -9 and restart between two
   of them: every row arrives once or more, always in the schema it was
   written in.
10. pgstream's database idle while another database writes: the slot's
    confirmed_flush_lsn passes the other database's WAL within two status
    intervals."""

import random
import threading
import time
import unittest

import psycopg2

from harness import (Cluster, FaultStats, PgStream, Workload, check_idle_lags, check_stream,
                     confirmed_catch_up, wait_slot_inactive)

C = None
STATS = FaultStats()
LISTENING = "listening for changes..."


def setUpModule():
    global C
    C = Cluster("wal_sender_timeout = 5s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    STATS.report("test_faults_schema")
    C.close()


def insert_rows(conn, table, ids, per_txn=3, values="%s"):
    """Insert ids into table in small transactions; values: the VALUES
    expression with %s for the id (repeated as needed)."""
    n = values.count("%s")
    with conn.cursor() as cur:
        for k in range(0, len(ids), per_txn):
            for i in ids[k:k + per_txn]:
                cur.execute("INSERT INTO %s VALUES (%s)" % (table, values), (i,) * n)
            conn.commit()


def rows_of(events, table):
    return [e for e in events if e.get("table") == table]


class Publication(unittest.TestCase):
    def test_publication_altered_then_dropped(self):
        for t in ("pa", "pb"):
            C.sql("CREATE TABLE %s (id bigint PRIMARY KEY, pad text)" % t)
        C.sql("CREATE PUBLICATION pub_alt FOR TABLE pa")
        load = Workload(C, "ledger_unpublished")  # load the publication must not carry
        p = PgStream(C, "--status-interval", "0.2", slot="s_pub", pub="pub_alt").start()
        conn = psycopg2.connect(C.url())
        try:
            p.wait_stderr(LISTENING)
            load.start(10 ** 9, pause=0.005)
            ins = lambda t, a, b: insert_rows(conn, t, list(range(a, b)), values="%s, 'p' || %s")
            ins("pa", 1, 101), ins("pb", 1, 101)
            C.sql("ALTER PUBLICATION pub_alt ADD TABLE pb")
            STATS.fault("publication_add_table")
            ins("pa", 101, 201), ins("pb", 101, 201)
            C.sql("ALTER PUBLICATION pub_alt DROP TABLE pa")
            STATS.fault("publication_drop_table")
            ins("pa", 201, 301), ins("pb", 201, 301)
            p.wait_for(lambda: '"table":"pb","lsn"' in p.stdout()
                       and rows_of(p.events(), "pb")[-1]["new"]["id"] == 300, 60, "pb row 300")
            events = p.events()
            self.assertEqual([e["new"]["id"] for e in rows_of(events, "pa")], list(range(1, 201)))
            self.assertEqual([e["new"]["id"] for e in rows_of(events, "pb")],
                             list(range(101, 301)))
            self.assertEqual(rows_of(events, load.table), [])
            STATS.checked += len(rows_of(events, "pa")) + len(rows_of(events, "pb"))
            # Dropped while streaming: the next change cannot be decoded.
            C.sql("DROP PUBLICATION pub_alt")
            STATS.fault("publication_dropped")
            ins("pb", 301, 302)
            rc = p.proc.wait(timeout=30)
            err = p.stderr()
            self.assertEqual(rc, 1, err)
            lines = [l for l in err.splitlines() if l.startswith("pgstream: ")]
            self.assertEqual(len(lines), 1, err)
            self.assertIn('publication "pub_alt" does not exist', lines[0])
            self.assertEqual(len(p.events()), len(events))
        finally:
            load.stop()
            conn.close()
            p.close()


class SchemaChanges(unittest.TestCase):
    def test_schema_changes_under_load_with_a_restart(self):
        slot = "s_schema"
        load = Workload(C, "ledger_schema")
        C.sql("CREATE TABLE sch (id bigint PRIMARY KEY, v int, w text)")
        expect = {}  # id -> (table, new)
        # (DDL before the phase, table, VALUES expression, expected row)
        phases = [
            (None, "sch", "%s, %s, 'w' || %s", lambda i: {"id": i, "v": i, "w": "w%d" % i}),
            ("ALTER TABLE sch ADD COLUMN extra int DEFAULT 7", "sch", "%s, %s, 'w' || %s",
             lambda i: {"id": i, "v": i, "w": "w%d" % i, "extra": 7}),
            ("ALTER TABLE sch DROP COLUMN w", "sch", "%s, %s",
             lambda i: {"id": i, "v": i, "extra": 7}),
            ("ALTER TABLE sch ALTER COLUMN v TYPE text USING v::text", "sch", "%s, 'v' || %s",
             lambda i: {"id": i, "v": "v%d" % i, "extra": 7}),
            ("ALTER TABLE sch RENAME COLUMN v TO v2", "sch", "%s, 'v' || %s",
             lambda i: {"id": i, "v2": "v%d" % i, "extra": 7}),
            ("ALTER TABLE sch RENAME TO sch2", "sch2", "%s, 'v' || %s",
             lambda i: {"id": i, "v2": "v%d" % i, "extra": 7}),
            ("CREATE TABLE newt (id bigint PRIMARY KEY, note text, at date)", "newt",
             "%s, 'n' || %s, '2026-01-01'",
             lambda i: {"id": i, "note": "n%d" % i, "at": "2026-01-01"}),
        ]
        runs, marks = [], []
        p = PgStream(C, "--status-interval", "0.2", slot=slot).start()
        conn = psycopg2.connect(C.url())
        try:
            p.wait_stderr(LISTENING)
            load.start(10 ** 9, big_every=20, big_size=2000, pause=0.003)
            next_id = 1
            for n, (ddl, table, values, row) in enumerate(phases):
                if ddl:
                    C.sql(ddl)
                    STATS.fault("ddl")
                ids = list(range(next_id, next_id + 30))
                next_id += 30
                insert_rows(conn, table, ids, values=values)
                expect.update({i: (table, row(i)) for i in ids})
                if n == 2:  # kill -9 between two schema changes, restart
                    time.sleep(random.uniform(0, 0.5))
                    p.kill()
                    STATS.fault("kill9")
                    runs.append(p.events())
                    marks.append((len(runs[0]), wait_slot_inactive(C, slot)))
                    p.close()
                    p = PgStream(C, "--status-interval", "0.2", slot=slot).start()
                    p.wait_stderr(LISTENING)
            load.stop()
            last = load.committed[-1][-1]
            p.wait_for(lambda: '"id":%d,' % last in p.stdout()
                       and '"table":"newt"' in p.stdout()
                       and rows_of(p.events(), "newt")[-1]["new"]["id"] == next_id - 1,
                       60, "the last rows")
            self.assertEqual(p.stop(), 0, p.stderr())
            runs.append(p.events())
        finally:
            load.stop()
            conn.close()
            p.close()
        stream = runs[0] + runs[1]
        seen = set()
        for e in stream:
            if e.get("table") in ("sch", "sch2", "newt"):
                i = e["new"]["id"]
                self.assertIn(i, expect)
                self.assertEqual((e["table"], e["new"]), expect[i])
                self.assertEqual(e["op"], "insert")
                seen.add(i)
        self.assertEqual(seen, set(expect))
        checked, repeats = check_stream(stream, load, marks)
        STATS.checked += checked + len(seen)
        print("schema changes: %d DDL, %d rows across them, %d load events checked, %d repeats"
              % (len(phases) - 1, len(expect), checked, repeats), flush=True)


class IdleDatabase(unittest.TestCase):
    def test_idle_slot_follows_other_databases(self):
        # Another database writes all the time; pgstream's has no changes.
        # The slot's confirmed_flush_lsn must pass the server's WAL position
        # of random moments within two status intervals
        # (harness.check_idle_lags): pgstream acknowledges WAL it never
        # got an event for.
        slot = "s_idle"
        interval = 0.5
        C.sql("CREATE DATABASE otherdb")
        C.sql("CREATE TABLE busy (id bigserial PRIMARY KEY, pad text)", db="otherdb")
        p = PgStream(C, "--status-interval", "%g" % interval, slot=slot).start()
        stop = threading.Event()

        def writer():
            conn = psycopg2.connect(C.url("otherdb"))
            conn.autocommit = True
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute("INSERT INTO busy (pad) SELECT repeat('x', 200)"
                                " FROM generate_series(1, 50)")
                    time.sleep(0.01)
            conn.close()

        t = threading.Thread(target=writer)
        try:
            p.wait_stderr(LISTENING)
            t.start()
            lags = []
            for _ in range(9):
                time.sleep(random.uniform(0.2, 1))
                lags.append(confirmed_catch_up(C, slot, C.current_lsn()))
            self.assertEqual(p.events(), [])
            print("idle database, other database writing: " + check_idle_lags(lags, interval),
                  flush=True)
            STATS.fault("idle_checks", len(lags))
        finally:
            stop.set()
            if t.is_alive():
                t.join()
            p.close()


if __name__ == "__main__":
    unittest.main()
