"""Rotating files (--output FILE --rotate-bytes N / --rotate-seconds S).

1. By size: every file at most N bytes (unless one event is larger), named
   FILE.<commit>.<lsn> after its first event, cut between events; the files
   in name order are the whole stream, in order, each change once.
2. By age: a file is closed once --rotate-seconds old, even with no event
   after it, and its events are acknowledged.
3. kill -9 under load while writing large rows, three times, restarting each
   time: right after each kill only the file being written may end in a
   partial line, and none does after the restart (it is cut back at the
   start); every committed row present, repeats only of transactions not
   acknowledged.
4. A write that fails (EFBIG under RLIMIT_FSIZE): exit 1, one line, the file
   cut back to its last whole event, nothing unwritten acknowledged; a
   restart delivers the rest.
5. Bad configuration: one line, non-zero exit.
6. SIGHUP under load is a rotation: the open file is closed (fsynced, no
   longer held open) and the next event starts a new file; across four of
   them every committed row is in exactly one file, in order.
7. --rotate-compress gzip|zstd: every closed file becomes FILE.<commit>.<lsn>
   .gz/.zst (the open one stays as it is), and the files decompress to
   exactly the stream, each change once. kill -9 while a file is being
   compressed (three times): each file is there whole, uncompressed or
   compressed; the restart removes the .tmp and compresses the original
   again; every committed row present, repeats only of unacknowledged
   transactions.
8. A full disk (a 1 MB tmpfs, as root): the stream stops with exit 1 and one
   line, every file ends with a whole event, everything acknowledged is in
   the files; with room again a restart delivers the rest. Compression on a
   disk with no room: warned, no .tmp left, the originals untouched, the
   stream exits 0; with room again the next start compresses them.
9. A start cuts a partial line in every file of the series, not only the
   greatest name, and removes a file left empty.
10. A compression that makes no progress (a FIFO in the series) holds back
   no delivery and no acknowledgement.
"""

import errno
import gzip
import os
import random
import re
import signal
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
        if NAME.match(n) and os.path.isfile(os.path.join(d, n)):  # not a FIFO
            with open(os.path.join(d, n), "rb") as f:
                out.append((n, f.read()))
    return out


COMPRESSED = re.compile(r"^(events\.jsonl\.[0-9A-F]{16}\.[0-9A-F]{16})(\.gz|\.zst)(\.tmp)?$")


def decompress(path):
    """The bytes of a .gz or .zst file; raises if it is not complete."""
    if path.endswith(".gz"):
        with open(path, "rb") as f:
            return gzip.decompress(f.read())
    return subprocess.run(["zstd", "-dcq", path], capture_output=True, check=True).stdout


def compressed_series(d):
    """({name: bytes} of the series's files, each decompressed if it is,
    [names compressed], [names uncompressed], [.tmp names])."""
    data, packed, plain, tmps = {}, [], [], []
    for n in sorted(os.listdir(d)):
        m = COMPRESSED.match(n)
        if m and m.group(3):
            tmps.append(n)
        elif m:
            packed.append(m.group(1))
            data[m.group(1)] = decompress(os.path.join(d, n))
        elif NAME.match(n) and os.path.isfile(os.path.join(d, n)):  # not a FIFO
            plain.append(n)
            if n not in data:  # a compressed copy beside it is the one read
                with open(os.path.join(d, n), "rb") as f:
                    data[n] = f.read()
    return data, packed, plain, tmps


