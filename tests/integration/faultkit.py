"""faultkit.py — helpers the fault tests share (test_faults_*.py), on top of
harness.py: transactions large enough on the wire that a fault can be aimed
inside one, strict readers of what pgstream wrote, and the order of writes,
fsyncs and status updates seen by strace."""

import bisect
import json
import os
import re
import time

from harness import Workload, lsn_int, lsn_str


class Bulk(Workload):
    """A Workload on a table of its own whose rows carry `width` bytes of
    filler ('x' repeated: compressed on the server, whole on the wire), so
    that one transaction of a few thousand rows takes seconds through a
    rate-limited proxy and a fault can land inside it."""

    def __init__(self, cluster, table, width=2000):
        self.width = width
        cluster.sql("CREATE TABLE IF NOT EXISTS %s (id bigint PRIMARY KEY, tx int, pad text,"
                    " fill text DEFAULT repeat('x', %d))" % (table, width))
        super().__init__(cluster, table)
        self.next_id = 10 ** 9  # ids no other table of the test uses (see wait_row)

    def commit(self, rows):
        """Commit one transaction of `rows` rows; returns their ids."""
        self.write(1, sizes=(rows,))
        return self.committed[-1]

    def shrink(self, e):
        """Check an event's filler and drop it (keeps parsed streams small)."""
        if e.get("table") == self.table:
            fill = e["new"].pop("fill")
            assert fill == "x" * self.width, "row %s: filler is not what was written" % (
                e["new"].get("id"),)
        return e


def parse_strict(data, shrink=None):
    """Every complete line of bytes must be a JSON object (a line cut by a
    kill has no newline and is not returned). shrink(event) may check and
    drop large values."""
    events = []
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return events
        line = data[start:end]
        try:
            e = json.loads(line)
        except ValueError as exc:
            raise AssertionError("line at byte %d does not parse (%s): %r" % (
                start, exc, line[:120] + b"..." + line[-60:] if len(line) > 200 else line))
        events.append(shrink(e) if shrink else e)
        start = end + 1


def read_events(path, shrink=None):
    with open(path, "rb") as f:
        return parse_strict(f.read(), shrink)


class Tail:
    """Watches a growing file for a byte string, reading only what is new."""

    def __init__(self, path):
        self.path = path
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0
        self.keep = b""

    def seen(self, needle):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            new = f.read()
        self.offset += len(new)
        window = self.keep + new
        if needle in window:
            return True
        self.keep = window[-len(needle):]
        return False

    def wait(self, needle, timeout, proc=None):
        deadline = time.time() + timeout
        while not self.seen(needle):
            if proc is not None and proc.poll() is not None:
                raise AssertionError("pgstream exited (%s) while waiting for %r" % (
                    proc.returncode, needle))
            if time.time() > deadline:
                raise AssertionError("timed out waiting for %r in %s" % (needle, self.path))
            time.sleep(0.005)


def wait_row(tail, rid, timeout=60, proc=None):
    """Wait until the insert of row rid (ids unique across the test's
    tables) appears in what tail watches."""
    tail.wait(b'"new":{"id":%d,"tx":' % rid, timeout, proc)


def midwrite(fd):
    """True when the file open at fd ends inside a line: a write() is under
    way, or one was cut."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def torn_tail(path):
    """Bytes after the file's last newline (0 when it ends between events)."""
    with open(path, "rb") as f:
        data = f.read()
    return len(data) - (data.rfind(b"\n") + 1)


