"""The Redis Streams sink (--sink redis), against Debian's redis-server
started by the test (appendonly yes, appendfsync always), read back with
XRANGE over a small RESP client.

1. Streams and IDs: every change in its table's stream
   {prefix}:{schema}.{table} with ID commit_lsn-lsn, fields event (the
   --format json line) and key; logical messages in {prefix}:messages
   (a non-transactional one with ID lsn-0); TRUNCATE in each table's
   stream; the slot acknowledged; --redis-maxlen trims; a user and password
   in the URL.
2. kill -9 of pgstream under load, three times: every committed row in the
   stream exactly once, in order (Redis refuses the IDs a restart sends
   again).
3. Redis killed (-9) and restarted under load: pgstream reconnects, sends
   the unanswered entries again; every row exactly once.
4. A key of another type (WRONGTYPE): exit 1, one line, nothing past it
   acknowledged.
5. Bad configuration: one line, non-zero exit (no URL, a bad scheme, TLS,
   a bad port, an unreachable server, a wrong password).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (BIN, Cluster, FaultStats, PgStream, Workload, assert_refused, check_stream,
                     free_port, lsn_int, lsn_str, wait_slot_inactive)

C = None
R = None
STATS = FaultStats()


def has_redis():
    p = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    return "redis" in p.stdout.split("--sink ", 1)[1].split()[0]


class Resp:
    """Just enough of RESP2 to read streams back."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.s.makefile("rb")

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("bad RESP line %r" % line)

    def close(self):
        self.f.close()
        self.s.close()


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pgstream-redis-")
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--logfile", os.path.join(self.dir, "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            c = None
            try:
                c = Resp(self.port)
                if c.call("PING") == "PONG":
                    return
            except (OSError, RuntimeError):
                pass
            finally:
                if c:
                    c.close()
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def entries(self, stream):
        """[(id, {field: value})] of stream, in order."""
        c = Resp(self.port)
        out, start = [], "-"
        while True:
            batch = c.call("XRANGE", stream, start, "+", "COUNT", 10000)
            if not batch:
                break
            for eid, fields in batch:
                out.append((eid.decode(), dict(zip([f.decode() for f in fields[::2]],
                                                   fields[1::2]))))
            start = "(" + batch[-1][0].decode()
        c.close()
        return out

    def events(self, stream):
        import json
        return [json.loads(f["event"]) for _, f in self.entries(stream)]

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def setUpModule():
    global C, R
    if not has_redis():
        raise unittest.SkipTest("this pgstream was built without the redis sink (hiredis)")
    if shutil.which("redis-server") is None:
        raise unittest.SkipTest("redis-server not installed (scripts/deps.sh)")
    C = Cluster("wal_sender_timeout = 10s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    R = Redis()


def tearDownModule():
    STATS.report("test_redis")
    if R:
        R.close()
    if C:
        C.close()


def new_slot(name):
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))


def redis_args(prefix, *more, url=None):
    return ("--sink", "redis", "--redis-url", url or R.url(), "--topic-prefix", prefix) + more


def entry_id(e):
    if e.get("commit_lsn"):
        return "%d-%d" % (lsn_int(e["commit_lsn"]), lsn_int(e["lsn"]))
    return "%d-0" % lsn_int(e["lsn"])


def wait_rows(stream, w, timeout=120):
    want = sum(len(tx) for tx in w.committed)
    deadline = time.time() + timeout
    while time.time() < deadline:
        c = Resp(R.port)
        n = c.call("XLEN", stream)
        c.close()
        if n >= want:
            return
        time.sleep(0.1)
    raise AssertionError("stream %s has %d entries, want %d" % (stream, n, want))