def last_opened(stderr):
    """The file a run was writing last (from its log), or None."""
    names = re.findall(r"file: writing \S+/(\S+?)(?: \(appending at \d+ bytes\))?$", stderr,
                       re.M)
    return names[-1] if names else None


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
        self.assertGreaterEqual(wait_slot_inactive(C, slot), end)
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
            self.assertIn("file: writing", p.stderr())
            fds = "/proc/%d/fd" % p.proc.pid

            def held():
                return [h for h in (os.readlink(os.path.join(fds, f)) for f in os.listdir(fds))
                        if h.startswith(self.dir)]
            # The last file is closed by age with no event after it (within
            # 0.5 s of its first event; 10 s allows for a loaded machine).
            p.wait_for(lambda: not held(), 10, "no file older than --rotate-seconds open")
            files = series(self.dir)
            self.assertGreaterEqual(len(files), 4, [n for n, _ in files])
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
                # Before any repair: only the file being written may end
                # inside an event; every closed one (its events confirmed) is
                # whole. (A file the kill caught between its creation and the
                # log line that names it is empty: whole, and removed at the
                # next start.)
                for name, data in series(self.dir):
                    if name != last_opened(runs[-1]):
                        self.assertTrue(data == b"" or data.endswith(b"\n"),
                                        "%s partial after kill -9" % name)
                p.close()
                p = PgStream(C, *args, slot=slot)
                p.start()
                # (else the last run can be told to stop before it handles
                # SIGTERM, once the files already hold every row)
                p.wait_stderr("listening for changes")
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

    def test_sighup_rotates(self):
        slot = "rot_hup"
        new_slot(slot)
        w = Workload(C, table="rot_hup")
        p = PgStream(C, "--output", self.out, "--rotate-bytes", "100000000", "--status-interval",
                     "0.5", slot=slot)
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.start(2000, sizes=(1, 5, 20), pause=0.002)
            fds = "/proc/%d/fd" % p.proc.pid
            for i in range(4):
                p.wait_for(lambda: len(series(self.dir)) == i + 1, what="file %d" % (i + 1))
                time.sleep(0.4)
                p.signal(signal.SIGHUP)
                p.wait_for(lambda: p.stderr().count("SIGHUP: closed") == i + 1,
                           what="SIGHUP %d closing a file" % (i + 1))
                closed = [n for n, _ in series(self.dir)][i]
                held = [os.readlink(os.path.join(fds, f)) for f in os.listdir(fds)]
                self.assertNotIn(os.path.join(self.dir, closed), held,
                                 "%s still open after SIGHUP" % closed)
            w.join()
            want = sum(len(tx) for tx in w.committed)
            p.wait_for(lambda: sum(1 for _, d in series(self.dir) for e in parse_lines(d)
                                   if e.get("table") == "rot_hup") >= want, timeout=120,
                       what="every row in the files")
            self.assertEqual(p.stop(), 0, p.stderr())
            files = series(self.dir)
            self.assertEqual(len(files), 5, [n for n, _ in files])
            self.assertNotIn("reopened", p.stderr())
            events = []
            for name, data in files:
                self.assertTrue(data.endswith(b"\n"), name)
                evs = parse_lines(data)
                self.assertEqual(name, "events.jsonl." + first_position(evs[0]))
                events += evs
            checked, repeats = check_stream(events, w)
            self.assertEqual((checked, repeats), (want, 0))
            STATS.checked += checked
            print("\ntest_rotate: SIGHUP x4 under load: %d files, %d rows, %d repeated"
                  % (len(files), checked, repeats), flush=True)
        finally:
            w.stop()
            p.close()

    def test_start_repairs_every_file(self):
        """Not only the greatest name: a restart that began before the newest
        file writes one that sorts before it, and a crash may cut that one."""
        made = {"events.jsonl.0000000000000001.0000000000000001": b'{"a":1}\n{"a":',
                "events.jsonl.0000000000000002.0000000000000002": b'{"a":3}\n',
                "events.jsonl.0000000000000003.0000000000000003": b'{"a"'}
        for name, data in made.items():
            with open(os.path.join(self.dir, name), "wb") as f:
                f.write(data)
        slot = "rot_repair"
        new_slot(slot)
        p = PgStream(C, "--end-lsn", C.value("SELECT pg_current_wal_lsn()::text"), "--output",
                     self.out, "--rotate-bytes", "1000", slot=slot)
        try:
            self.assertEqual(p.run(timeout=60), 0, p.stderr())
            self.assertEqual(series(self.dir), [
                ("events.jsonl.0000000000000001.0000000000000001", b'{"a":1}\n'),
                ("events.jsonl.0000000000000002.0000000000000002", b'{"a":3}\n')])
            self.assertIn("file: removed %s/events.jsonl.0000000000000003.0000000000000003, "
                          "empty" % self.dir, p.stderr())
        finally:
            p.close()


