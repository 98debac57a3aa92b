"""The webhook sink (--sink webhook), against a real HTTP server written for
the test (webhook_server.py: http.server on loopback, able to fail on
purpose), which applies each Idempotency-Key once, as a receiver should.

1. Batches: every event once, in order; each request within the batch
   limits, its Idempotency-Key the positions of its first and last events,
   its HMAC-SHA-256 signature verified; NDJSON and JSON-array bodies; a
   TRUNCATE of two tables in batches of one gets two keys; the slot
   acknowledged only up to what had its 2xx.
2. Faults under load: 500s for a while, 429 with Retry-After (honoured),
   a reply slower than --webhook-timeout (retried with the same key, the
   receiver drops the repeat), a slow reply within it, a dropped
   connection, 503s; every event arrives, in order; a batch is only ever
   repeated whole, same key, same body, same signature; while the endpoint
   fails the slot never moves past the failing batch.
3. A 400: exit 1, one line with the status and the start of the reply,
   nothing acknowledged past the batch; a restart delivers the rest.
4. kill -9 of pgstream while the endpoint fails, then a restart: every
   committed row delivered, repeats only of what was not acknowledged.
5. Bad configuration: one line, non-zero exit (no URL, a bad URL or scheme,
   an unreachable endpoint, a certificate that does not verify, --format
   pretty, a bad --webhook-body).
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest

from harness import (BIN, Cluster, FaultStats, PgStream, Workload, assert_refused, check_stream,
                     free_port, lsn_int, lsn_str, wait_slot_inactive)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webhook_server import WebhookServer  # noqa: E402

SECRET = "s3cret-for-tests"
C = None
STATS = FaultStats()


def has_webhook():
    p = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    return "webhook" in p.stdout.split("--sink ", 1)[1].split()[0]


def setUpModule():
    global C
    if not has_webhook():
        raise unittest.SkipTest("this pgstream was built without the webhook sink (libcurl)")
    C = Cluster("wal_sender_timeout = 10s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    STATS.report("test_webhook")
    if C:
        C.close()


def new_slot(name):
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))


def hook_args(server, *more, secret=SECRET):
    args = ["--sink", "webhook", "--webhook-url", server.url, "--topic-prefix", "t"]
    if secret:
        args += ["--webhook-secret", secret]
    return tuple(args) + more


def position(e):
    return "%s:%s" % (e.get("commit_lsn") or "0/0", e["lsn"])


def check_requests(test, server, max_events=None, max_bytes=None):
    """Every request: signed correctly; same key => same body and signature
    (a batch is only ever repeated whole); its key the positions of its
    first and last events; within the batch limits. Returns the number of
    requests that repeated an earlier key."""
    bodies = {}
    repeats = 0
    for r in server.snapshot():
        test.assertTrue(r["verified"], "signature did not verify for %s" % r["key"])
        if r["key"] in bodies:
            test.assertEqual(bodies[r["key"]], (r["body"], r["sig"]),
                             "key %s sent again with another body" % r["key"])
            repeats += 1
            continue
        bodies[r["key"]] = (r["body"], r["sig"])
        from webhook_server import parse_body
        events = parse_body(r["body"], r["ctype"])
        test.assertEqual(int(r["count"]), len(events))
        prefix, first_last = r["key"].split(":", 1)
        test.assertEqual(prefix, "t")
        test.assertTrue(first_last.startswith(position(events[0])), (r["key"], events[0]))
        test.assertIn("-" + position(events[-1]), first_last)
        if max_events:
            test.assertLessEqual(len(events), max_events)
        if max_bytes and len(events) > 1:
            test.assertLessEqual(len(r["body"]), max_bytes)
    return repeats


def wait_rows(server, w, timeout=120):
    """Until every committed row of w has been delivered at least once."""
    want = {i for tx in w.committed for i in tx}
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = {e["new"]["id"] for e in server.delivered()
               if e.get("table") == w.table and e["op"] == "insert"}
        if want <= got:
            return
        time.sleep(0.1)
    raise AssertionError("%d rows not delivered in %d s" % (len(want - got), timeout))


def wait_consumed(server, timeout=30):
    """Until every fault queued with fail() has met a request."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with server.lock:
            if not server.plan:
                return
        time.sleep(0.02)
    raise AssertionError("faults not consumed in %d s: %r" % (timeout, list(server.plan)))


def first_failing_commit(server, since):
    """commit_lsn (int) of the first event of the first request refused or
    dropped after time `since`."""
    from webhook_server import parse_body
    for r in server.snapshot():
        if r["t"] >= since and r["status"] != 200:
            return lsn_int(parse_body(r["body"], r["ctype"])[0]["commit_lsn"])
    return None


