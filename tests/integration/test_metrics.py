"""--metrics-addr: /metrics scraped during a run and checked against what
the run did (events per table and operation, transactions, bytes written,
the acknowledged LSN against pg_replication_slots, the slot's retained WAL);
/healthz 503 while the output is not read, while the sink confirms nothing
and while the server is down, 200 again after; the lag in seconds and
bytes; a snapshot's progress; a malformed or occupied address refused with one line.

The exposition is parsed with prometheus_client's own parser (Debian's
python3-prometheus-client), so the text format is checked by the reference
implementation, not by a parser written to agree with ours."""

import json
import os
import re
import socket
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from harness import PGCLUSTER, Cluster, PgStream, free_port, lsn_int
from webhook_server import WebhookServer

C = None


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


def get(port, path, timeout=5):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError as e:  # not listening (yet, or any more)
        return None, str(e)


def scrape(port):
    """{(name, frozenset(labels.items())): value} of every sample, and the
    families' types, from /metrics."""
    status, text = get(port, "/metrics")
    assert status == 200, (status, text)
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, "sample %r twice" % (key,)
            samples[key] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def wait_until(what, predicate, timeout=60, every=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        ok, last = predicate()
        if ok:
            return last
        time.sleep(every)
    raise AssertionError("timed out waiting for %s; last: %r" % (what, last))


def wait_health(port, status, text, timeout=60):
    return wait_until("/healthz %d %r" % (status, text),
                      lambda: (lambda r: (r[0] == status and text in r[1], r))(
                          get(port, "/healthz")), timeout)


class Metrics(unittest.TestCase):
    def test_scrape_matches_the_run(self):
        C.sql("CREATE TABLE m_a (id int PRIMARY KEY, v text)")
        C.sql('CREATE TABLE "M b" (id int PRIMARY KEY)')  # a label value needing quotes
        C.sql("SELECT pg_create_logical_replication_slot('s_scrape', 'pgoutput')")
        port = free_port()
        p = PgStream(C, "--metrics-addr", "127.0.0.1:%d" % port, "--status-interval", "1",
                     slot="s_scrape")
        try:
            p.start()
            p.wait_stderr("listening for changes")
            self.assertIn("metrics on http://127.0.0.1:%d/metrics" % port, p.stderr())
            conn = C.connect()
            cur = conn.cursor()
            for i in range(7):
                cur.execute("INSERT INTO m_a VALUES (%s, 'x')", (i,))
            cur.execute("UPDATE m_a SET v = 'y' WHERE id < 3")  # one transaction, 3 events
            cur.execute("DELETE FROM m_a WHERE id = 6")
            cur.execute('INSERT INTO "M b" SELECT generate_series(1, 4)')
            cur.execute('TRUNCATE "M b"')
            cur.execute("SELECT pg_logical_emit_message(true, 'app', 'hi')")
            conn.close()
            end = C.current_lsn()
            events = p.wait_events(7 + 3 + 1 + 4 + 1 + 1)
            want = {("m_a", "insert"): 7, ("m_a", "update"): 3, ("m_a", "delete"): 1,
                    ("m_a", "truncate"): 0, ("M b", "insert"): 4, ("M b", "update"): 0,
                    ("M b", "delete"): 0, ("M b", "truncate"): 1}
            seen = {}
            for e in events:
                if e["op"] != "message":
                    seen[(e["table"], e["op"])] = seen.get((e["table"], e["op"]), 0) + 1
            for k, n in want.items():
                self.assertEqual(seen.get(k, 0), n, k)

            def settled():
                s, _ = scrape(port)
                slot = C.slot_confirmed("s_scrape")
                acked = value(s, "pgstream_acknowledged_lsn")
                return (acked is not None and acked >= end and acked == slot and
                        value(s, "pgstream_slot_lag_bytes") is not None, (acked, slot, end))
            wait_until("acknowledged LSN past the workload and equal to the slot's", settled)
            s, types = scrape(port)
            for (table, op), n in want.items():
                self.assertEqual(value(s, "pgstream_events_total", schema="public", table=table,
                                       op=op), n, (table, op))
            self.assertEqual(types["pgstream_events"], "counter")
            self.assertEqual(value(s, "pgstream_messages_total"), 1)
            # 7 inserts, update, delete, insert, truncate, message: 12 transactions
            self.assertEqual(value(s, "pgstream_transactions_total"), 12)
            # Every byte handed to the stdout sink is in the file, and only those.
            self.assertEqual(value(s, "pgstream_output_bytes_total"),
                             os.path.getsize(p.out_path))
            # (equal to the slot's once settled; a later status update may
            # have moved both since)
            acked = value(s, "pgstream_acknowledged_lsn")
            self.assertGreaterEqual(acked, end)
            self.assertLessEqual(acked, C.slot_confirmed("s_scrape"))
            self.assertGreaterEqual(value(s, "pgstream_flushed_lsn"), acked)
            self.assertGreaterEqual(value(s, "pgstream_written_lsn"),
                                    value(s, "pgstream_flushed_lsn"))
            self.assertGreaterEqual(value(s, "pgstream_received_lsn"), end)
            self.assertGreaterEqual(value(s, "pgstream_server_wal_lsn"), end)
            retained = C.value("SELECT pg_current_wal_lsn() - restart_lsn FROM "
                               "pg_replication_slots WHERE slot_name = 's_scrape'")
            # The metric is at most 10 s old; the WAL between is small here.
            self.assertGreater(value(s, "pgstream_slot_wal_retained_bytes"), 0)
            self.assertLess(abs(value(s, "pgstream_slot_wal_retained_bytes") - int(retained)),
                            1 << 20)
            self.assertEqual(value(s, "pgstream_slot_active"), 1)
            self.assertEqual(value(s, "pgstream_state", state="streaming"), 1)
            self.assertEqual(value(s, "pgstream_state", state="reconnecting"), 0)
            self.assertEqual(value(s, "pgstream_healthy"), 1)
            self.assertEqual(types["pgstream_sink_flush_duration_seconds"], "histogram")
            count = value(s, "pgstream_sink_flush_duration_seconds_count")
            self.assertGreater(count, 0)
            self.assertEqual(value(s, "pgstream_sink_flush_duration_seconds_bucket", le="+Inf"),
                             count)
            self.assertEqual(value(s, "pgstream_reconnects_total"), 0)
            self.assertEqual(value(s, "pgstream_errors_total", kind="transient"), 0)
            self.assertGreater(value(s, "process_resident_memory_bytes"), 1 << 20)
            self.assertGreater(value(s, "process_cpu_seconds_total"), 0)
            self.assertGreaterEqual(value(s, "pgstream_replication_lag_seconds"), 0)
            status, body = get(port, "/healthz")
            self.assertEqual(status, 200, body)
            self.assertRegex(body, r"^ok: streaming for \d+ s, acknowledged up to [0-9A-F]+/"
                             r"[0-9A-F]+\n$")
            self.assertGreaterEqual(lsn_int(body.split()[-1]), int(acked), body)
            self.assertEqual(get(port, "/nothing")[0], 404)
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()

    def test_healthz_while_the_output_is_not_read(self):
        C.sql("CREATE TABLE m_big (id int PRIMARY KEY, pad text)")
        C.sql("SELECT pg_create_logical_replication_slot('s_block', 'pgoutput')")
        port = free_port()
        p = PgStream(C, "--metrics-addr", "127.0.0.1:%d" % port, "--status-interval", "1",
                     slot="s_block")
        with open(p.err_path, "wb") as err:
            proc = subprocess.Popen(p.argv, stdout=subprocess.PIPE, stderr=err)
        p.proc = proc
        try:
            p.wait_stderr("listening for changes")
            wait_health(port, 200, "ok: streaming")
            # Far more than a pipe holds, and nobody reads it.
            C.sql("INSERT INTO m_big SELECT g, repeat('x', 1000) FROM generate_series(1, 3000) g")
            status, body = wait_health(port, 503, "sink_blocked for")
            self.assertIn("output is not being read", body)
            s, _ = scrape(port)
            self.assertEqual(value(s, "pgstream_state", state="sink_blocked"), 1)
            self.assertEqual(value(s, "pgstream_healthy"), 0)
            got = []
            reader = threading.Thread(target=lambda: got.append(proc.stdout.read()))
            reader.start()
            wait_health(port, 200, "ok: streaming")
            wait_until("3000 events counted",
                       lambda: (lambda v: (v == 3000, v))(value(scrape(port)[0],
                                                                "pgstream_events_total",
                                                                schema="public", table="m_big",
                                                                op="insert")))
            proc.terminate()
            self.assertEqual(proc.wait(timeout=30), 0, p.stderr())
            reader.join()
            proc.stdout.close()
            self.assertEqual(got[0].count(b'"table":"m_big"'), 3000)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            p.close()

    def test_lag_against_the_run(self):
        """Lag in seconds and bytes: a small transaction committed 3 s before
        pgstream starts, then a big one that the unread output pipe stops
        half way. The small one's commit-to-emit time is the lag in seconds
        (at least the 3 s, not yet reset by a keepalive: pgstream is inside
        the big one), and the big one's WAL is not acknowledged, so it is
        all in the lag in bytes."""
        C.sql("CREATE TABLE m_lag (id int PRIMARY KEY, pad text)")
        C.sql("SELECT pg_create_logical_replication_slot('s_lag', 'pgoutput')")
        C.sql("INSERT INTO m_lag VALUES (0, 'first')")
        committed = time.time()
        before_big = C.current_lsn()
        C.sql("INSERT INTO m_lag SELECT g, repeat('x', 1000) FROM generate_series(1, 3000) g")
        big = C.current_lsn() - before_big
        time.sleep(3)
        port = free_port()
        p = PgStream(C, "--metrics-addr", "127.0.0.1:%d" % port, "--status-interval", "1",
                     slot="s_lag")
        with open(p.err_path, "wb") as err:
            proc = subprocess.Popen(p.argv, stdout=subprocess.PIPE, stderr=err)
        p.proc = proc
        try:
            wait_health(port, 503, "sink_blocked for")
            s, _ = scrape(port)
            lag = value(s, "pgstream_replication_lag_seconds")
            self.assertGreaterEqual(lag, 3)
            self.assertLess(lag, time.time() - committed + 1)
            self.assertGreaterEqual(value(s, "pgstream_replication_lag_bytes"), big)
            self.assertLessEqual(value(s, "pgstream_acknowledged_lsn"), before_big)
            self.assertEqual(value(s, "pgstream_transactions_total"), 1)
            status, body = get(port, "/status.json")
            self.assertEqual(status, 200)
            self.assertGreaterEqual(json.loads(body)["lag_seconds"], 3)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            p.close()

    def test_healthz_while_acknowledgement_is_stuck(self):
        """Streaming, the output not blocked, but the sink confirms nothing
        (a webhook answering 500 for 15 s): 503 once three status intervals
        pass without the acknowledgement moving, 200 when it moves again."""
        C.sql("CREATE TABLE m_stuck (id int PRIMARY KEY)")
        C.sql("SELECT pg_create_logical_replication_slot('s_stuck', 'pgoutput')")
        server = WebhookServer()
        port = free_port()
        p = PgStream(C, "--sink", "webhook", "--webhook-url", server.url,
                     "--webhook-retry-max-delay", "1", "--metrics-addr",
                     "127.0.0.1:%d" % port, "--status-interval", "1", slot="s_stuck")
        try:
            p.start()
            wait_health(port, 200, "ok: streaming")
            server.fail_for(15, 500)  # the 503 comes 3-4 s in: room for a loaded machine
            C.sql("INSERT INTO m_stuck VALUES (1)")
            status, body = wait_health(port, 503, "acknowledgement stuck at", timeout=14)
            self.assertRegex(body, r"^acknowledgement stuck at [0-9A-F]+/[0-9A-F]+ for \d+ s "
                             r"\(written up to [0-9A-F]+/[0-9A-F]+\): the sink has not "
                             r"confirmed\n$")
            self.assertEqual(value(scrape(port)[0], "pgstream_state", state="streaming"), 1)
            wait_health(port, 200, "ok: streaming", timeout=30)
            self.assertEqual([e["new"]["id"] for e in server.delivered()], [1])
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()
            server.close()

    def test_healthz_while_the_server_is_down(self):
        C.sql("CREATE TABLE m_down (id int PRIMARY KEY)")
        C.sql("SELECT pg_create_logical_replication_slot('s_down', 'pgoutput')")
        port = free_port()
        p = PgStream(C, "--metrics-addr", "127.0.0.1:%d" % port, "--status-interval", "1",
                     "--reconnect-max-delay", "1", slot="s_down")
        try:
            p.start()
            wait_health(port, 200, "ok: streaming")
            C.stop()
            try:
                status, body = wait_health(port, 503, "could not")
                self.assertRegex(body, r"^(reconnecting|connecting) for \d+ s: ")
            finally:
                subprocess.run([PGCLUSTER, "start", C.dir, str(C.port)], check=True,
                               env=C.env)
            wait_health(port, 200, "ok: streaming")
            C.sql("INSERT INTO m_down VALUES (1)")
            p.wait_events(1)
            s, _ = scrape(port)
            self.assertGreaterEqual(value(s, "pgstream_reconnects_total"), 1)
            self.assertGreaterEqual(value(s, "pgstream_errors_total", kind="transient"), 1)
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()

    def test_snapshot_progress(self):
        """--snapshot initial: the tables it reads, how many are done, each
        one's estimate (the planner's, from ANALYZE) and its read events;
        once done the estimate is the rows read."""
        C.sql("CREATE TABLE m_snap (id int PRIMARY KEY)")
        C.sql("CREATE TABLE m_snap_new (id int PRIMARY KEY)")  # never analyzed: no estimate
        C.sql("INSERT INTO m_snap SELECT generate_series(1, 1234)")
        C.sql("INSERT INTO m_snap_new SELECT generate_series(1, 56)")
        C.sql("ANALYZE m_snap")
        C.sql("CREATE PUBLICATION pub_snap FOR TABLE m_snap, m_snap_new")
        port = free_port()
        p = PgStream(C, "--snapshot", "initial", "--metrics-addr", "127.0.0.1:%d" % port,
                     "--status-interval", "1", slot="s_snap", pub="pub_snap")
        try:
            p.start()
            p.wait_stderr("listening for changes")
            wait_until("the snapshot's tables done",
                       lambda: (lambda v: (v == 2, v))(value(scrape(port)[0],
                                                             "pgstream_snapshot_tables_done")))
            s, types = scrape(port)
            self.assertEqual(value(s, "pgstream_snapshot_tables"), 2)
            self.assertEqual(value(s, "pgstream_snapshot_tables_done"), 2)
            self.assertEqual(types["pgstream_snapshot_rows_estimated"], "gauge")
            for table, n in (("m_snap", 1234), ("m_snap_new", 56)):
                self.assertEqual(value(s, "pgstream_events_total", schema="public", table=table,
                                       op="read"), n, table)
                self.assertEqual(value(s, "pgstream_snapshot_rows_estimated", schema="public",
                                       table=table), n, table)
                self.assertEqual(value(s, "pgstream_snapshot_table_done", schema="public",
                                       table=table), 1, table)
            self.assertEqual(len(p.events()), 1234 + 56)
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()
        # Without a snapshot the family is absent, not zero.
        port = free_port()
        p = PgStream(C, "--metrics-addr", "127.0.0.1:%d" % port, slot="s_snap", pub="pub_snap")
        try:
            p.start()
            p.wait_stderr("listening for changes")
            s, types = scrape(port)
            self.assertNotIn("pgstream_snapshot_tables", types)
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()

    def test_bad_address_is_one_line(self):
        for addr in ("nope", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:x", "[::1", "::1:80",
                     ":9187", "no.such.host.invalid:9187"):
            p = PgStream(C, "--metrics-addr", addr, slot="s_never")
            try:
                self.assertEqual(p.run(), 2, (addr, p.stderr()))
                lines = p.stderr().splitlines()
                self.assertEqual(len(lines), 1, lines)
                self.assertTrue(lines[0].startswith("pgstream: invalid value for "
                                                    "--metrics-addr: "), lines)
            finally:
                p.close()

    def test_occupied_address_is_one_line(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            p = PgStream(C, "--metrics-addr", "127.0.0.1:%d" % port, slot="s_never")
            try:
                self.assertEqual(p.run(), 1, p.stderr())
                self.assertEqual(p.stderr(),
                                 "pgstream: could not listen on --metrics-addr 127.0.0.1:%d: "
                                 "Address already in use\n" % port)
            finally:
                p.close()
        self.assertEqual(C.value("SELECT count(*) FROM pg_replication_slots "
                                 "WHERE slot_name = 's_never'"), 0)


if __name__ == "__main__":
    unittest.main()