class Streams(unittest.TestCase):
    def test_streams_ids_fields(self):
        slot = "rd_basic"
        new_slot(slot)
        w = Workload(C, table="rd_basic")
        w.write(200)
        C.sql("CREATE TABLE rd_other (id int primary key, v text)")
        C.sql("INSERT INTO rd_other VALUES (1, 'a'), (2, 'b')")
        C.sql("TRUNCATE rd_basic, rd_other")
        C.sql("SELECT pg_logical_emit_message(false, 'app', 'hello')")
        C.sql("SELECT pg_logical_emit_message(true, 'app', 'in a transaction')")
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        p = PgStream(C, "--end-lsn", lsn_str(end), *redis_args("basic"), slot=slot)
        self.assertEqual(p.run(timeout=120), 0, p.stderr())
        self.assertEqual(p.stdout(), "")
        entries = R.entries("basic:public.rd_basic")
        events = R.events("basic:public.rd_basic")
        for (eid, fields), e in zip(entries, events):
            self.assertEqual(eid, entry_id(e))
            if e["op"] == "insert":
                self.assertEqual(fields["key"], b'{"id":%d}' % e["new"]["id"])
        self.assertEqual(events[-1]["op"], "truncate")
        checked, repeats = check_stream(events[:-1], w)
        self.assertEqual(repeats, 0)
        STATS.checked += checked
        other = R.events("basic:public.rd_other")
        self.assertEqual([e["op"] for e in other], ["insert", "insert", "truncate"])
        msgs = R.entries("basic:messages")
        self.assertEqual(len(msgs), 2)
        self.assertTrue(msgs[0][0].endswith("-0"), msgs)
        self.assertGreaterEqual(wait_slot_inactive(C, slot), end)
        p.close()

    def test_maxlen_and_credentials(self):
        c = Resp(R.port)
        c.call("ACL", "SETUSER", "pgs", "on", ">pw with @ sign", "~*", "+@all")
        c.close()
        slot = "rd_maxlen"
        new_slot(slot)
        w = Workload(C, table="rd_maxlen")
        w.write(100, sizes=(20,))
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        url = "redis://pgs:pw with @ sign@127.0.0.1:%d/0" % R.port
        p = PgStream(C, "--end-lsn", lsn_str(end),
                     *redis_args("ml", "--redis-maxlen", "300", url=url), slot=slot)
        self.assertEqual(p.run(timeout=120), 0, p.stderr())
        c = Resp(R.port)
        n = c.call("XLEN", "ml:public.rd_maxlen")
        c.close()
        self.assertGreaterEqual(n, 300)
        self.assertLess(n, 2000)
        events = R.events("ml:public.rd_maxlen")
        self.assertEqual(events[-1]["new"]["id"], w.committed[-1][-1])
        p.close()


    def test_gap_refused_by_the_script(self):
        """The XADD script refuses an entry whose predecessor (the ID
        pgstream sent before to the same stream) is not in: after one
        refusal in a pipeline, every later entry of the stream is refused
        too, so a stream never has a gap that the duplicate rule would hide."""
        import re
        slot = "rd_gap"
        new_slot(slot)
        C.sql("CREATE TABLE rd_gap (id int primary key)")
        C.sql("INSERT INTO rd_gap VALUES (1)")
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        p = PgStream(C, "--end-lsn", lsn_str(end), "--log-level", "debug", *redis_args("gap"),
                     slot=slot)
        self.assertEqual(p.run(timeout=60), 0, p.stderr())
        sha = re.search(r"XADD script loaded as ([0-9a-f]{40})", p.stderr()).group(1)
        p.close()
        stream = "gap:public.rd_gap"
        top = R.entries(stream)[-1][0]
        ms, seq = map(int, top.split("-"))
        ahead, next_ = "%d-%d" % (ms, seq + 5), "%d-%d" % (ms + 1, 7)
        c = Resp(R.port)

        def add(stream_, prev, *ids):
            args = []
            for i in ids:
                args += [i, 1, "event", "{}"]
            return c.call("EVALSHA", sha, 1, stream_, prev, 0, *args)
        try:
            with self.assertRaises(RuntimeError) as cm:
                add(stream, ahead, next_)
            self.assertIn("PGSTREAM gap", str(cm.exception))
            self.assertEqual(R.entries(stream)[-1][0], top, "added despite the gap")
            self.assertEqual(add(stream, top, next_), [1, 0])
            # Sent again: counted as already there, and what follows is added.
            after = "%d-%d" % (ms + 1, 8)
            self.assertEqual(add(stream, top, next_, after), [1, 1])
            self.assertEqual(R.entries(stream)[-1][0], after)
            # Larger than 2^53: compared as decimal strings, not doubles.
            big = 2 ** 60
            self.assertEqual(add(stream, after, "%d-1" % big), [1, 0])
            with self.assertRaises(RuntimeError) as cm:
                add(stream, "%d-2" % big, "%d-3" % big)
            self.assertIn("PGSTREAM gap", str(cm.exception))
            # No stream at all, yet an entry said to come before: a gap too.
            with self.assertRaises(RuntimeError) as cm:
                add("gap:nothing", "5-5", "6-6")
            self.assertIn("PGSTREAM gap", str(cm.exception))
            self.assertEqual(c.call("EXISTS", "gap:nothing"), 0)
            # A refusal other than the duplicate one ends the call: the
            # refused entry's ID and Redis's error come back, nothing after
            # it is added.
            c.call("SET", "gap:string", "x")
            reply = add("gap:string", "", "1-1", "1-2")
            self.assertEqual(reply[:3], [0, 0, b"1-1"])
            self.assertIn(b"WRONGTYPE", reply[3])
        finally:
            c.close()


