"""Fault injection, part 1: pgstream itself dies or is stopped.

1. kill -9 at random moments under a workload of many small and some large
   transactions with rollbacks mixed in (20 rounds; PGSTREAM_LONG=1 or --long
   does 300).
2. kill -9 while writing 512 kB rows to --output (12 rounds, every other
   one aimed at a write under way), restarted on the same file each time:
   the torn last event is cut back at start, every line parses, nothing is
   lost.
3. SIGTERM in the middle of a 1-million-row transaction: the process exits
   within 5 s, and a restarted run emits every row of it.

Every run's stdout is kept; the union is checked against what committed
(harness.check_stream and Workload.verify)."""

import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

import faultkit

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
                # Sometimes before streaming starts, mostly while it streams:
                # counted from its start, which under load may take longer
                # than the whole delay.
                if random.random() < 0.7:
                    p.wait_stderr("listening for changes", 60)
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


WIDE = 512 * 1024  # bytes of each wide row's blob


def wide_blob(e):
    """Check a wide row's blob (one md5 repeated) and drop it: a few hundred
    parsed 512 kB events would weigh on CI's memory."""
    blob = e.get("new", {}).pop("blob", None)
    if blob is not None:
        assert len(blob) == WIDE and blob == blob[:32] * (WIDE // 32), \
            "row %s: blob is not what was written" % e["new"].get("id")
    return e


class KillNineOutputFile(unittest.TestCase):
    """kill -9 while pgstream writes wide rows to --output, then a restart on
    the same file, again and again. Every other kill is aimed at a write()
    under way (the file ends inside a line), so that some kills cut an event
    in the middle; the next start must cut the file back to its last whole
    event (and say how many bytes it removed), so that every line parses
    and nothing is lost."""

    def test_kill_9_while_writing_output_file(self):
        rounds = 60 if LONG else 12
        slot = "s_kill9_file"
        d = tempfile.mkdtemp(prefix="pgstream-killfile-")
        self.addCleanup(shutil.rmtree, d, True)
        out = os.path.join(d, "events.jsonl")
        C.sql("CREATE TABLE ledger_wide (id bigint PRIMARY KEY, tx int, pad text,"
              " blob text DEFAULT repeat(md5(random()::text), %d))" % (WIDE // 32))
        w = Workload(C, "ledger_wide")
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--output", out, slot=slot)
        self.assertEqual(p.run(), 0, p.stderr())  # creates the slot
        p.close()
        w.start(10 ** 9, sizes=(1, 1, 2), rollback_every=7, pause=0.1)
        marks, torn, aimed, repaired = [], [], 0, 0
        tail = 0  # bytes after the file's last newline
        try:
            for r in range(rounds):
                p = PgStream(C, "--status-interval", random.choice(["0.05", "0.2", "1"]),
                             "--output", out, slot=slot).start()
                fd = os.open(out, os.O_RDONLY)
                try:
                    time.sleep(random.uniform(0.05, 0.6))
                    if r % 2:
                        aimed += 1
                        deadline = time.time() + 5
                        while (time.time() < deadline and p.proc.poll() is None
                               and not faultkit.midwrite(fd)):
                            pass
                    p.kill()
                finally:
                    os.close(fd)
                STATS.fault("kill9_output")
                err = p.stderr()
                repaired += self.check_repair(err, out, tail)
                tail = faultkit.torn_tail(out)
                if tail:
                    torn.append(tail)
                with open(out, "rb") as f:
                    marks.append((f.read().count(b"\n"), wait_slot_inactive(C, slot)))
                p.close()
        finally:
            w.stop()
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--output", out, slot=slot)
        try:
            self.assertEqual(p.run(timeout=300), 0, p.stderr())
            repaired += self.check_repair(p.stderr(), out, tail)
        finally:
            p.close()
        with open(out, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"), "the file ends inside an event")
        events = faultkit.parse_strict(data, wide_blob)
        del data
        checked, repeats = check_stream(events, w, marks)
        STATS.checked += checked
        print("kill -9 while writing --output: %d rounds (%d aimed at a write), %d cut an event"
              " (%s bytes left), %d repaired at the next start; %d events checked, %d repeats"
              % (rounds, aimed, len(torn), ",".join(map(str, torn)), repaired, checked,
                 repeats), flush=True)
        self.assertGreater(len(torn), 0, "no kill landed inside a write: the repair at start "
                           "was not tested")
        self.assertEqual(repaired, len(torn))

    def check_repair(self, err, out, tail):
        """A run that started on a file ending inside an event (tail bytes
        after the last newline) says it removed exactly those bytes, once it
        got as far as opening the file (it logs "connecting" after that).
        Returns 1 if it repaired."""
        said = re.findall(r"removed (\d+) bytes of an incomplete event at the end of (\S+)", err)
        if not tail:
            self.assertEqual(said, [], err)
            return 0
        if not said:
            self.assertNotIn("connecting to postgres", err,
                             "started on a torn file without repairing it")
            return 0
        self.assertEqual(said, [(str(tail), out)], err)
        return 1


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
