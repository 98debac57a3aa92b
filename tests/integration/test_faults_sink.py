"""Fault injection, part 3: the sink stops accepting.

6a. pgstream's stdout is a pipe the test stops reading for longer than
    wal_sender_timeout (3 s here): pgstream pauses replication, keeps the
    connection alive (same walsender), warns, and carries on when the reader
    does. At every stall the slot's confirmed position covers only what had
    entered the pipe. A last stall inside a large transaction ends with
    kill -9; the restart repeats what the pipe held of it, and only that.
6d. With --output, strace shows every status update that moves the flush
    position after the write() and fsync() of the events it covers.
6b. The --output file is on a 1 MB tmpfs: writes fail with ENOSPC. pgstream
    exits 1 with one clear line, has acknowledged only what is in the file,
    and once there is space a restart delivers the rest.
6c. The same with RLIMIT_FSIZE (write fails with EFBIG, SIGXFSZ ignored)."""

import fcntl
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import threading
import time
import unittest

import faultkit
from harness import (Cluster, FaultStats, PgStream, Workload, check_stream, lsn_int,
                     lsn_str, parse_lines, slot_info, wait_slot_inactive, walsender_pids)

NOT_READ = "output is not being read; pausing replication"
C = None
STATS = FaultStats()


def setUpModule():
    global C
    C = Cluster("wal_sender_timeout = 3s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    STATS.report("test_faults_sink")
    C.close()


def commit_lsns(events, table):
    """{first row id of a transaction: its commit_lsn} from events."""
    return {e["new"]["id"]: lsn_int(e["commit_lsn"]) for e in events if e.get("table") == table}


def assert_acked_were_written(w, written, ack, everything):
    """Every transaction acknowledged (its commit record before ack) must be
    whole among the events that had been written. everything: all events of
    the test, to learn each transaction's commit LSN."""
    commit_of = commit_lsns(everything, w.table)
    have = {e["new"]["id"] for e in written if e.get("table") == w.table}
    acked = 0
    for ids in w.committed:
        if ids[0] in commit_of and commit_of[ids[0]] < ack:
            acked += 1
            missing = [i for i in ids if i not in have]
            assert not missing, "rows %s acknowledged (slot at %s) but not written" % (
                missing[:5], lsn_str(ack))
    return acked


class PipeReader:
    """Reads a pipe into memory on a thread; pause() stops reading."""

    def __init__(self, fd):
        self.fd = fd
        self.data = bytearray()
        self.go = threading.Event()
        self.go.set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            self.go.wait()
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return
            with self.lock:
                self.data += chunk
            self.go.wait()

    def pause(self):
        self.go.clear()
        time.sleep(0.1)  # let a read in progress finish

    def resume(self):
        self.go.set()

    def pending(self):
        """Bytes written into the pipe and not read yet."""
        buf = fcntl.ioctl(self.fd, termios.FIONREAD, struct.pack("i", 0))
        return struct.unpack("i", buf)[0]

    def snapshot(self):
        with self.lock:
            return bytes(self.data)


# Stalls of the stdout pipe per run (see the test).
STALLS = 10


class StdoutStall(unittest.TestCase):
    def test_stdout_not_read_longer_than_wal_sender_timeout(self):
        slot = "s_pipe"
        w = Workload(C, "ledger_pipe")
        bulk = faultkit.Bulk(C, "bulk_pipe", width=200)
        p = PgStream(C, "--status-interval", "0.2", "--reconnect-max-delay", "1", slot=slot)
        with open(p.err_path, "ab") as err:
            p.proc = subprocess.Popen(p.argv, stdout=subprocess.PIPE, stderr=err, env=p.env)
        # A pipe of one page, not Linux's 64 kB: when it fills, most of
        # pgstream's 64 kB output batch stays unwritten in its buffer, and
        # with small transactions that always includes whole committed ones.
        # (With a 64 kB pipe the unwritten rest is sometimes smaller than one
        # transaction, and then an acknowledgement of what was decoded rather
        # than written went unseen in a stall: 1 run in 4.)
        fcntl.fcntl(p.proc.stdout.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
        reader = PipeReader(p.proc.stdout.fileno())
        self.addCleanup(p.proc.stdout.close)
        stalls = []
        try:
            p.wait_stderr("listening for changes...")
            # Small transactions only: when the pipe fills, whole committed
            # transactions wait unwritten in pgstream's buffer, and a status
            # update sent during the stall must not acknowledge them. (With
            # large ones the pipe mostly fills inside a transaction that is
            # not acknowledgeable anyway, and a bug that acknowledges what
            # it decoded rather than what it wrote goes unseen.)
            w.start(10 ** 9, sizes=(1, 1, 3, 10, 50), rollback_every=9, pause=0.003)
            # Two stalls longer than wal_sender_timeout (and than pgstream's
            # 5 s warning), then short ones: each stall whose pipe filled
            # while a committed transaction was still in pgstream's buffer
            # shows an early acknowledgement, but one that filled in the
            # middle of a transaction the server was still sending does
            # not (1 stall in 4 here), so there are many.
            for k in range(STALLS):
                long_stall = k < 2
                time.sleep(random.uniform(0.3, 1.0))
                walsender = walsender_pids(C, slot)
                warnings = p.stderr().count(NOT_READ)
                reader.pause()
                time.sleep(random.uniform(5.5, 7) if long_stall else random.uniform(0.8, 1.2))
                if long_stall:
                    # The warning counts 5 s from when the pipe filled,
                    # which under load is a little after the pause.
                    p.wait_for(lambda: p.stderr().count(NOT_READ) > warnings, 20,
                               "the stall warning")
                self.assertGreater(reader.pending(), 0)
                ack = slot_info(C, slot)[1]
                written = len(reader.snapshot()) + reader.pending()
                STATS.fault("stdout_stall")
                # Paused, not broken: the same walsender is still there.
                self.assertEqual(walsender_pids(C, slot), walsender, p.stderr())
                self.assertNotIn("reconnecting in", p.stderr())
                reader.resume()
                stalls.append((written, ack))
            w.stop()
            last = w.committed[-1][-1]
            p.wait_for(lambda: b'"id":%d,' % last in reader.snapshot(), 120, "row %d" % last)
            # A last stall inside one transaction larger than the pipe and
            # pgstream's buffer together, ended by kill -9: the part of it in
            # the pipe was written but, its commit not yet reached, not
            # acknowledged, so the restarted pgstream sends it again.
            warnings = p.stderr().count(NOT_READ)
            reader.pause()
            ids = bulk.commit(5000)
            p.wait_for(lambda: p.stderr().count(NOT_READ) > warnings, 60, "the stall warning")
            self.assertGreater(reader.pending(), 0)
            p.proc.kill()
            p.proc.wait()
            STATS.fault("stdout_stall_kill9")
            acked = wait_slot_inactive(C, slot)
            reader.resume()
            reader.thread.join(30)
            self.assertFalse(reader.thread.is_alive(), "the pipe did not reach its end")
            first = reader.snapshot()
        finally:
            w.stop()
            p.close()
        rest = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), slot=slot)
        try:
            self.assertEqual(rest.run(), 0, rest.stderr())
            events2 = rest.events()
        finally:
            rest.close()
        events1 = parse_lines(first)
        events = events1 + events2
        marks = []
        for written, ack in stalls:
            prefix = parse_lines(first[:written])
            n = assert_acked_were_written(w, prefix, ack, events)
            self.assertGreater(n, 0)
            marks.append((len(prefix), ack))
        marks.append((len(events1), acked))
        in_pipe = sum(1 for e in events1 if e.get("table") == bulk.table)
        self.assertGreater(in_pipe, 0, "none of the large transaction reached the pipe")
        self.assertLess(in_pipe, len(ids), "the large transaction fit in the pipe")
        checked, repeats = check_stream(events, w, marks)
        checked2, repeats2 = check_stream(events, bulk, marks)
        self.assertEqual(repeats2, in_pipe, "what the pipe held of the large transaction "
                         "must come again, and only that")
        STATS.checked += checked + checked2
        print("stdout stalls: %d, then one ended by kill -9 inside a %d-row transaction; %d "
              "events checked, %d repeats" % (len(stalls), len(ids), checked + checked2,
                                              repeats + repeats2), flush=True)