def child_pid(pid, argv0, timeout=10):
    """The child of process pid running argv0 (pgstream under strace, which
    also forks short-lived children of its own to probe ptrace)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        for kid in kids:
            try:
                with open("/proc/%d/cmdline" % kid, "rb") as f:
                    if f.read().split(b"\0")[0] == argv0.encode():
                        return kid
            except OSError:
                pass
        time.sleep(0.01)
    raise AssertionError("process %d has no child running %s" % (pid, argv0))


# ---- strace: writes, fsyncs and status updates in the order they happened ---

STRACE_CALLS = "write,pwrite64,writev,fsync,fdatasync,sendto,sendmsg"
_CALL = re.compile(r'^(?:\d+\s+)?(\w+)\((\d+)<([^>]*)>(.*)\)\s+=\s+(-?\d+)')
_HEX = re.compile(r'"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?')


def strace_argv(trace_path, argv):
    """argv run under strace, logging the calls that matter to trace_path
    with file descriptors named (-y) and buffers in hex (-xx)."""
    return ["strace", "-f", "-qq", "-y", "-xx", "-s", "256", "-e", "signal=none",
            "-e", "trace=" + STRACE_CALLS, "-o", trace_path, *argv]


def _unhex(text):
    """strace -xx shows paths in hex too."""
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def status_updates(buf, cut=False):
    """(write LSN, flush LSN) of each Standby Status Update in a frontend
    byte stream that starts on a message boundary. cut: strace shortened
    the buffer; a CopyData cut short there is an error (raise -s)."""
    out, i = [], 0
    while i < len(buf):
        kind = buf[i:i + 1]
        length = int.from_bytes(buf[i + 1:i + 5], "big")
        if i + 1 + length > len(buf):
            assert not (cut and kind == b"d"), "strace cut a CopyData message: %r" % buf
            break
        body = buf[i + 5:i + 1 + length]
        if kind == b"d" and body[:1] == b"r":
            out.append((int.from_bytes(body[1:9], "big"), int.from_bytes(body[9:17], "big")))
        i += 1 + length
    return out


def check_ack_order(trace_path, out_path, events):
    """From a strace log of a pgstream run writing to out_path (a new file,
    or a list of new files: a rotated series, in order): every status update
    that moves the flush position to F must come after the write() and the
    fsync() of every event whose transaction committed before F
    (commit_lsn < F), each in its file. events: the files' events, in order.
    Returns (status updates that moved the flush position, fsyncs)."""
    paths = [out_path] if isinstance(out_path, str) else list(out_path)
    ends, commits, starts, off = [], [], [], 0
    for path in paths:
        starts.append(off)
        with open(path, "rb") as f:
            for line in f:
                off += len(line)
                ends.append(off)
    assert len(ends) == len(events), (len(ends), len(events))
    for e in events:
        commits.append(lsn_int(e["commit_lsn"]) if e.get("commit_lsn") else 0)
    assert commits == sorted(commits), "events out of commit order in one run"
    index = {os.path.realpath(p): i for i, p in enumerate(paths)}
    written = [0] * len(paths)  # bytes written to each file so far,
    synced = [0] * len(paths)   # ... and at its last fsync
    moved = fsyncs = 0
    flushed = 0
    with open(trace_path) as f:
        for line in f:
            m = _CALL.match(line)
            if not m:
                continue
            call, _fd, target, rest, ret = m.groups()
            target = _unhex(target)
            ret = int(ret)
            if target in index:
                i = index[target]
                if call in ("write", "pwrite64", "writev") and ret > 0:
                    written[i] += ret
                elif call in ("fsync", "fdatasync") and ret == 0:
                    synced[i] = written[i]
                    fsyncs += 1
                continue
            if call not in ("sendto", "sendmsg") or not target.startswith("socket:"):
                continue
            h = _HEX.search(rest)
            if not h:
                continue
            buf = bytes.fromhex(h.group(1).replace("\\x", ""))
            for _write_lsn, flush in status_updates(buf, cut=bool(h.group(2))):
                if flush <= flushed:
                    continue
                # Events of transactions that committed before flush, and the
                # bytes of each file they take.
                need = bisect.bisect_left(commits, flush)
                need_end = ends[need - 1] if need else 0
                for i, start in enumerate(starts):
                    want = min(max(need_end - start, 0),
                               (starts[i + 1] if i + 1 < len(starts) else off) - start)
                    assert want <= written[i], \
                        "flush position %s reported with %d bytes of %s written, %d needed" % (
                            lsn_str(flush), written[i], paths[i], want)
                    assert want <= synced[i], \
                        "flush position %s reported before fsync: %d bytes of %s written, " \
                        "%d synced, %d needed" % (lsn_str(flush), written[i], paths[i],
                                                  synced[i], want)
                flushed = flush
                moved += 1
    assert sum(written) == off, "trace saw %d bytes written, the files have %d" % (
        sum(written), off)
    return moved, fsyncs
