"""Fault injection, part 2: the server side breaks under a running pgstream.

3. PostgreSQL restarted in fast and immediate mode while streaming under a
   continuous workload (a writer whose COMMIT is cut by the restart has an
   unknown outcome: settled from the table afterwards, never partial).
4. The walsender killed with pg_terminate_backend.
5. The network cut for longer than wal_sender_timeout (3 s here) by a TCP
   proxy that stops forwarding, then restored; and a silent cut that is
   never restored nor closed, which only --wal-receiver-timeout (3 s)
   detects.
7. The slot taken by another consumer mid-stream; the slot dropped while
   pgstream runs; the slot invalidated by max_slot_wal_keep_size.

Each fault is injected at a random moment, and some inside a large
transaction (through a rate-limited proxy) so that it is cut and must be
sent again: repeats happen, and each must belong to a transaction not yet
acknowledged. After each fault, the slot's confirmed_flush_lsn bounds what
may repeat (harness.check_stream)."""

import random
import time
import unittest

import psycopg2
import psycopg2.extras

from harness import (Cluster, FaultStats, PgStream, ResilientWorkload, Workload,
                     check_stream, lsn_str, slot_info, wait_slot_inactive, walsender_pids)
import faultkit
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


# Faults aimed inside one large transaction go through a proxy that forwards
# the server's data at RATE bytes/s, so the transaction (BULK_ROWS rows of
# BULK_WIDTH bytes, about 16 MB on the wire) takes two seconds to arrive
# whole. As soon as its first row is out the proxy stops forwarding, the
# fault is injected, and the proxy goes on: what the socket buffers held
# then still arrives (at most about 4.5 MB, see tcpproxy.py), the rest of
# the transaction never does, and the server must send it again from its
# first row. The proxy runs in this process, so a load that slows the test
# down slows the forwarding too.
RATE = 8e6
BULK_ROWS = 8000
BULK_WIDTH = 2000


def aimed(p, proxy, bulk, fault):
    """Commit one large transaction, wait until pgstream has emitted its first
    row, then fault() with the proxy held; returns what fault() returns."""
    tail = faultkit.Tail(p.out_path)
    ids = bulk.commit(BULK_ROWS)
    faultkit.wait_row(tail, ids[0], 60, p.proc)
    proxy.cut()
    try:
        return fault()
    finally:
        proxy.restore()


def under_faults(test, slot, kind, inject, n, gap=(0.3, 1.5), url=None, args=(), bulk=None,
                 reconnect_timeout=60):
    """Stream a continuous workload through one pgstream while inject(p) is
    called n times at random moments; inject returns the slot's confirmed
    LSN read right after the fault. Then check everything: the workload's
    table, and bulk's (large transactions some faults were aimed at), whose
    every transaction must have been cut and sent again. Returns pgstream's
    stderr."""
    w = ResilientWorkload(C, "ledger_" + slot)
    p = PgStream(C, "--status-interval", "0.2", "--reconnect-max-delay", "1", *args, slot=slot,
                 url=url).start()
    marks = []
    try:
        p.wait_stderr(LISTENING)
        w.start(10 ** 9, big_every=30, big_size=2000, rollback_every=9, pause=0.003)
        for _ in range(n):
            time.sleep(random.uniform(*gap))
            before = sessions(p)
            idx = line_count(p)
            marks.append((idx, inject(p)))
            STATS.fault(kind)
            p.wait_for(lambda: sessions(p) > before, reconnect_timeout, "pgstream to reconnect")
        time.sleep(random.uniform(*gap))
        w.stop()
        yes, no = w.resolve()
        last = w.committed[-1][-1]
        tail = faultkit.Tail(p.out_path)
        tail.offset = 0
        faultkit.wait_row(tail, last, 120, p.proc)
        test.assertEqual(p.stop(), 0, p.stderr())
        events = faultkit.read_events(p.out_path, bulk.shrink if bulk else None)
        checked, repeats = check_stream(events, w, marks)
        cut = ""
        if bulk:
            checked2, repeats2 = check_stream(events, bulk, marks, table=bulk.table)
            rows = [e["new"]["id"] for e in events if e.get("table") == bulk.table]
            deliveries = []  # per large transaction: rows of each delivery
            for ids in bulk.committed:
                starts = [i for i, rid in enumerate(rows) if rid == ids[0]]
                deliveries.append([next((k for k in range(len(ids)) if i + k >= len(rows)
                                         or rows[i + k] != ids[k]), len(ids))
                                   for i in starts])
            test.assertGreater(repeats2, 0)
            test.assertTrue(deliveries and all(len(d) >= 2 and d[0] < BULK_ROWS
                                               for d in deliveries),
                            "each large transaction a fault was aimed at must be cut and "
                            "sent again: rows per delivery %s" % deliveries)
            checked += checked2
            repeats += repeats2
            cut = ", large transactions cut and sent again (rows per delivery: %s)" % (
                deliveries,)
        STATS.checked += checked
        print("%s: %d faults, %d transactions committed (%d of them in doubt and committed, "
              "%d in doubt and not)%s, %d events checked, %d repeats, %d sessions"
              % (kind, n, len(w.committed), yes, no, cut, checked, repeats, sessions(p)),
              flush=True)
        return p.stderr()
    finally:
        w.stop()
        p.close()