def mount_tmpfs(size):
    d = tempfile.mkdtemp(prefix="pgstream-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", d],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(d)
        return None, r.stderr.strip()
    return d, None


def lenient_lines(data):
    """Parse a file that a failed write may have left with a torn last event
    that the next run appended to: returns (events, torn line count)."""
    import json
    events, torn = [], 0
    for line in data.split(b"\n")[:-1]:
        try:
            events.append(json.loads(line))
        except ValueError:
            torn += 1
            at = line.rfind(b'{"op":')
            if at > 0:
                events.append(json.loads(line[at:]))
    return events, torn


class FileFull(unittest.TestCase):
    def sink_full(self, slot, kind, where, preexec=None, grow=None, expect_err=""):
        """Stream into where/events.jsonl until writes fail; check the exit,
        the error and what was acknowledged; then grow() the space and let a
        restarted pgstream deliver the rest. Returns (file bytes, torn lines)."""
        w = Workload(C, "ledger_" + slot)
        out = os.path.join(where, "events.jsonl")
        p = PgStream(C, "--status-interval", "0.2", "--output", out, slot=slot)
        with open(p.err_path, "ab") as err:
            p.proc = subprocess.Popen(p.argv, stdout=subprocess.DEVNULL, stderr=err, env=p.env,
                                      preexec_fn=preexec)
        try:
            p.wait_stderr("listening for changes...")
            w.start(10 ** 9, big_every=30, big_size=2000, rollback_every=9, pause=0.003)
            rc = p.proc.wait(timeout=120)
            STATS.fault(kind)
            ack = wait_slot_inactive(C, slot)
            w.stop()
            err = p.stderr()
            with open(out, "rb") as f:
                first = f.read()
            self.assertEqual(rc, 1, "exit status %s; stderr:\n%s" % (rc, err))
            lines = [l for l in err.splitlines() if l.startswith("pgstream: ")]
            self.assertEqual(len(lines), 1, err)
            self.assertIn("could not write to %s: %s" % (out, expect_err), lines[0])
        finally:
            w.stop()
            p.close()
        grow()
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--output", out, slot=slot)
        try:
            self.assertEqual(p.run(timeout=120), 0, p.stderr())
        finally:
            p.close()
        with open(out, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(first))
        events, torn = lenient_lines(data)
        written = parse_lines(first)
        n = assert_acked_were_written(w, written, ack, events)
        self.assertGreater(n, 0)
        checked, repeats = check_stream(events, w, [(len(written), ack)])
        STATS.checked += checked
        print("%s: %d events checked, %d repeats, %d torn lines" % (slot, checked, repeats, torn),
              flush=True)
        return data, torn

    def with_tmpfs(self):
        d, why = mount_tmpfs("1m")
        if d is None:
            self.skipTest("cannot mount a tmpfs here (%s); see test_file_too_large" % why)
        self.addCleanup(lambda: (subprocess.run(["umount", d]), os.rmdir(d)))
        return d

    def test_enospc(self):
        d = self.with_tmpfs()
        _, torn = self.sink_full("s_enospc", "enospc", d, expect_err="No space left on device",
                                 grow=lambda: subprocess.run(
                                     ["mount", "-o", "remount,size=256m", d], check=True))
        self.assertEqual(torn, 0, "the file must only ever end between events")

    def test_file_too_large(self):
        d = tempfile.mkdtemp(prefix="pgstream-fsize-")
        self.addCleanup(shutil.rmtree, d, True)
        limit = 1 << 20

        def preexec():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        _, torn = self.sink_full("s_fsize", "efbig", d, preexec=preexec, expect_err="File too large",
                                 grow=lambda: None)
        self.assertEqual(torn, 0, "the file must only ever end between events")


