"""Fault injection, part 2: the server side breaks under a running pgstream.

3. PostgreSQL restarted in fast and immediate mode while streaming under a
   continuous workload (a writer whose COMMIT is cut by the restart has an
   unknown outcome: settled from the table afterwards, never partial).
4. The walsender killed with pg_terminate_backend.
5. The network cut for longer than wal_sender_timeout (3 s here) by a TCP
   proxy that stops forwarding, then restored.
7. The slot taken by another consumer mid-stream; the slot dropped while
   pgstream runs; the slot invalidated by max_slot_wal_keep_size.

Each fault is injected at a random moment; after each, the slot's
confirmed_flush_lsn bounds what may repeat (harness.check_stream)."""

import random
import time
import unittest

import psycopg2
import psycopg2.extras

from harness import (Cluster, FaultStats, PgStream, ResilientWorkload, Workload,
                     check_stream, lsn_str, slot_info, wait_slot_inactive, walsender_pids)
from tcpproxy import TcpProxy

C = None
STATS = FaultStats()
LISTENING = "listening for changes..."


def setUpModule():
    global C
    C = Cluster("wal_sender_timeout = 3s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    STATS.report("test_faults_server")
    C.close()


def set_system(name, value):
    """ALTER SYSTEM (outside a transaction block) and reload."""
    if value is None:
        C.sql("ALTER SYSTEM RESET %s" % name)
    else:
        C.sql("ALTER SYSTEM SET %s = %%s" % name, (value,))
    C.sql("SELECT pg_reload_conf()")


def line_count(p):
    with open(p.out_path, "rb") as f:
        return f.read().count(b"\n")


def sessions(p):
    return p.stderr().count(LISTENING)


def under_faults(test, slot, kind, inject, n, gap=(0.3, 1.5), url=None):
    """Stream a continuous workload through one pgstream while inject() is
    called n times at random moments; inject returns the slot's confirmed
    LSN read right after the fault. Then check everything."""
    w = ResilientWorkload(C, "ledger_" + slot)
    p = PgStream(C, "--status-interval", "0.2", "--reconnect-max-delay", "1", slot=slot,
                 url=url).start()
    marks = []
    try:
        p.wait_stderr(LISTENING)
        w.start(10 ** 9, big_every=30, big_size=2000, rollback_every=9, pause=0.003)
        for _ in range(n):
            time.sleep(random.uniform(*gap))
            before = sessions(p)
            idx = line_count(p)
            marks.append((idx, inject()))
            STATS.fault(kind)
            p.wait_for(lambda: sessions(p) > before, 60, "pgstream to reconnect")
        time.sleep(random.uniform(*gap))
        w.stop()
        yes, no = w.resolve()
        last = w.committed[-1][-1]
        p.wait_for(lambda: '"id":%d,' % last in p.stdout(), 120, "row %d" % last)
        test.assertEqual(p.stop(), 0, p.stderr())
        events = p.events()
        checked, repeats = check_stream(events, w, marks)
        STATS.checked += checked
        print("%s: %d faults, %d transactions committed (%d of them in doubt and committed, "
              "%d in doubt and not), %d events checked, %d repeats, %d sessions"
              % (kind, n, len(w.committed), yes, no, checked, repeats, sessions(p)),
              flush=True)
        return p.stderr()
    finally:
        w.stop()
        p.close()


class ServerFaults(unittest.TestCase):
    def test_postgres_restarted_fast_and_immediate(self):
        slot = "s_pgrestart"
        modes = ["fast", "immediate", "fast", "immediate"]

        def inject():
            C.restart(modes.pop(0))
            return slot_info(C, slot)[1]

        under_faults(self, slot, "pg_restart", inject, len(modes))

    def test_walsender_terminated(self):
        slot = "s_termws"

        def inject():
            pids = walsender_pids(C, slot)
            assert len(pids) == 1, pids
            C.sql("SELECT pg_terminate_backend(%s)", (pids[0],))
            return wait_slot_inactive(C, slot)

        err = under_faults(self, slot, "walsender_kill", inject, 5)
        self.assertIn("reconnecting in", err)

    def test_network_cut_longer_than_wal_sender_timeout(self):
        slot = "s_netcut"
        proxy = TcpProxy(C.port)
        url = "postgresql://postgres@127.0.0.1:%d/postgres" % proxy.port

        def inject():
            proxy.cut()
            time.sleep(3.5)
            # The server gives up on the silent client after wal_sender_timeout.
            ack = wait_slot_inactive(C, slot, timeout=20)
            time.sleep(random.uniform(0, 1))
            proxy.restore()
            return ack

        try:
            under_faults(self, slot, "network_cut", inject, 2, url=url)
            self.assertGreaterEqual(proxy.accepted, 3)
        finally:
            proxy.close()


class SlotFaults(unittest.TestCase):
    def test_slot_taken_by_another_consumer_mid_stream(self):
        slot = "s_taken"
        taken = []

        def inject():
            pids = walsender_pids(C, slot)
            C.sql("SELECT pg_terminate_backend(%s)", (pids[0],))
            ack = wait_slot_inactive(C, slot)
            # Another consumer grabs the slot before pgstream's retry (1 s)
            # and holds it (reading nothing, acknowledging nothing) for 2.5 s.
            other = psycopg2.connect(C.url(),
                                     connection_factory=psycopg2.extras.LogicalReplicationConnection)
            cur = other.cursor()
            cur.start_replication(slot_name=slot, decode=False,
                                  options={"proto_version": "1",
                                           "publication_names": "pgstream_pub"})
            taken.append(slot_info(C, slot)[0])
            time.sleep(2.5)
            other.close()
            return ack

        err = under_faults(self, slot, "slot_taken", inject, 1)
        self.assertIsNotNone(taken[0])
        self.assertIn('replication slot "%s" is active in another process' % slot, err)

    def test_slot_dropped_while_running(self):
        slot = "s_dropped"
        w = Workload(C, "ledger_dropped")
        p = PgStream(C, "--status-interval", "0.2", "--reconnect-max-delay", "1",
                     slot=slot).start()
        try:
            p.wait_stderr(LISTENING)
            w.write(20)
            p.wait_events(sum(len(t) for t in w.committed))
            C.sql("SELECT pg_terminate_backend(%s)", (walsender_pids(C, slot)[0],))
            wait_slot_inactive(C, slot)
            C.sql("SELECT pg_drop_replication_slot(%s)", (slot,))
            STATS.fault("slot_dropped")
            w.write(20)  # changes nobody can deliver any more
            try:
                rc = p.proc.wait(timeout=15)
            except Exception:
                rc = None
            err = p.stderr()
            self.assertEqual(rc, 1, err)
            lines = [l for l in err.splitlines() if l.startswith("pgstream: ")]
            self.assertEqual(len(lines), 1, err)
            self.assertIn('replication slot "%s"' % slot, lines[0])
            self.assertIn("dropped", lines[0])
            # Created once at the start, never again after the drop.
            self.assertEqual(err.count("replication slot created"), 1, err)
        finally:
            p.close()

    def test_slot_invalidated_by_max_slot_wal_keep_size(self):
        slot = "s_lost"
        w = Workload(C, "ledger_lost")
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), slot=slot)
        self.assertEqual(p.run(), 0, p.stderr())
        p.close()
        set_system("max_slot_wal_keep_size", "1MB")
        try:
            # pgstream is stopped; WAL piles up past what the slot may hold.
            deadline = time.time() + 60
            while slot_info(C, slot)[2] != "lost":
                self.assertLess(time.time(), deadline, slot_info(C, slot))
                w.write(3, sizes=(3000,))
                C.sql("SELECT pg_switch_wal()")
                C.sql("CHECKPOINT")
            STATS.fault("slot_invalidated")
            p = PgStream(C, slot=slot)
            rc = p.run(timeout=30)
            err, out = p.stderr(), p.stdout()
            p.close()
            self.assertEqual(rc, 1, err)
            lines = [l for l in err.splitlines() if l.startswith("pgstream: ")]
            self.assertEqual(len(lines), 1, err)
            self.assertIn('replication slot "%s" is invalidated' % slot, lines[0])
            self.assertIn("max_slot_wal_keep_size", lines[0])
            self.assertIn("drop the slot", lines[0])
            self.assertEqual(out, "")
        finally:
            set_system("max_slot_wal_keep_size", None)


if __name__ == "__main__":
    unittest.main()