class Faults(unittest.TestCase):
    def test_kill9_under_load_exactly_once(self):
        import random
        slot = "rd_kill"
        new_slot(slot)
        w = Workload(C, table="rd_kill")
        args = redis_args("kill", "--status-interval", "0.5")
        p = PgStream(C, *args, slot=slot)
        runs = []
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.start(3000, pause=0.001, big_every=500, big_size=5000)
            for _ in range(3):
                time.sleep(random.uniform(0.5, 2.0))
                p.kill()
                STATS.fault("kill9")
                runs.append(p.stderr())
                wait_slot_inactive(C, slot)
                p.close()
                p = PgStream(C, *args, slot=slot)
                p.start()
                # (else the last run can be told to stop before it handles
                # SIGTERM, once the stream already holds every row)
                p.wait_stderr("listening for changes")
            w.join()
            wait_rows("kill:public.rd_kill", w)
            self.assertEqual(p.stop(), 0, p.stderr())
            err = p.stderr()
            runs.append(err)
            p.close()
            events = R.events("kill:public.rd_kill")
            checked, repeats = check_stream(events, w)
            self.assertEqual(repeats, 0, "an entry in the stream twice")
            ids = [eid for eid, _ in R.entries("kill:public.rd_kill")]
            self.assertEqual(len(ids), len(set(ids)))
            STATS.checked += checked
            print("\ntest_redis: kill -9 x3 under load: %d rows, each once; last run: %s"
                  % (checked, [ln for ln in err.splitlines() if "already in Redis" in ln]),
                  flush=True)
        except BaseException:
            # What each run said, for a failure seen only on a busy machine.
            try:
                if len(runs) < 4:
                    runs.append(p.stderr())
            except OSError:  # (closed)
                pass
            for k, r in enumerate(runs):
                print("--- run %d of pgstream, its stderr's last lines:\n%s"
                      % (k + 1, "\n".join(r.splitlines()[-15:])), flush=True)
            raise
        finally:
            w.stop()
            p.close()

    def test_redis_restarted_under_load(self):
        slot = "rd_restart"
        new_slot(slot)
        w = Workload(C, table="rd_restart")
        p = PgStream(C, *redis_args("rs", "--status-interval", "0.5"), slot=slot)
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.start(3000, pause=0.001)
            for _ in range(2):
                time.sleep(1.0)
                R.kill()
                STATS.fault("redis_kill9")
                time.sleep(1.0)
                R.start()
            w.join()
            wait_rows("rs:public.rd_restart", w)
            self.assertEqual(p.stop(), 0, p.stderr())
            err = p.stderr()
            self.assertIn("redis: connection to Redis lost", err)
            self.assertIn("redis: reconnected", err)
            events = R.events("rs:public.rd_restart")
            checked, repeats = check_stream(events, w)
            self.assertEqual(repeats, 0)
            STATS.checked += checked
        finally:
            w.stop()
            p.close()

    def test_wrongtype_stops(self):
        slot = "rd_wrong"
        new_slot(slot)
        C.sql("CREATE TABLE rd_wrong (id int primary key)")
        c = Resp(R.port)
        c.call("SET", "wr:public.rd_wrong", "not a stream")
        c.close()
        C.sql("INSERT INTO rd_wrong VALUES (1)")
        p = PgStream(C, *redis_args("wr", "--status-interval", "0.5"), slot=slot)
        try:
            p.start()
            self.assertEqual(p.proc.wait(timeout=60), 1, p.stderr())
            last = p.stderr().strip().splitlines()[-1]
            self.assertTrue(last.startswith("pgstream: Redis refused XADD to stream "
                                            "wr:public.rd_wrong"), last)
            self.assertIn("WRONGTYPE", last)
            print("\ntest_redis: %s" % last, flush=True)
            wait_slot_inactive(C, slot)
            commit = C.value("SELECT max(lsn)::text FROM pg_logical_slot_peek_binary_changes("
                             "%s, NULL, NULL, 'proto_version', '1', 'publication_names', "
                             "'pgstream_pub') WHERE get_byte(data, 0) = 67", (slot,))
            self.assertIsNotNone(commit, "the refused transaction was acknowledged")
        finally:
            p.close()


class BadConfig(unittest.TestCase):
    def check(self, mention, *args, status=2):
        proc = subprocess.run([BIN, "--database-url", C.url(), "--env-file", "/dev/null",
                               "--sink", "redis", *args], capture_output=True, text=True,
                              timeout=60)
        return assert_refused(self, proc, mention, status=status)

    def test_bad_configuration(self):
        self.check("needs --redis-url")
        self.check("--redis-url", "--redis-url", "http://127.0.0.1:6379")
        self.check("TLS", "--redis-url", "rediss://127.0.0.1:6379")
        self.check("bad port", "--redis-url", "redis://127.0.0.1:99999")
        self.check("no host", "--redis-url", "redis://:6379")
        self.check("database", "--redis-url", "redis://127.0.0.1:6379/x")
        self.check("not pretty", "--redis-url", R.url(), "--format", "pretty")
        self.check("--redis-maxlen", "--redis-url", R.url(), "--redis-maxlen", "-1")

    def test_unreachable_and_wrong_password(self):
        port = free_port()
        line = self.check("could not connect to Redis at 127.0.0.1:%d" % port, "--redis-url",
                          "redis://127.0.0.1:%d" % port, status=1)
        self.assertIn("refused", line)
        self.check("AUTH", "--redis-url", "redis://pgs:wrong@127.0.0.1:%d" % R.port, status=1)


if __name__ == "__main__":
    unittest.main()