class AckAfterFsync(unittest.TestCase):
    """No status update moves the flush position before the write() and the
    fsync() of every event it covers: the order of pgstream's system calls,
    seen from outside by strace. For one file, and for a rotated series,
    whose closed files are fsynced at the next status update rather than at
    the rotation."""

    def traced(self, slot, table, d, *extra):
        """pgstream --output d/events.jsonl (with extra) under strace while a
        workload commits: (workload, trace, the files written, in order)."""
        if shutil.which("strace") is None:
            self.skipTest("strace is not installed (apt-get install strace)")
        probe = subprocess.run(["strace", "-o", "/dev/null", "true"], capture_output=True,
                               text=True)
        if probe.returncode != 0:
            self.skipTest("strace cannot trace here: %s" % probe.stderr.strip())
        out, trace = os.path.join(d, "events.jsonl"), os.path.join(d, "strace.log")
        w = Workload(C, table)
        # LeakSanitizer cannot run under ptrace (the sanitized suite's other
        # tests check leaks); the rest of ASan and UBSan still applies.
        env = {"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"] + ":detect_leaks=0"} \
            if "ASAN_OPTIONS" in os.environ else None
        p = PgStream(C, "--status-interval", "0.05", "--output", out, *extra, slot=slot,
                     env=env)

        def files():
            return [os.path.join(d, n) for n in sorted(os.listdir(d))
                    if n.startswith("events.jsonl")]
        with open(p.err_path, "ab") as err:
            tracer = subprocess.Popen(faultkit.strace_argv(trace, p.argv),
                                      stdout=subprocess.DEVNULL, stderr=err, env=p.env)
        try:
            pid = faultkit.child_pid(tracer.pid, p.argv[0])
            p.wait_for(lambda: ("listening for changes..." in p.stderr()
                                or tracer.poll() is not None),
                       60, "pgstream under strace to stream")
            self.assertIsNone(tracer.poll(), p.stderr())
            # Small transactions between status updates, and some large ones
            # that fill the buffer more than once.
            w.write(150, big_every=25, big_size=3000, rollback_every=9, pause=0.01)
            want = b'"new":{"id":%d,"tx":' % w.committed[-1][-1]

            def has_last():
                for f in reversed(files()):
                    with open(f, "rb") as fh:
                        if want in fh.read():
                            return True
                return tracer.poll() is not None
            p.wait_for(has_last, 120, "the last row in the files")
            time.sleep(0.3)  # a few more status updates, acknowledging the end
            os.kill(pid, signal.SIGTERM)
            self.assertEqual(tracer.wait(timeout=60), 0, p.stderr())
        finally:
            if tracer.poll() is None:
                tracer.kill()
                tracer.wait()
            p.close()
        return w, trace, files()

    def check(self, w, trace, paths, what):
        events = [e for f in paths for e in faultkit.read_events(f)]
        moved, fsyncs = faultkit.check_ack_order(trace, paths, events)
        checked, repeats = check_stream(events, w)
        STATS.checked += checked
        STATS.fault("strace_ack_order")
        print("ack order, %s: %d status updates moved the flush position, %d fsyncs, %d "
              "events checked" % (what, moved, fsyncs, checked), flush=True)
        self.assertEqual(repeats, 0)
        self.assertGreater(fsyncs, 5)
        self.assertGreater(moved, 5)

    def test_status_updates_follow_write_and_fsync(self):
        d = tempfile.mkdtemp(prefix="pgstream-fsync-")
        self.addCleanup(shutil.rmtree, d, True)
        w, trace, paths = self.traced("s_fsync_order", "ledger_fsync", d)
        self.assertEqual(len(paths), 1, paths)
        self.check(w, trace, paths, "one file")

    def test_rotated_files_fsynced_before_status_updates(self):
        d = tempfile.mkdtemp(prefix="pgstream-fsync-rot-")
        self.addCleanup(shutil.rmtree, d, True)
        w, trace, paths = self.traced("s_fsync_rot", "ledger_fsync_rot", d,
                                      "--rotate-bytes", "300000")
        self.assertGreater(len(paths), 5, paths)
        self.check(w, trace, paths, "%d rotated files" % len(paths))


if __name__ == "__main__":
    unittest.main()
