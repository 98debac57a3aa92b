"""Rotating files (--output FILE --rotate-bytes N / --rotate-seconds S).

1. By size: every file at most N bytes (unless one event is larger), named
   FILE.<commit>.<lsn> after its first event, cut between events; the files
   in name order are the whole stream, in order, each change once.
2. By age: a file is closed once --rotate-seconds old, even with no event
   after it, and its events are acknowledged.
3. kill -9 under load while writing large rows, three times, restarting each
   time: no file of the series ends in a partial line (the newest is cut
   back at the next start), every committed row present, repeats only of
   transactions not acknowledged.
4. A write that fails (EFBIG under RLIMIT_FSIZE): exit 1, one line, the file
   cut back to its last whole event, nothing unwritten acknowledged; a
   restart delivers the rest.
5. Bad configuration: one line, non-zero exit.
"""

import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import (BIN, Cluster, FaultStats, PgStream, Workload, assert_refused, check_stream,
                     lsn_int, lsn_str, parse_lines, wait_slot_inactive)

C = None
STATS = FaultStats()
NAME = re.compile(r"^events\.jsonl\.([0-9A-F]{16})\.([0-9A-F]{16})$")


def setUpModule():
    global C
    C = Cluster("wal_sender_timeout = 10s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    STATS.report("test_rotate")
    C.close()


def new_slot(name):
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))


def series(d):
    """[(name, bytes)] of the files of the series in d, in name order."""
    out = []
    for n in sorted(os.listdir(d)):
        if NAME.match(n):
            with open(os.path.join(d, n), "rb") as f:
                out.append((n, f.read()))
    return out


def first_position(e):
    lead = lsn_int(e["commit_lsn"]) if e.get("commit_lsn") else lsn_int(e["lsn"])
    return "%016X.%016X" % (lead, lsn_int(e["lsn"]))


