"""--heartbeat-interval: while the published table is idle and an
unpublished table (or another database) is written, the slot's
confirmed_flush_lsn keeps up with the server's WAL; the heartbeat messages
are in the WAL (a test_decoding slot sees them) but not in pgstream's
output. Without heartbeats, on PostgreSQL 15, the slot keeps up too: it is
pgstream's acknowledgement of keepalive positions that does it (checked
here, so the README's advice stays true). On a server where nothing writes
at all, only heartbeats move the slot."""

import threading
import time
import unittest

from harness import Cluster, PgStream

C = None
WINDOW = 6  # seconds of unpublished writes per run


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE TABLE hb_pub (id int PRIMARY KEY)")
    C.sql("CREATE TABLE hb_other (id serial PRIMARY KEY)")
    C.sql("CREATE PUBLICATION pgstream_pub FOR TABLE hb_pub")
    C.sql("CREATE DATABASE hb_elsewhere")
    C.sql("CREATE TABLE hb_other (id serial PRIMARY KEY)", db="hb_elsewhere")


def tearDownModule():
    C.close()


def heartbeats_in_wal(slot):
    rows = C.sql("SELECT data FROM pg_logical_slot_peek_changes(%s, NULL, NULL)", (slot,))
    return sum(1 for (d,) in rows if "prefix: pgstream.heartbeat" in d)


def run(test, slot, db, *args):
    """Stream slot while only hb_other in db is written for WINDOW seconds.
    Returns (bytes the slot stayed behind the WAL at the end, how far it
    moved, heartbeat messages written meanwhile, pgstream's events)."""
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot + "_td",))
    p = PgStream(C, "--status-interval", "1", *args, slot=slot)
    stop = threading.Event()

    def writer():
        conn = C.connect(db)
        cur = conn.cursor()
        while not stop.is_set():
            cur.execute("INSERT INTO hb_other DEFAULT VALUES")
            time.sleep(0.02)
        conn.close()
    t = threading.Thread(target=writer)
    try:
        p.start()
        p.wait_stderr("listening for changes")
        start = C.slot_confirmed(slot)
        t.start()
        time.sleep(WINDOW)
        stop.set()
        t.join()
        wal = C.current_lsn()
        # Caught up: within two status intervals of the last write when
        # the machine is quiet; 10 s allows for a loaded one (the loop ends
        # as soon as it is).
        deadline = time.time() + 10
        while C.slot_confirmed(slot) < wal and time.time() < deadline:
            time.sleep(0.1)
        confirmed = C.slot_confirmed(slot)
        test.assertEqual(p.stop(), 0, p.stderr())
        return (max(0, wal - confirmed), confirmed - start, heartbeats_in_wal(slot + "_td"),
                p.events())
    finally:
        stop.set()
        if t.is_alive():
            t.join()
        p.close()
        C.sql("SELECT pg_drop_replication_slot(%s)", (slot + "_td",))


class Heartbeat(unittest.TestCase):
    def test_slot_advances_with_heartbeats(self):
        for db in ("postgres", "hb_elsewhere"):
            with self.subTest(writes_in=db):
                behind, moved, beats, events = run(self, "s_hb_" + db, db,
                                                   "--heartbeat-interval", "1")
                self.assertGreater(moved, 10000)  # the writer's WAL, not a byte or two
                self.assertLess(behind, 1024)
                # At status updates, once a second: about WINDOW of them.
                self.assertGreaterEqual(beats, WINDOW - 2)
                self.assertEqual(events, [])  # heartbeats are not events

    def test_without_heartbeats_keepalives_advance_the_slot(self):
        for db in ("postgres", "hb_elsewhere"):
            with self.subTest(writes_in=db):
                behind, moved, beats, events = run(self, "s_nohb_" + db, db)
                self.assertEqual(beats, 0)
                self.assertGreater(moved, 10000)
                self.assertLess(behind, 1024)
                self.assertEqual(events, [])

    def test_heartbeats_move_the_slot_of_an_idle_server(self):
        """Nothing writes at all: each heartbeat is WAL of this database,
        so the acknowledged position moves at about every interval (what an
        alert on it can rely on)."""
        C.sql("SELECT pg_create_logical_replication_slot('s_idle', 'pgoutput')")
        p = PgStream(C, "--status-interval", "1", "--heartbeat-interval", "1", slot="s_idle")
        try:
            p.start()
            p.wait_stderr("listening for changes")
            seen = set()
            deadline = time.time() + WINDOW
            while time.time() < deadline:
                seen.add(C.slot_confirmed("s_idle"))
                time.sleep(0.2)
            # About one position a second; a loaded machine may merge some.
            self.assertGreaterEqual(len(seen), WINDOW // 2, sorted(seen))
            self.assertEqual(p.events(), [])
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()

    def test_other_messages_are_still_events(self):
        C.sql("SELECT pg_create_logical_replication_slot('s_msg', 'pgoutput')")
        p = PgStream(C, "--status-interval", "1", "--heartbeat-interval", "1", slot="s_msg")
        try:
            p.start()
            p.wait_stderr("listening for changes")
            time.sleep(2.5)  # a heartbeat or two
            C.sql("SELECT pg_logical_emit_message(false, 'pgstream.heartbeatx', 'a')")
            C.sql("INSERT INTO hb_pub VALUES (1)")
            ev = p.wait_events(2)
            self.assertEqual([e["op"] for e in ev], ["message", "insert"])
            self.assertEqual(ev[0]["prefix"], "pgstream.heartbeatx")
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main()