class Compress(unittest.TestCase):
    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def by_size(self, method):
        slot = "rot_z_" + method
        new_slot(slot)
        w = Workload(C, table="rot_z_" + method)
        w.write(300, big_every=100, big_size=300)
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        p = PgStream(C, "--end-lsn", lsn_str(end), "--output", self.out, "--rotate-bytes",
                     "20000", "--rotate-compress", method, slot=slot)
        try:
            self.assertEqual(p.run(timeout=120), 0, p.stderr())
            data, packed, plain, tmps = compressed_series(self.dir)
            self.assertEqual(tmps, [])
            self.assertGreater(len(packed), 5, packed)
            # Every closed file compressed, the original gone; the one open
            # at exit left as it was.
            self.assertEqual(plain, [sorted(data)[-1]])
            self.assertEqual(sorted(packed + plain), sorted(data))
            self.assertEqual(p.stderr().count("file: compressed"), len(packed), p.stderr())
            events = []
            for name in sorted(data):
                self.assertTrue(data[name].endswith(b"\n"), name)
                evs = parse_lines(data[name])
                self.assertEqual(name, "events.jsonl." + first_position(evs[0]))
                events += evs
            checked, repeats = check_stream(events, w)
            self.assertEqual(repeats, 0)
            STATS.checked += checked
            self.assertGreaterEqual(wait_slot_inactive(C, slot), end)
            print("\ntest_rotate: --rotate-compress %s: %d files (%d compressed), %d rows, "
                  "%d repeated" % (method, len(data), len(packed), checked, repeats), flush=True)
        finally:
            p.close()

    def setUp(self):
        if not built_with("gzip"):
            self.skipTest("built without zlib")
        self.dir = tempfile.mkdtemp(prefix="pgstream-rotate-z-")
        self.out = os.path.join(self.dir, "events.jsonl")

    def test_gzip(self):
        self.by_size("gzip")

    @unittest.skipUnless(shutil.which("zstd"), "no zstd command to read .zst back")
    def test_zstd(self):
        if not built_with("zstd"):
            self.skipTest("built without libzstd")
        self.by_size("zstd")

    def test_stuck_compression_holds_nothing_back(self):
        """A compression that makes no progress at all (its file a FIFO
        nobody writes: open() waits) delays no delivery and no
        acknowledgement; the files closed meanwhile wait their turn."""
        fifo = os.path.join(self.dir, "events.jsonl.0000000000000001.0000000000000001")
        os.mkfifo(fifo)
        slot = "rot_z_stuck"
        new_slot(slot)
        w = Workload(C, table="rot_z_stuck")
        p = PgStream(C, "--output", self.out, "--rotate-bytes", "50000", "--rotate-compress",
                     "gzip", "--status-interval", "0.2", slot=slot)
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.write(300, sizes=(1, 5, 20), pause=0.003)
            want = sum(len(tx) for tx in w.committed)
            last_commit = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
            p.wait_for(lambda: sum(1 for _, d in series(self.dir) if d
                                   for e in parse_lines(d)) >= want, timeout=60,
                       what="every row in the files")
            p.wait_for(lambda: C.slot_confirmed(slot) >= last_commit, timeout=30,
                       what="the rows acknowledged while the compression is stuck")
            closed = p.stderr().count("file: writing") - 1
            self.assertGreaterEqual(closed, 5)
            self.assertEqual([n for n in os.listdir(self.dir) if ".gz" in n], [],
                             "a file compressed past the stuck one")
            # Let it go: the FIFO's compression ends (empty), then the queue's.
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            p.wait_for(lambda: p.stderr().count("file: compressed") == closed + 1, timeout=60,
                       what="the files closed meanwhile compressed")
            self.assertEqual(p.stop(), 0, p.stderr())
            data, packed, plain, tmps = compressed_series(self.dir)
            self.assertEqual((len(packed), len(plain), tmps), (closed + 1, 1, []))
            events = [e for n in sorted(data) for e in parse_lines(data[n])]
            checked, repeats = check_stream(events, w)
            self.assertEqual((checked, repeats), (want, 0))
            STATS.checked += checked
            print("\ntest_rotate: a stuck compression: %d rows delivered and acknowledged, "
                  "%d files closed behind it, compressed once it went on"
                  % (checked, closed), flush=True)
        finally:
            if os.path.exists(fifo):
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
            p.close()

    def test_kill9_while_compressing(self):
        slot = "rot_z_kill"
        new_slot(slot)
        w = Workload(C, table="rot_z_kill")
        w.write(10, sizes=(20000,))
        want = sum(len(tx) for tx in w.committed)
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        args = ("--output", self.out, "--rotate-bytes", "3000000", "--rotate-compress", "gzip",
                "--status-interval", "0.2")
        runs, acks, tmps_at_kill = [], [], 0
        try:
            for _ in range(3):
                p = PgStream(C, *args, slot=slot)
                p.start()
                seen = set(n for n in os.listdir(self.dir) if n.endswith(".tmp"))
                deadline = time.time() + 120
                # A tight loop: a 3 MB file takes some 30 ms to compress.
                while not set(n for n in os.listdir(self.dir) if n.endswith(".tmp")) - seen:
                    self.assertIsNone(p.proc.poll(), p.stderr())
                    self.assertLess(time.time(), deadline, "no compression under way")
                    time.sleep(0.001)
                time.sleep(random.uniform(0, 0.005))
                p.kill()
                STATS.fault("kill9")
                runs.append(p.stderr())
                p.close()
                wait_slot_inactive(C, slot)
                acks.append(C.slot_confirmed(slot))
                data, packed, plain, tmps = compressed_series(self.dir)
                tmps_at_kill += len(tmps)
                # Whole: a compressed copy decompresses completely (gzip
                # checks its length and CRC), an original that is not the
                # newest ends with a whole event.
                for name in sorted(data):
                    if name != last_opened(runs[-1]):
                        self.assertTrue(data[name].endswith(b"\n"),
                                        "%s incomplete after kill -9" % name)
                for t in tmps:
                    self.assertIn(COMPRESSED.match(t).group(1), plain,
                                  "%s left without its original" % t)
            p = PgStream(C, "--end-lsn", lsn_str(end), *args, slot=slot)
            self.assertEqual(p.run(timeout=300), 0, p.stderr())
            runs.append(p.stderr())
            p.close()
            data, packed, plain, tmps = compressed_series(self.dir)
            self.assertEqual(tmps, [])
            self.assertEqual(plain, [last_opened(runs[-1])], "a closed file left uncompressed")
            removed = sum(err.count("an unfinished compression") for err in runs)
            self.assertGreaterEqual(tmps_at_kill, 1, "no kill hit a compression")
            self.assertEqual(removed, tmps_at_kill)
            # Each file is one run's stream, and maybe later runs' appended
            # to it, each from the file's own first event: a restart's first
            # event sent again, or a later run's rotation reaching the same
            # event (a file that starts inside a transaction then holds the
            # rest of it twice). Each such part, from its first whole
            # transaction on, is in order; together: every row, repeats only
            # of what was not acknowledged at the first kill.
            counts = {}
            firsts = {tx[0] for tx in w.committed}
            for name in sorted(data):
                evs = parse_lines(data[name])
                self.assertTrue(data[name].endswith(b"\n"), name)
                self.assertEqual(name, "events.jsonl." + first_position(evs[0]))
                starts = [i for i, e in enumerate(evs)
                          if (e["commit_lsn"], e["lsn"]) == (evs[0]["commit_lsn"], evs[0]["lsn"])]
                for a, b in zip(starts, starts[1:] + [len(evs)]):
                    part = evs[a:b]
                    whole = next((i for i, e in enumerate(part) if e["new"]["id"] in firsts),
                                 len(part))
                    check_stream(part[whole:], w, marks=[(0, acks[0])], complete=False)
                for e in evs:
                    if e.get("table") == "rot_z_kill":
                        counts.setdefault(e["new"]["id"], []).append(lsn_int(e["commit_lsn"]))
            self.assertEqual(len(counts), want, "rows missing")
            repeats = sum(len(c) - 1 for c in counts.values())
            for rid, commits in counts.items():
                if len(commits) > 1:
                    self.assertGreaterEqual(commits[0], acks[0],
                                            "row %d repeated though acknowledged" % rid)
            STATS.checked += want
            print("\ntest_rotate: kill -9 x3 while compressing: %d files (%d compressed), %d "
                  "rows, %d repeated, %d .tmp left by a kill (removed at the restart)"
                  % (len(data), len(packed), want, repeats, tmps_at_kill), flush=True)
        finally:
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


