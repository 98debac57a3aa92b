"""The NATS JetStream sink (--sink nats), against Debian's nats-server
started by the test (nats-server -js, file storage), read back with
libnats (tests/tools/nats_tool.c).

1. Subjects and headers: every change on its table's subject
   {prefix}.{schema}.{table}, logical messages on {prefix}.messages,
   TRUNCATE on each table's subject; Nats-Msg-Id the event's position,
   in stream order; the stream created with {prefix}.>,
   the replicas and the duplicate window asked for; the slot acknowledged.
2. kill -9 of pgstream under load, three times, with a duplicate window of
   one second and more than that between kill and restart: every committed
   row in the stream exactly once, in order (pgstream resumes from the
   stream's last message, not from the window).
3. nats-server killed (-9) and restarted under load: every row once.
4. A 3-node JetStream cluster with an R3 stream: the stream's leader killed
   under load, and started again: every row once, in order.
5. An event over the server's max_payload: exit 1, one line, nothing from it
   on acknowledged; a restart once max_payload is raised delivers it.
6. Bad configuration: one line, non-zero exit (no URL, a bad scheme, a
   bad prefix or stream name, replicas out of range, pretty, an
   unreachable server, wrong credentials, JetStream off, a missing stream
   with creation off, a stream that does not take {prefix}.>, a stream
   whose last message is someone else's).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (BIN, ROOT, Cluster, FaultStats, PgStream, Workload, assert_refused,
                     check_stream, free_port, lsn_int, wait_slot_inactive)

NATS_TOOL = os.environ.get("NATS_TOOL") or os.path.join(ROOT, "build", "tests", "nats_tool")
C = None
N = None
STATS = FaultStats()


def has_nats():
    p = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    return "nats" in p.stdout.split("--sink ", 1)[1].split()[0].split("|")


def tool(url, *args, check=True):
    p = subprocess.run([NATS_TOOL, url, *args], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("nats_tool %s: %s" % (" ".join(args), p.stderr.strip()))
    return p


class Nats:
    """One nats-server with JetStream; in a cluster when routes are given."""

    def __init__(self, name="n1", cluster_port=None, routes=(), extra=""):
        self.dir = tempfile.mkdtemp(prefix="pgstream-nats-")
        self.port = free_port()
        self.name = name
        conf = ["server_name: %s" % name, "listen: 127.0.0.1:%d" % self.port,
                "jetstream { store_dir: \"%s\" }" % os.path.join(self.dir, "js"), extra]
        if cluster_port:
            conf.append("cluster { name: pgs, listen: 127.0.0.1:%d, routes: [%s] }"
                        % (cluster_port, ", ".join("nats-route://127.0.0.1:%d" % r
                                                   for r in routes)))
        self.conf = os.path.join(self.dir, "nats.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["nats-server", "-c", self.conf,
                                      "-l", os.path.join(self.dir, "log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("nats-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def read(url, stream):
    return [json.loads(ln) for ln in tool(url, "read", stream).stdout.splitlines()]


def info(url, stream):
    return json.loads(tool(url, "info", stream).stdout)


def setUpModule():
    global C, N
    if not has_nats():
        raise unittest.SkipTest("this pgstream was built without the nats sink (libnats)")
    if shutil.which("nats-server") is None:
        raise unittest.SkipTest("nats-server not installed (scripts/deps.sh)")
    if not os.access(NATS_TOOL, os.X_OK):
        raise unittest.SkipTest("tests/tools/nats_tool not built (%s)" % NATS_TOOL)
    C = Cluster("wal_sender_timeout = 10s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    N = Nats()


def tearDownModule():
    STATS.report("test_nats")
    if N:
        N.close()
    if C:
        C.close()


def new_slot(name):
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))


def nats_args(prefix, *more, url=None):
    return ("--sink", "nats", "--nats-url", url or N.url(), "--topic-prefix", prefix) + more


def wait_messages(url, stream, want, timeout=120):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        p = tool(url, "info", stream, check=False)
        if p.returncode == 0:
            got = json.loads(p.stdout)["messages"]
            if got >= want:
                return
        time.sleep(0.2)
    raise AssertionError("stream %s has %s messages, want %d" % (stream, got, want))


def rows(w):
    return sum(len(tx) for tx in w.committed)


def check_once(test, url, stream, w, what):
    msgs = read(url, stream)
    ids = [m["id"] for m in msgs]
    test.assertEqual(len(ids), len(set(ids)), "a position in the stream twice")
    events = [m["data"] for m in msgs]
    checked, repeats = check_stream(events, w)
    test.assertEqual(repeats, 0, "an event in the stream twice")
    test.assertEqual(checked, rows(w))
    STATS.checked += checked
    print("\ntest_nats: %s: %d rows written, %d in the stream, %d repeats"
          % (what, rows(w), len(msgs), repeats), flush=True)


class Subjects(unittest.TestCase):
    def test_subjects_ids_headers(self):
        slot = "nt_basic"
        new_slot(slot)
        w = Workload(C, table="nt_basic")
        w.write(100)
        C.sql("CREATE TABLE nt_other (id int primary key, v text)")
        C.sql("INSERT INTO nt_other VALUES (1, 'a'), (2, 'b')")
        C.sql("UPDATE nt_other SET v = 'c' WHERE id = 2")
        C.sql("DELETE FROM nt_other WHERE id = 1")
        C.sql("TRUNCATE nt_basic, nt_other")
        C.sql("SELECT pg_logical_emit_message(false, 'app', 'hello')")
        C.sql("SELECT pg_logical_emit_message(true, 'app', 'in a transaction')")
        end = C.value("SELECT pg_current_wal_lsn()::text")
        p = PgStream(C, *nats_args("bs", "--nats-replicas", "1", "--nats-duplicate-window",
                                   "30", "--end-lsn", end), slot=slot)
        try:
            p.start()
            self.assertEqual(p.proc.wait(timeout=120), 0, p.stderr())
            err = p.stderr()
            self.assertIn("nats: created stream bs (subjects bs.>, file storage, 1 replicas, "
                          "duplicate window 30 s)", err)
        finally:
            p.close()
        st = info(N.url(), "bs")
        self.assertEqual(st["subjects"], ["bs.>"])
        self.assertEqual(st["replicas"], 1)
        self.assertEqual(st["duplicate_window_s"], 30.0)
        msgs = read(N.url(), "bs")
        by = {}
        for m in msgs:
            by.setdefault(m["subject"], []).append(m)
        self.assertEqual(sorted(by), ["bs.messages", "bs.public.nt_basic", "bs.public.nt_other"])
        ops = [m["data"]["op"] for m in by["bs.public.nt_other"]]
        self.assertEqual(ops, ["insert", "insert", "update", "delete", "truncate"])
        self.assertEqual(by["bs.public.nt_basic"][-1]["data"]["op"], "truncate")
        check_stream([m["data"] for m in by["bs.public.nt_basic"][:-1]], w)
        self.assertEqual(len(by["bs.public.nt_basic"]) - 1, rows(w))
        seqs = [m["seq"] for m in msgs]
        self.assertEqual(seqs, list(range(1, len(msgs) + 1)))
        positions = []
        for m in msgs:
            ev = m["data"]
            if ev.get("commit_lsn"):
                self.assertTrue(m["id"].startswith(ev["commit_lsn"] + ":"), m)
            else:
                self.assertEqual(m["id"], ev["lsn"] + ":1")
            lsn, index = m["id"].split(":")
            hi, lo = lsn.split("/")
            positions.append(((int(hi, 16) << 32) | int(lo, 16), int(index)))
        self.assertEqual(positions, sorted(positions), "positions out of order")
        self.assertEqual(len(set(positions)), len(positions))
        nontx = [m for m in by["bs.messages"] if not m["data"].get("commit_lsn")]
        self.assertEqual(len(nontx), 1)
        self.assertGreaterEqual(wait_slot_inactive(C, slot), lsn_int(end))


class Faults(unittest.TestCase):
    def test_kill9_under_load_exactly_once_past_the_window(self):
        import random
        slot = "nt_kill"
        new_slot(slot)
        w = Workload(C, table="nt_kill")
        args = nats_args("kill", "--status-interval", "0.5", "--nats-duplicate-window", "1")
        p = PgStream(C, *args, slot=slot)
        skipped = []
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.start(3000, pause=0.001, big_every=500, big_size=5000)
            for _ in range(3):
                time.sleep(random.uniform(0.5, 2.0))
                p.kill()
                STATS.fault("kill9")
                wait_slot_inactive(C, slot)
                time.sleep(1.5)  # past the stream's duplicate window
                p.close()
                p = PgStream(C, *args, slot=slot)
                p.start()
                p.wait_stderr("listening for changes")
                skipped += [ln for ln in p.stderr().splitlines() if "is skipped" in ln]
            w.join()
            wait_messages(N.url(), "kill", rows(w))
            self.assertEqual(p.stop(), 0, p.stderr())
            err = p.stderr()
            p.close()
            self.assertTrue(skipped, "no restart resumed from the stream's last message")
            check_once(self, N.url(), "kill", w, "kill -9 x3 under load, window 1 s")
            print("test_nats: %s" % [ln for ln in err.splitlines() if "skipped" in ln],
                  flush=True)
        finally:
            w.stop()
            p.close()

    def test_server_restarted_under_load(self):
        slot = "nt_restart"
        new_slot(slot)
        w = Workload(C, table="nt_restart")
        p = PgStream(C, *nats_args("rs", "--status-interval", "0.5"), slot=slot)
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.start(3000, pause=0.001)
            for _ in range(2):
                time.sleep(1.0)
                N.kill()
                STATS.fault("nats_kill9")
                time.sleep(1.0)
                N.start()
            w.join()
            wait_messages(N.url(), "rs", rows(w))
            self.assertEqual(p.stop(), 0, p.stderr())
            err = p.stderr()
            self.assertIn("nats: disconnected from the server", err)
            self.assertIn("nats: reconnected", err)
            check_once(self, N.url(), "rs", w, "nats-server kill -9 x2 under load")
        finally:
            w.stop()
            p.close()

    def test_max_payload_stops_then_restart_delivers(self):
        slot = "nt_big"
        new_slot(slot)
        small = Nats(name="small", extra="max_payload: 4096")
        try:
            C.sql("CREATE TABLE nt_big (id int primary key, pad text)")
            C.sql("INSERT INTO nt_big VALUES (1, 'small')")
            C.sql("INSERT INTO nt_big VALUES (2, repeat('x', 8000))")
            C.sql("INSERT INTO nt_big VALUES (3, 'after')")
            end = C.value("SELECT pg_current_wal_lsn()::text")
            args = nats_args("big", "--status-interval", "0.5", "--end-lsn", end,
                             url=small.url())
            p = PgStream(C, *args, slot=slot)
            try:
                p.start()
                self.assertEqual(p.proc.wait(timeout=60), 1, p.stderr())
                last = p.stderr().strip().splitlines()[-1]
            finally:
                p.close()
            self.assertTrue(last.startswith("pgstream: could not publish the event"), last)
            self.assertIn("max_payload (4096 bytes)", last)
            print("\ntest_nats: %s" % last, flush=True)
            wait_slot_inactive(C, slot)
            self.assertEqual([m["data"]["new"]["id"] for m in read(small.url(), "big")], [1])
            STATS.fault("max_payload")
            with open(small.conf) as f:
                conf = f.read().replace("max_payload: 4096", "max_payload: 65536")
            with open(small.conf, "w") as f:
                f.write(conf)
            small.kill()
            small.start()
            p = PgStream(C, *args, slot=slot)
            try:
                p.start()
                self.assertEqual(p.proc.wait(timeout=60), 0, p.stderr())
            finally:
                p.close()
            self.assertEqual([m["data"]["new"]["id"] for m in read(small.url(), "big")],
                             [1, 2, 3])
        finally:
            small.close()


class JetStreamCluster(unittest.TestCase):
    def test_r3_leader_killed_under_load(self):
        cports = [free_port() for _ in range(3)]
        nodes = []
        try:
            for i in range(3):
                nodes.append(Nats(name="c%d" % (i + 1), cluster_port=cports[i],
                                  routes=[c for j, c in enumerate(cports) if j != i]))
            urls = ",".join(n.url() for n in nodes)
            # The cluster elects its meta leader before a stream can be made.
            deadline = time.time() + 60
            while True:
                p = tool(nodes[0].url(), "add-stream", "probe", "probe.>", check=False)
                if p.returncode == 0:
                    break
                self.assertLess(time.time(), deadline, p.stderr)
                time.sleep(0.5)
            slot = "nt_cluster"
            new_slot(slot)
            w = Workload(C, table="nt_cluster")
            p = PgStream(C, *nats_args("cl", "--status-interval", "0.5", "--nats-replicas", "3",
                                       url=urls), slot=slot)
            try:
                p.start()
                p.wait_stderr("listening for changes")
                self.assertEqual(info(nodes[0].url(), "cl")["replicas"], 3)
                w.start(3000, pause=0.001)
                time.sleep(1.5)
                leader = info(nodes[0].url(), "cl")["leader"]
                victim = [n for n in nodes if n.name == leader][0]
                victim.kill()
                STATS.fault("nats_leader_kill9")
                time.sleep(3.0)
                victim.start()
                w.join()
                alive = [n for n in nodes if n is not victim][0]
                wait_messages(alive.url(), "cl", rows(w), timeout=180)
                self.assertEqual(p.stop(), 0, p.stderr())
                err = p.stderr()
            finally:
                w.stop()
                p.close()
            print("\ntest_nats: leader %s killed; pgstream said: %s" % (
                leader, [ln.split(": ", 1)[-1][:120] for ln in err.splitlines()
                         if "nats:" in ln][:6]), flush=True)
            check_once(self, alive.url(), "cl", w, "R3 stream, leader kill -9 under load")
        finally:
            for n in nodes:
                n.close()


class BadConfig(unittest.TestCase):
    def check(self, mention, *args, status=2):
        proc = subprocess.run([BIN, "--database-url", C.url(), "--env-file", "/dev/null",
                               "--sink", "nats", *args], capture_output=True, text=True,
                              timeout=60)
        return assert_refused(self, proc, mention, status=status)

    def test_bad_configuration(self):
        self.check("needs --nats-url")
        self.check("--nats-url", "--nats-url", "http://127.0.0.1:4222")
        self.check("--topic-prefix", "--nats-url", N.url(), "--topic-prefix", "a.*")
        self.check("--topic-prefix", "--nats-url", N.url(), "--topic-prefix", "a..b")
        self.check("--nats-stream", "--nats-url", N.url(), "--nats-stream", "a.b")
        self.check("--nats-replicas", "--nats-url", N.url(), "--nats-replicas", "0")
        self.check("not pretty", "--nats-url", N.url(), "--format", "pretty")

    def test_servers_and_streams_refused(self):
        port = free_port()
        self.check("could not connect to NATS at nats://127.0.0.1:%d" % port, "--nats-url",
                   "nats://127.0.0.1:%d" % port, status=1)
        auth = Nats(name="auth", extra="authorization { user: pgs, password: right }")
        try:
            line = self.check("could not connect to NATS at nats://127.0.0.1:%d" % auth.port,
                              "--nats-url", "nats://pgs:wrong@127.0.0.1:%d" % auth.port,
                              status=1)
            self.assertNotIn("wrong", line)  # no password in the message
            self.assertIn("uthorization", line)
        finally:
            auth.close()
        self.check("does not exist (and --nats-create-stream is false)", "--nats-url", N.url(),
                   "--topic-prefix", "nocreate", "--nats-create-stream=false", status=1)
        tool(N.url(), "add-stream", "other", "elsewhere.>")
        self.check("does not take the subjects pgstream publishes to (mine.>; its subjects: "
                   "elsewhere.>)", "--nats-url", N.url(), "--topic-prefix", "mine",
                   "--nats-stream", "other", status=1)
        tool(N.url(), "add-stream", "foreign", "foreign.>")
        tool(N.url(), "publish", "foreign.x", "not an event")
        self.check("was not published by pgstream", "--nats-url", N.url(), "--topic-prefix",
                   "foreign", status=1)

    def test_jetstream_off(self):
        port = free_port()
        plain = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            self.check("JetStream", "--nats-url", "nats://127.0.0.1:%d" % port, status=1)
        finally:
            plain.kill()
            plain.wait()


if __name__ == "__main__":
    unittest.main()