def proxied(test, rate=RATE):
    proxy = TcpProxy(C.port, rate=rate)
    test.addCleanup(proxy.close)
    return proxy, "postgresql://postgres@127.0.0.1:%d/postgres" % proxy.port


class ServerFaults(unittest.TestCase):
    def test_postgres_restarted_fast_and_immediate(self):
        """Fast restarts at random moments (the walsender sends everything
        and waits for it to be acknowledged before it exits: nothing to
        repeat), immediate ones aimed inside a large transaction."""
        slot = "s_pgrestart"
        proxy, url = proxied(self)
        bulk = faultkit.Bulk(C, "bulk_" + slot, BULK_WIDTH)
        modes = ["fast", "immediate", "fast", "immediate"]

        def inject(p):
            mode = modes.pop(0)
            if mode == "fast":
                C.restart(mode)
                return slot_info(C, slot)[1]

            def fault():
                C.restart(mode)
                return slot_info(C, slot)[1]
            return aimed(p, proxy, bulk, fault)

        under_faults(self, slot, "pg_restart", inject, len(modes), url=url, bulk=bulk)

    def test_walsender_terminated(self):
        slot = "s_termws"
        proxy, url = proxied(self)
        bulk = faultkit.Bulk(C, "bulk_" + slot, BULK_WIDTH)
        count = [0]

        def terminate():
            pids = walsender_pids(C, slot)
            assert len(pids) == 1, pids
            C.sql("SELECT pg_terminate_backend(%s)", (pids[0],))
            # A walsender cannot exit while its last message waits on a
            # held connection.
            proxy.restore()
            return wait_slot_inactive(C, slot)

        def inject(p):
            count[0] += 1
            return aimed(p, proxy, bulk, terminate) if count[0] == 3 else terminate()

        err = under_faults(self, slot, "walsender_kill", inject, 5, url=url, bulk=bulk)
        self.assertIn("reconnecting in", err)

    def test_network_cut_longer_than_wal_sender_timeout(self):
        """The proxy stops forwarding for longer than wal_sender_timeout,
        then forwards again: the server's close reaches pgstream after what
        was held, as an error. The first cut is aimed inside a large
        transaction."""
        slot = "s_netcut"
        proxy, url = proxied(self)
        bulk = faultkit.Bulk(C, "bulk_" + slot, BULK_WIDTH)
        count = [0]

        def cut():
            proxy.cut()
            time.sleep(3.5)
            # The server gives up on the silent client after wal_sender_timeout.
            ack = wait_slot_inactive(C, slot, timeout=20)
            time.sleep(random.uniform(0, 1))
            proxy.restore()
            return ack

        def inject(p):
            count[0] += 1
            return aimed(p, proxy, bulk, cut) if count[0] == 1 else cut()

        under_faults(self, slot, "network_cut", inject, 2, url=url, bulk=bulk)
        self.assertGreaterEqual(proxy.accepted, 3)

    def test_silent_network_cut(self):
        """The network goes silent for good under an open connection: nothing
        arrives, nothing is closed (not even the server's close), so only
        --wal-receiver-timeout can tell. pgstream must give up on it after
        3 s and reconnect (new connections get through). The first silence
        falls inside a large transaction."""
        slot = "s_silent"
        proxy, url = proxied(self)
        bulk = faultkit.Bulk(C, "bulk_" + slot, BULK_WIDTH)
        count = [0]

        def silence():
            self.assertGreaterEqual(proxy.blackhole(), 1)
            # Nothing reaches the server any more: its position is final.
            return slot_info(C, slot)[1]

        def inject(p):
            count[0] += 1
            return aimed(p, proxy, bulk, silence) if count[0] == 1 else silence()

        err = under_faults(self, slot, "silent_cut", inject, 2, url=url, bulk=bulk,
                           args=("--wal-receiver-timeout", "3"), reconnect_timeout=30)
        self.assertEqual(err.count("nothing received for 3 s, connection presumed lost"), 2, err)


class SlotFaults(unittest.TestCase):
    def test_slot_taken_by_another_consumer_mid_stream(self):
        """The walsender is terminated inside a large transaction and another
        consumer takes the slot before pgstream's retry."""
        slot = "s_taken"
        taken = []
        proxy, url = proxied(self)
        bulk = faultkit.Bulk(C, "bulk_" + slot, BULK_WIDTH)

        def take():
            pids = walsender_pids(C, slot)
            C.sql("SELECT pg_terminate_backend(%s)", (pids[0],))
            proxy.restore()  # see test_walsender_terminated
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

        err = under_faults(self, slot, "slot_taken", lambda p: aimed(p, proxy, bulk, take), 1,
                           url=url, bulk=bulk)
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