_BUILT = {}


def built_with(method):
    """Whether this pgstream has --rotate-compress METHOD (zlib, libzstd)."""
    if method not in _BUILT:
        proc = subprocess.run([BIN, "--database-url", "postgresql://127.0.0.1:1/x",
                               "--env-file", "/dev/null", "--output", "/tmp/x",
                               "--rotate-bytes", "1", "--rotate-compress", method],
                              capture_output=True, text=True, timeout=60)
        _BUILT[method] = "built without" not in proc.stderr
    return _BUILT[method]


def try_mount(d, size):
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", d],
                          capture_output=True).returncode == 0


class DiskFull(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pgstream-rotate-enospc-")
        if not try_mount(self.dir, "1m"):
            os.rmdir(self.dir)
            self.skipTest("cannot mount a tmpfs (needs root)")
        self.out = os.path.join(self.dir, "events.jsonl")

    def tearDown(self):
        subprocess.run(["umount", "-l", self.dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_enospc(self):
        slot = "rot_enospc"
        new_slot(slot)
        w = Workload(C, table="rot_enospc")
        args = ("--output", self.out, "--rotate-bytes", "200000", "--status-interval", "0.1")
        p = PgStream(C, *args, slot=slot)
        p.start()
        p.wait_stderr("listening for changes")
        w.start(300, sizes=(10, 50), pause=0.01)  # the disk is full after ~1 s
        STATS.fault("enospc")
        try:
            self.assertEqual(p.proc.wait(timeout=120), 1, p.stderr())
        finally:
            w.join()
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        args = ("--end-lsn", lsn_str(end)) + args
        last = p.stderr().strip().splitlines()[-1]
        self.assertTrue(last.startswith("pgstream: could not write to %s." % self.out), last)
        self.assertIn("No space left on device", last)
        p.close()
        wait_slot_inactive(C, slot)
        acked = C.slot_confirmed(slot)
        self.assertLess(acked, end)
        files = series(self.dir)
        self.assertTrue(files)
        written = []
        for name, data in files:
            self.assertTrue(data.endswith(b"\n"), "%s cut in the middle of an event: %d bytes, "
                            "ends %r" % (name, len(data), data[-50:]))
            written += parse_lines(data)
        checked, _ = check_stream(written, w, complete=False)
        STATS.checked += checked
        # Room again: the rest.
        subprocess.run(["mount", "-o", "remount,size=64m", self.dir], check=True)
        p = PgStream(C, *args, slot=slot)
        self.assertEqual(p.run(timeout=120), 0, p.stderr())
        p.close()
        events = [e for _, data in series(self.dir) for e in parse_lines(data)]
        self.assertEqual({e["new"]["id"] for e in events}, {i for tx in w.committed for i in tx})
        # Everything acknowledged before the disk was full was in the files.
        have = {e["new"]["id"] for e in written}
        acked_rows = {e["new"]["id"] for e in events if lsn_int(e["commit_lsn"]) < acked}
        self.assertTrue(acked_rows, "nothing acknowledged before the disk was full")
        self.assertFalse(acked_rows - have, "acknowledged rows not in the files")
        before = {n: d for n, d in series(self.dir)}

        # Compression with no room left: warned, originals untouched.
        # Unbuffered: a buffered file would try the unwritten rest again at
        # close, and fail there.
        fd = os.open(os.path.join(self.dir, "ballast"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError as e:
            self.assertEqual(e.errno, errno.ENOSPC)
        finally:
            os.close(fd)
        if not built_with("gzip"):
            return  # the rest is compression's
        zargs = args + ("--rotate-compress", "gzip")
        p = PgStream(C, *zargs, slot=slot)
        self.assertEqual(p.run(timeout=120), 0, p.stderr())
        self.assertEqual(p.stderr().count("No space left on device (it stays uncompressed)"),
                         len(before) - 1, p.stderr())
        p.close()
        self.assertEqual({n: d for n, d in series(self.dir)}, before)
        self.assertEqual([n for n in os.listdir(self.dir) if n.endswith(".tmp")], [])
        os.unlink(os.path.join(self.dir, "ballast"))
        p = PgStream(C, *zargs, slot=slot)
        self.assertEqual(p.run(timeout=120), 0, p.stderr())
        p.close()
        data, packed, plain, tmps = compressed_series(self.dir)
        self.assertEqual((len(packed), plain, tmps), (len(before) - 1, [max(before)], []))
        self.assertEqual(data, before)
        print("\ntest_rotate: disk full: %d files, %d rows written before ENOSPC, %d "
              "acknowledged; compression on a full disk refused for %d files, done later"
              % (len(files), len(written), len(acked_rows), len(before) - 1), flush=True)


class BadConfig(unittest.TestCase):
    def check(self, mention, *args, status=2):
        proc = subprocess.run([BIN, "--database-url", C.url(), "--env-file", "/dev/null", *args],
                              capture_output=True, text=True, timeout=60)
        return assert_refused(self, proc, mention, status=status)

    def test_bad_configuration(self):
        self.check("need --output", "--rotate-bytes", "1000")
        self.check("need --output", "--rotate-seconds", "5", "--sink", "stdout")
        self.check("--rotate-bytes", "--output", "/tmp/x", "--rotate-bytes", "lots")
        self.check("expected none, gzip or zstd", "--output", "/tmp/x", "--rotate-bytes", "1000",
                   "--rotate-compress", "lz4")
        self.check("--rotate-compress needs --rotate-bytes", "--output", "/tmp/x",
                   "--rotate-compress", "gzip")
        self.check("expected none, gzip or zstd", "--output", "/tmp/x", "--rotate-compress",
                   "GZIP")
        self.check("no/such/dir", "--output", "/no/such/dir/events", "--rotate-bytes", "1000",
                   status=1)


if __name__ == "__main__":
    unittest.main()
