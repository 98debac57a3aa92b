"""--streaming (pgoutput protocol v2): large transactions arrive while still
running, are spooled, and are emitted only at commit, exactly as protocol v1
would emit them. Both modes read the same WAL from two slots and must
produce identical events; aborted transactions and rolled-back
subtransactions must leave no trace."""

import time
import unittest

from harness import Cluster, PgStream, lsn_str

C = None


def setUpModule():
    global C
    # A tiny decoding budget makes the server stream anything over 64 kB.
    C = Cluster("logical_decoding_work_mem = '64kB'")
    C.sql("CREATE TABLE big (id int PRIMARY KEY, v text, n int)")
    C.sql("CREATE TABLE small (id int PRIMARY KEY)")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


def workload():
    """Big transactions with savepoints, an abort, DDL inside a streamed
    transaction, and small transactions committing in between."""
    big = C.connect()
    big.autocommit = False
    cur = big.cursor()
    cur.execute("INSERT INTO big SELECT g, repeat('x', 50), g FROM generate_series(1, 5000) g")
    cur.execute("SAVEPOINT a")
    cur.execute("INSERT INTO big SELECT g, 'rolled back', g FROM generate_series(5001, 10000) g")
    cur.execute("ROLLBACK TO SAVEPOINT a")
    # Small transactions commit while the big one is streaming.
    for i in range(1, 21):
        C.sql("INSERT INTO small VALUES (%s)", (i,))
    cur.execute("SAVEPOINT b")
    cur.execute("UPDATE big SET n = -n WHERE id <= 2000")
    cur.execute("RELEASE SAVEPOINT b")
    cur.execute("INSERT INTO big SELECT g, 'kept', g FROM generate_series(10001, 13000) g")
    big.commit()
    # A streamed transaction that aborts.
    cur.execute("INSERT INTO big SELECT g, 'aborted', g FROM generate_series(20001, 30000) g")
    big.rollback()
    # DDL inside a streamed transaction: the new schema travels in the stream.
    cur.execute("ALTER TABLE big ADD COLUMN extra text DEFAULT 'e'")
    cur.execute("INSERT INTO big SELECT g, 'after ddl', g, 'x' || g"
                " FROM generate_series(30001, 34000) g")
    big.commit()
    C.sql("INSERT INTO big VALUES (40000, 'single', 1, 'y')")
    big.close()


class Streaming(unittest.TestCase):
    def test_same_events_as_protocol_v1(self):
        for slot in ("s_v1", "s_stream"):
            C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        workload()
        end = lsn_str(C.current_lsn())
        runs = {}
        for slot, extra in (("s_v1", ()), ("s_stream", ("--streaming",))):
            p = PgStream(C, "--end-lsn", end, *extra, slot=slot)
            try:
                self.assertEqual(p.run(timeout=300), 0, p.stderr())
                runs[slot] = p.stdout().splitlines()
            finally:
                p.close()
        # Statistics reach the view shortly after the walsender exits.
        streamed = 0
        for _ in range(50):
            streamed = C.value("SELECT stream_txns FROM pg_stat_replication_slots"
                               " WHERE slot_name = 's_stream'")
            if streamed:
                break
            time.sleep(0.1)
        self.assertGreater(streamed, 0, "the server streamed nothing: the test tests nothing")
        self.assertEqual(len(runs["s_v1"]), 5000 + 20 + 2000 + 3000 + 4000 + 1)
        self.assertEqual(runs["s_stream"], runs["s_v1"])
        self.assertNotIn("rolled back", "".join(runs["s_stream"]))
        self.assertNotIn("aborted", "".join(runs["s_stream"]))


if __name__ == "__main__":
    unittest.main()
