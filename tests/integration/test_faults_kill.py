"""Fault injection, part 1: pgstream itself dies or is stopped.

1. kill -9 at random moments under a workload of many small and some large
   transactions with rollbacks mixed in (20 rounds; PGSTREAM_LONG=1 or --long
   does 300).
2. SIGTERM in the middle of a 1-million-row transaction: the process exits
   within 5 s, and a restarted run emits every row of it.

Every run's stdout is kept; the union is checked against what committed
(harness.check_stream and Workload.verify)."""

import json
import os
import random
import re
import signal
import sys
import time
import unittest

from harness import (Cluster, FaultStats, PgStream, Workload, check_stream, lsn_str,
                     wait_slot_inactive)

LONG = os.environ.get("PGSTREAM_LONG") == "1" or "--long" in sys.argv
if "--long" in sys.argv:
    sys.argv.remove("--long")

C = None
STATS = FaultStats()


def setUpModule():
    global C
    C = Cluster("wal_sender_timeout = 5s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    STATS.report("test_faults_kill")
    C.close()


def split_big(p):
    """(events not of table big, ids of table big in order): a million
    parsed events would not fit comfortably in CI's memory."""
    events, big = [], []
    with open(p.out_path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # cut by a kill
            if line.startswith(BIG_PREFIX):
                m = BIG_ROW.match(line)
                assert m, line
                big.append(int(m.group(1)))
            else:
                events.append(json.loads(line))
    return events, big


BIG_PREFIX = b'{"op":"insert","schema":"public","table":"big",'
BIG_ROW = re.compile(rb'^\{"op":"insert","schema":"public","table":"big","lsn":"[0-9A-F]+/[0-9A-F]+",'
                     rb'"commit_lsn":"[0-9A-F]+/[0-9A-F]+","xid":\d+,"commit_time":"[^"]+",'
                     rb'"new":\{"id":(\d+)\}\}\n$')


def finish(slot, *args, big=False):
    """Stream whatever is left up to the current LSN; return its events
    (with big: and the ids of table big)."""
    p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), *args, slot=slot)
    try:
        rc = p.run(timeout=300)
        assert rc == 0, p.stderr()
        return split_big(p) if big else p.events()
    finally:
        p.close()


class KillNine(unittest.TestCase):
    def test_kill_9_at_random_moments(self):
        rounds = 300 if LONG else 20
        slot = "s_kill9"
        w = Workload(C, "ledger_kill9")
        # Warm the slot up so the first kill already has a position to keep.
        finish(slot)
        w.start(10 ** 9, big_every=40, big_size=3000, rollback_every=7, pause=0.002)
        runs, acks, still_active = [], [], 0
        try:
            for r in range(rounds):
                p = PgStream(C, "--status-interval", random.choice(["0.05", "0.2", "1"]),
                             slot=slot).start()
                # Sometimes before streaming starts, mostly while it streams.
                time.sleep(random.choice([0.0, 0.01]) + random.expovariate(1 / 0.4))
                p.kill()
                STATS.fault("kill9")
                runs.append(p.events())
                if C.value("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                           (slot,)) is not None:
                    still_active += 1
                # The next run can only take the slot once the walsender
                # has noticed; its confirmed position is then final.
                acks.append(wait_slot_inactive(C, slot))
                p.close()
        finally:
            w.stop()
        runs.append(finish(slot))
        checked, repeats = w.verify(runs, acks)
        stream, marks = [], []
        for events, ack in zip(runs, acks + [0]):
            stream += events
            marks.append((len(stream), ack))
        checked2, repeats2 = check_stream(stream, w, marks[:-1])
        self.assertEqual((checked, repeats), (checked2, repeats2))
        STATS.checked += checked
        print("kill -9: %d rounds, %d transactions committed, %d events checked, %d repeats,"
              " slot still active right after the kill %d times"
              % (rounds, len(w.committed), checked, repeats, still_active), flush=True)
        self.assertGreater(sum(1 for r in runs[:-1] if r), rounds // 3,
                           "most kills should hit a streaming pgstream")


class SigtermBigTransaction(unittest.TestCase):
    ROWS = 1000000

    def test_sigterm_during_million_row_transaction(self):
        slot = "s_bigterm"
        C.sql("CREATE TABLE big (id bigint PRIMARY KEY)")
        w = Workload(C, "ledger_big")
        finish(slot)  # create the slot
        w.write(20)
        C.sql("INSERT INTO big SELECT g FROM generate_series(1, %s) g", (self.ROWS,))
        w.write(20)
        p = PgStream(C, "--status-interval", "0.5", slot=slot).start()
        # Wait until it is well inside the big transaction.
        p.wait_for(lambda: os.path.getsize(p.out_path) > 4 * 1024 * 1024, 120,
                   "the big transaction to be streaming")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        STATS.fault("sigterm_bigtxn")
        rc = p.proc.wait(timeout=60)
        took = time.monotonic() - t0
        first, big_ids = split_big(p)
        big_first = len(big_ids)
        err = p.stderr()
        p.close()
        acked = wait_slot_inactive(C, slot)
        print("SIGTERM during a %d-row transaction: exit %d after %.2f s, %d of its rows"
              " emitted before the stop" % (self.ROWS, rc, took, big_first), flush=True)
        self.assertEqual(rc, 0, err)
        self.assertLess(took, 5.0, "shutdown took %.2f s" % took)
        self.assertLess(big_first, self.ROWS, "the stop came too late to test anything")
        self.assertEqual(big_ids, list(range(1, big_first + 1)))
        rest, big = finish(slot, big=True)
        self.assertEqual(big, list(range(1, self.ROWS + 1)))
        # The small transactions around it: nothing lost, repeats only
        # above the acknowledged position.
        checked, _ = check_stream(first + rest, w, [(len(first), acked)])
        STATS.checked += checked + big_first + len(big)


if __name__ == "__main__":
    unittest.main()