class Rotate(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pgstream-rotate-")
        self.out = os.path.join(self.dir, "events.jsonl")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_by_size(self):
        slot = "rot_size"
        new_slot(slot)
        w = Workload(C, table="rot_size")
        w.write(300, big_every=100, big_size=300)
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        p = PgStream(C, "--end-lsn", lsn_str(end), "--output", self.out, "--rotate-bytes",
                     "20000", slot=slot)
        self.assertEqual(p.run(timeout=120), 0, p.stderr())
        files = series(self.dir)
        self.assertGreater(len(files), 5, [n for n, _ in files])
        self.assertFalse(os.path.exists(self.out), "the base name itself is never written")
        events = []
        for name, data in files:
            self.assertTrue(data.endswith(b"\n"), name)
            evs = parse_lines(data)
            self.assertTrue(evs, name)
            if len(evs) > 1:
                self.assertLessEqual(len(data), 20000, name)
            self.assertEqual(name, "events.jsonl." + first_position(evs[0]))
            events += evs
        checked, repeats = check_stream(events, w)
        self.assertEqual(repeats, 0)
        STATS.checked += checked
        self.assertGreaterEqual(C.slot_confirmed(slot), end)
        p.close()

    def test_by_age(self):
        slot = "rot_age"
        new_slot(slot)
        w = Workload(C, table="rot_age")
        p = PgStream(C, "--output", self.out, "--rotate-seconds", "0.5", "--status-interval",
                     "0.5", slot=slot)
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.write(40, pause=0.06)  # about 3 s
            time.sleep(1.5)  # the last file is closed by age with no event after it
            self.assertIn("file: writing", p.stderr())
            files = series(self.dir)
            self.assertGreaterEqual(len(files), 4, [n for n, _ in files])
            fds = "/proc/%d/fd" % p.proc.pid
            held = [os.readlink(os.path.join(fds, f)) for f in os.listdir(fds)]
            self.assertFalse([h for h in held if h.startswith(self.dir)],
                             "a file older than --rotate-seconds still open: %s" % held)
            self.assertEqual(p.stop(), 0, p.stderr())
            events = [e for _, data in series(self.dir) for e in parse_lines(data)]
            checked, _ = check_stream(events, w)
            STATS.checked += checked
            last_commit = max(lsn_int(e["commit_lsn"]) for e in events
                              if e.get("table") == "rot_age")
            self.assertGreater(C.slot_confirmed(slot), last_commit)
        finally:
            p.close()

    def test_kill9_under_load(self):
        slot = "rot_kill"
        new_slot(slot)
        C.sql("CREATE TABLE IF NOT EXISTS rot_kill (id bigint PRIMARY KEY, tx int, pad text)")
        w = Workload(C, table="rot_kill")
        args = ("--output", self.out, "--rotate-bytes", "300000", "--status-interval", "0.3")
        runs, marks = [], []
        p = PgStream(C, *args, slot=slot)
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.start(1500, pause=0.002, big_every=100, big_size=3000)
            for _ in range(3):
                time.sleep(random.uniform(0.5, 1.5))
                p.kill()
                STATS.fault("kill9")
                runs.append(p.stderr())
                wait_slot_inactive(C, slot)
                marks.append(C.slot_confirmed(slot))
                p.close()
                p = PgStream(C, *args, slot=slot)
                p.start()
            w.join()
            want = sum(len(tx) for tx in w.committed)
            p.wait_for(lambda: sum(1 for _, d in series(self.dir) for e in parse_lines(d)
                                   if e.get("table") == "rot_kill") >= want, timeout=120,
                       what="every row in the files")
            self.assertEqual(p.stop(), 0, p.stderr())
            runs.append(p.stderr())
            p.close()
            files = series(self.dir)
            for name, data in files:
                self.assertTrue(data.endswith(b"\n"), "%s ends in a partial line" % name)
            # Each run's lines: the files it opened, in its log's order, from
            # where it began writing (a file appended to by a later run starts
            # that run's lines at the offset it logged) to where the next run
            # did.
            opens = []  # (run, name, offset)
            for i, err in enumerate(runs):
                for m in re.finditer(r"file: writing \S+/(\S+?)(?: \(appending at (\d+) "
                                     r"bytes\))?$", err, re.M):
                    opens.append((i, m.group(1), int(m.group(2) or 0)))
            self.assertEqual(sorted({n for _, n, _ in opens}), [n for n, _ in files])
            stream, run_marks = [], []
            for i in range(len(runs)):
                if i > 0:
                    run_marks.append((len(stream), max(marks[:i])))
                for j, (r, name, off) in enumerate(opens):
                    if r != i:
                        continue
                    later = [o for (r2, n2, o) in opens[j + 1:] if n2 == name and r2 > i]
                    with open(os.path.join(self.dir, name), "rb") as f:
                        data = f.read()
                    stream += parse_lines(data[off:later[0] if later else len(data)])
            checked, repeats = check_stream(stream, w, marks=run_marks)
            STATS.checked += checked
            cut = sum(err.count("incomplete event at the end of") for err in runs)
            print("\ntest_rotate: kill -9 x3: %d files, %d rows checked, %d repeated, %d "
                  "partial lines cut at a restart" % (len(files), checked, repeats, cut),
                  flush=True)
        finally:
            w.stop()
            p.close()


class Full(unittest.TestCase):
    def test_file_size_limit_then_restart(self):
        """A write that fails (EFBIG under RLIMIT_FSIZE, as on a full disk):
        exit 1 with one line naming the file, the file cut back to its last
        whole event, nothing unwritten acknowledged; a restart without the
        limit delivers the rest."""
        d = tempfile.mkdtemp(prefix="pgstream-rotate-full-")
        out = os.path.join(d, "events.jsonl")
        slot = "rot_full"
        new_slot(slot)
        w = Workload(C, table="rot_full")
        w.write(200, sizes=(50,))
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        try:
            p = PgStream(C, "--end-lsn", lsn_str(end), "--output", out, "--rotate-bytes",
                         "10000000", slot=slot)
            p.argv = ["prlimit", "--fsize=300000", "--"] + p.argv
            STATS.fault("efbig")
            self.assertEqual(p.run(timeout=120), 1, p.stderr())
            last = p.stderr().strip().splitlines()[-1]
            self.assertTrue(last.startswith("pgstream: could not write to %s." % out), last)
            self.assertIn("File too large", last)
            files = series(d)
            self.assertEqual(len(files), 1)
            self.assertTrue(files[0][1].endswith(b"\n"), "cut in the middle of an event")
            self.assertLessEqual(len(files[0][1]), 300000)
            written = parse_lines(files[0][1])
            wait_slot_inactive(C, slot)
            acked = C.slot_confirmed(slot)
            self.assertLess(acked, end)
            p.close()
            p = PgStream(C, "--end-lsn", lsn_str(end), "--output", out, "--rotate-bytes",
                         "10000000", slot=slot)
            self.assertEqual(p.run(timeout=120), 0, p.stderr())
            p.close()
            stream = written[:]
            for name, data in series(d):
                evs = parse_lines(data)
                if name == files[0][0]:
                    evs = evs[len(written):]  # appended to by the restart, if it began there
                stream += evs
            checked, repeats = check_stream(stream, w, marks=[(len(written), acked)])
            STATS.checked += checked
        finally:
            shutil.rmtree(d, ignore_errors=True)


class BadConfig(unittest.TestCase):
    def check(self, mention, *args, status=2):
        proc = subprocess.run([BIN, "--database-url", C.url(), "--env-file", "/dev/null", *args],
                              capture_output=True, text=True, timeout=60)
        return assert_refused(self, proc, mention, status=status)

    def test_bad_configuration(self):
        self.check("need --output", "--rotate-bytes", "1000")
        self.check("need --output", "--rotate-seconds", "5", "--sink", "stdout")
        self.check("--rotate-bytes", "--output", "/tmp/x", "--rotate-bytes", "lots")
        self.check("no/such/dir", "--output", "/no/such/dir/events", "--rotate-bytes", "1000",
                   status=1)


if __name__ == "__main__":
    unittest.main()
