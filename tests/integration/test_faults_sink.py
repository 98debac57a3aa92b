"""Fault injection, part 3: the sink stops accepting.

6a. pgstream's stdout is a pipe the test stops reading for longer than
    wal_sender_timeout (3 s here): pgstream pauses replication, keeps the
    connection alive (same walsender), warns, and carries on when the reader
    does. At every stall the slot's confirmed position covers only what had
    entered the pipe.
6b. The --output file is on a 1 MB tmpfs: writes fail with ENOSPC. pgstream
    exits 1 with one clear line, has acknowledged only what is in the file,
    and once there is space a restart delivers the rest.
6c. The same with RLIMIT_FSIZE (write fails with EFBIG, SIGXFSZ ignored)."""

import fcntl
import os
import random
import resource
import shutil
import struct
import subprocess
import tempfile
import termios
import threading
import time
import unittest

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


class StdoutStall(unittest.TestCase):
    def test_stdout_not_read_longer_than_wal_sender_timeout(self):
        slot = "s_pipe"
        w = Workload(C, "ledger_pipe")
        p = PgStream(C, "--status-interval", "0.2", "--reconnect-max-delay", "1", slot=slot)
        with open(p.err_path, "ab") as err:
            p.proc = subprocess.Popen(p.argv, stdout=subprocess.PIPE, stderr=err, env=p.env)
        reader = PipeReader(p.proc.stdout.fileno())
        self.addCleanup(p.proc.stdout.close)
        stalls = []
        try:
            p.wait_stderr("listening for changes...")
            w.start(10 ** 9, big_every=30, big_size=2000, rollback_every=9, pause=0.003)
            for _ in range(2):
                time.sleep(random.uniform(0.5, 2))
                walsender = walsender_pids(C, slot)
                warnings = p.stderr().count(NOT_READ)
                reader.pause()
                # Longer than wal_sender_timeout, and than pgstream's 5 s warning.
                time.sleep(random.uniform(5.5, 7))
                self.assertGreater(reader.pending(), 0)
                ack = slot_info(C, slot)[1]
                written = len(reader.snapshot()) + reader.pending()
                STATS.fault("stdout_stall")
                # Paused, not broken: the same walsender is still there.
                self.assertEqual(walsender_pids(C, slot), walsender, p.stderr())
                self.assertNotIn("reconnecting in", p.stderr())
                self.assertGreater(p.stderr().count(NOT_READ), warnings, p.stderr())
                reader.resume()
                stalls.append((written, ack))
            w.stop()
            last = w.committed[-1][-1]
            p.wait_for(lambda: b'"id":%d,' % last in reader.snapshot(), 120, "row %d" % last)
            self.assertEqual(p.stop(), 0, p.stderr())
            reader.thread.join(10)
            data = reader.snapshot()
            events = parse_lines(data)
            self.assertTrue(data.endswith(b"\n"))
            marks = []
            for written, ack in stalls:
                prefix = parse_lines(data[:written])
                n = assert_acked_were_written(w, prefix, ack, events)
                self.assertGreater(n, 0)
                marks.append((len(prefix), ack))
            checked, repeats = check_stream(events, w, marks)
            STATS.checked += checked
            print("stdout stalls: %d, %d events checked, %d repeats" % (len(stalls), checked,
                                                                        repeats), flush=True)
        finally:
            w.stop()
            p.close()


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


if __name__ == "__main__":
    unittest.main()