class Batches(unittest.TestCase):
    def test_batches_keys_signatures(self):
        for body in ("ndjson", "array"):
            with self.subTest(body=body):
                slot = "wh_batches_" + body
                new_slot(slot)
                w = Workload(C, table="wh_batches_" + body)
                w.write(300)
                end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
                server = WebhookServer(secret=SECRET)
                try:
                    p = PgStream(C, "--end-lsn", lsn_str(end),
                                 *hook_args(server, "--webhook-batch-size", "40",
                                            "--webhook-batch-bytes", "6000",
                                            "--webhook-body", body), slot=slot)
                    rc = p.run(timeout=120)
                    self.assertEqual(rc, 0, p.stderr())
                    self.assertEqual(p.stdout(), "")
                    reqs = server.snapshot()
                    self.assertTrue(all(r["status"] == 200 for r in reqs))
                    self.assertEqual(check_requests(self, server, 40, 6000), 0)
                    self.assertGreater(len(reqs), 300 * 13 // 40 // 2)
                    want = "application/json" if body == "array" else "application/x-ndjson"
                    self.assertTrue(all(r["ctype"] == want for r in reqs))
                    checked, repeats = check_stream(server.delivered(), w)
                    self.assertEqual(repeats, 0)
                    STATS.checked += checked
                    self.assertGreaterEqual(wait_slot_inactive(C, slot), end)
                    p.close()
                finally:
                    server.close()

    def test_truncate_of_two_tables_two_keys(self):
        slot = "wh_trunc"
        new_slot(slot)
        C.sql("CREATE TABLE wh_ta (id int primary key); CREATE TABLE wh_tb (id int primary key)")
        C.sql("INSERT INTO wh_ta VALUES (1); INSERT INTO wh_tb VALUES (1)")
        C.sql("TRUNCATE wh_ta, wh_tb")
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        server = WebhookServer(secret=SECRET)
        try:
            p = PgStream(C, "--end-lsn", lsn_str(end),
                         *hook_args(server, "--webhook-batch-size", "1"), slot=slot)
            self.assertEqual(p.run(timeout=60), 0, p.stderr())
            check_requests(self, server, 1)
            keys = [r["key"] for r in server.snapshot()]
            self.assertEqual(len(keys), len(set(keys)), keys)
            truncs = [e for e in server.delivered() if e["op"] == "truncate"]
            self.assertEqual(sorted(e["table"] for e in truncs), ["wh_ta", "wh_tb"])
            self.assertTrue(keys[-1].endswith(".1"), keys)
            p.close()
        finally:
            server.close()

    def test_user_headers(self):
        slot = "wh_headers"
        new_slot(slot)
        C.sql("CREATE TABLE wh_hd (id int primary key)")
        C.sql("INSERT INTO wh_hd VALUES (1)")
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        server = WebhookServer(secret=SECRET)
        try:
            p = PgStream(C, "--end-lsn", lsn_str(end),
                         *hook_args(server, "--webhook-header", "Authorization: Bearer t0k;en",
                                    "--webhook-header", "X-Tenant:acme"),
                         env={"WEBHOOK_HEADERS": "X-Ignored: the flag wins"}, slot=slot)
            self.assertEqual(p.run(timeout=60), 0, p.stderr())
            reqs = server.snapshot()
            self.assertTrue(reqs)
            for r in reqs:
                self.assertEqual(r["headers"].get("Authorization"), "Bearer t0k;en")
                self.assertEqual(r["headers"].get("X-Tenant"), "acme")
                self.assertNotIn("X-Ignored", r["headers"])
            p.close()
        finally:
            server.close()

    def test_unsigned_without_secret(self):
        slot = "wh_nosecret"
        new_slot(slot)
        C.sql("CREATE TABLE wh_ns (id int primary key)")
        C.sql("INSERT INTO wh_ns VALUES (1)")
        end = lsn_int(C.value("SELECT pg_current_wal_lsn()::text"))
        server = WebhookServer()
        try:
            p = PgStream(C, "--end-lsn", lsn_str(end), *hook_args(server, secret=None),
                         slot=slot)
            self.assertEqual(p.run(timeout=60), 0, p.stderr())
            reqs = server.snapshot()
            self.assertTrue(reqs)
            self.assertTrue(all(r["sig"] is None for r in reqs))
            p.close()
        finally:
            server.close()


class Faults(unittest.TestCase):
    def test_faults_under_load(self):
        slot = "wh_faults"
        new_slot(slot)
        w = Workload(C, table="wh_faults")
        server = WebhookServer(secret=SECRET)
        p = PgStream(C, *hook_args(server, "--webhook-batch-size", "200",
                                   "--webhook-timeout", "1", "--webhook-retry-max-delay", "1",
                                   "--status-interval", "0.5"), slot=slot)
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.start(8000, pause=0.002)
            time.sleep(1)
            # 500s for 3 s: the slot must not pass the failing batch.
            t0 = time.time()
            server.fail_for(3.0, 500)
            STATS.fault("http500")
            bound = None
            while bound is None and time.time() < t0 + 2.5:
                time.sleep(0.05)
                bound = first_failing_commit(server, t0)
            self.assertIsNotNone(bound, "no request failed during the 500s")
            while time.time() < t0 + 3.0:
                acked = C.slot_confirmed(slot)
                self.assertLessEqual(acked, bound, "slot moved past a batch that had no 2xx")
                time.sleep(0.1)
            time.sleep(1)
            # 429 with Retry-After: 1.
            server.fail(("status", 429, {"Retry-After": "1"}, b"slow down"))
            STATS.fault("http429")
            wait_consumed(server)
            time.sleep(1.5)
            # A reply slower than --webhook-timeout (1 s): applied, then
            # retried with the same key, which the receiver drops.
            server.fail(("slow", 2.0))
            STATS.fault("slow_timeout")
            wait_consumed(server)
            time.sleep(2.5)
            server.fail(("slow", 0.4))
            STATS.fault("slow")
            wait_consumed(server)
            server.fail(("drop",))
            STATS.fault("drop")
            wait_consumed(server)
            server.fail(*[("status", 503, {}, b"unavailable")] * 3)
            STATS.fault("http503", 3)
            wait_consumed(server)
            self.assertTrue(w.thread.is_alive(), "the workload ended before the last fault")
            w.join()
            wait_rows(server, w)
            self.assertEqual(p.stop(), 0, p.stderr())

            reqs = server.snapshot()
            check_requests(self, server, 200)
            checked, repeats = check_stream(server.delivered(), w)
            self.assertEqual(repeats, 0, "a receiver honouring the key saw repeats")
            STATS.checked += checked
            # Retry-After honoured: the attempt after the 429 came >= 1 s later.
            for i, r in enumerate(reqs):
                if r["status"] == 429:
                    nxt = reqs[i + 1]
                    self.assertEqual(nxt["key"], r["key"])
                    self.assertGreaterEqual(nxt["t"] - r["t"], 0.95)
            # The slow reply past the timeout was sent again, same key.
            keys = [r["key"] for r in reqs]
            self.assertGreater(len(keys), len(set(keys)))
            for code in (429, 500, 503):
                self.assertTrue(any(r["status"] == code for r in reqs), code)
            self.assertTrue(any(r["status"] is None for r in reqs), "no dropped connection")
            err = p.stderr()
            self.assertIn("HTTP 500", err)
            self.assertIn("as Retry-After says", err)
            print("\ntest_webhook: %d requests, %d events delivered, %d keys sent again"
                  % (len(reqs), checked, len(keys) - len(set(keys))), flush=True)
        finally:
            w.stop()
            p.close()
            server.close()

    def test_400_stops_then_restart_delivers(self):
        slot = "wh_400"
        new_slot(slot)
        w = Workload(C, table="wh_400")
        w.write(100)
        server = WebhookServer(secret=SECRET)
        p = PgStream(C, *hook_args(server, "--webhook-batch-size", "50",
                                   "--status-interval", "0.5"), slot=slot)
        try:
            server.fail(*[("slow", 0)] * 2,
                        ("status", 400, {}, b'{"error":"bad event schema: column pad"}'))
            STATS.fault("http400")
            p.start()
            rc = p.proc.wait(timeout=60)
            self.assertEqual(rc, 1, p.stderr())
            last = p.stderr().strip().splitlines()[-1]
            self.assertTrue(last.startswith("pgstream: "), last)
            self.assertIn("HTTP 400", last)
            self.assertIn("bad event schema: column pad", last)
            refused = [r for r in server.snapshot() if r["status"] == 400]
            self.assertEqual(len(refused), 1)
            from webhook_server import parse_body
            bound = lsn_int(parse_body(refused[0]["body"], refused[0]["ctype"])[0]["commit_lsn"])
            wait_slot_inactive(C, slot)
            acked = C.slot_confirmed(slot)
            self.assertLessEqual(acked, bound)
            before = len(server.delivered())
            p2 = PgStream(C, *hook_args(server), slot=slot)
            p2.start()
            wait_rows(server, w)
            self.assertEqual(p2.stop(), 0, p2.stderr())
            check_stream(server.delivered(), w, marks=[(before, acked)])
            p2.close()
        finally:
            p.close()
            server.close()

    def test_kill9_while_failing_then_restart(self):
        slot = "wh_kill"
        new_slot(slot)
        w = Workload(C, table="wh_kill")
        server = WebhookServer(secret=SECRET)
        args = hook_args(server, "--webhook-batch-size", "100", "--webhook-retry-max-delay",
                         "0.5", "--status-interval", "0.5")
        marks = []
        try:
            p = PgStream(C, *args, slot=slot)
            p.start()
            p.wait_stderr("listening for changes")
            w.start(3000, pause=0.002)
            for round_ in range(3):
                time.sleep(1.0)
                t0 = time.time()
                server.fail_for(60, 503)
                STATS.fault("http503")
                time.sleep(1.0)
                p.kill()
                STATS.fault("kill9")
                wait_slot_inactive(C, slot)
                acked = C.slot_confirmed(slot)
                bound = first_failing_commit(server, t0)
                if bound is not None:
                    self.assertLessEqual(acked, bound)
                marks.append((len(server.delivered()), acked))
                server.heal()
                p.close()
                p = PgStream(C, *args, slot=slot)
                p.start()
                # (else the last run can be told to stop before it handles
                # SIGTERM, once the receiver already holds every row)
                p.wait_stderr("listening for changes")
            w.join()
            wait_rows(server, w)
            self.assertEqual(p.stop(), 0, p.stderr())
            p.close()
            check_requests(self, server, 100)
            checked, repeats = check_stream(server.delivered(), w, marks=marks)
            STATS.checked += checked
            print("\ntest_webhook: kill -9 x3 while failing: %d events, %d repeated after "
                  "restarts" % (checked, repeats), flush=True)
        finally:
            w.stop()
            server.close()


class BadConfig(unittest.TestCase):
    def refused(self, *args, status=2):
        return subprocess.run([BIN, "--database-url", C.url(), "--env-file", "/dev/null",
                               "--sink", "webhook", *args], capture_output=True, text=True,
                              timeout=60), status

    def check(self, mention, *args, status=2):
        proc, status = self.refused(*args, status=status)
        return assert_refused(self, proc, mention, status=status)

    def test_bad_configuration(self):
        self.check("needs --webhook-url")
        self.check("--webhook-url", "--webhook-url", "ftp://127.0.0.1/x")
        self.check("--webhook-url", "--webhook-url", "http://")
        self.check("--webhook-url", "--webhook-url", "not a url at all")
        self.check("--webhook-body", "--webhook-url", "http://127.0.0.1:1/", "--webhook-body",
                   "xml")
        self.check("not pretty", "--webhook-url", "http://127.0.0.1:1/", "--format", "pretty")
        self.check("--webhook-batch-size", "--webhook-url", "http://127.0.0.1:1/",
                   "--webhook-batch-size", "0")
        self.check("--webhook-batch-size", "--webhook-url", "http://127.0.0.1:1/",
                   "--webhook-batch-size", "-5")
        self.check("expected 'NAME: VALUE'", "--webhook-url", "http://127.0.0.1:1/",
                   "--webhook-header", "no colon here")
        self.check("not a header name", "--webhook-url", "http://127.0.0.1:1/",
                   "--webhook-header", "Bad Name: x")
        self.check("Content-Type is pgstream's to set", "--webhook-url", "http://127.0.0.1:1/",
                   "--webhook-header", "Content-Type: text/plain")
        self.check("Idempotency-Key is pgstream's to set", "--webhook-url",
                   "http://127.0.0.1:1/", "--webhook-header", "Idempotency-Key: mine")

    def test_unreachable(self):
        port = free_port()
        line = self.check("could not reach the webhook at http://127.0.0.1:%d" % port,
                          "--webhook-url", "http://127.0.0.1:%d/hook" % port, status=1)
        self.assertIn("onnect", line)
        line = self.check("could not reach the webhook", "--webhook-url",
                          "http://no-such-host.invalid/hook", status=1)

    def test_certificate_not_trusted(self):
        d = tempfile.mkdtemp(prefix="pgstream-tls-")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True)
        server = WebhookServer(certfile=cert, keyfile=key)
        try:
            line = self.check("could not reach the webhook at https://127.0.0.1", "--webhook-url",
                              server.url, status=1)
            self.assertIn("certificate", line)
            self.assertEqual(server.snapshot(), [])
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main()
