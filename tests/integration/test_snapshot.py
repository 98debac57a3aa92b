"""The initial snapshot (--snapshot): the rows already in the tables, read as
of the slot's exported snapshot, then the stream from its consistent point,
with neither a gap nor an overlap.

The oracle of every test: replay the events (read, insert, update, delete,
truncate) into a map per table keyed by primary key, and compare it with the
table at the end. The table's side is rendered by pgstream's own stream: its
rows are copied into a mirror table (same definition, same publication) and
the mirror's INSERT events are the expected objects, so values and their
JSON types are compared exactly as the stream writes them (test_values.py
holds the stream to the JSON contract). A snapshot taken again after an
interruption has a new consistent point, the lsn of its read events: the
replay starts the tables afresh at each new one, as a consumer that keeps
state must (rows it does not read again were deleted meanwhile).
"""

import json
import os
import pty
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import psycopg2

import harness
from harness import Cluster, PgStream, lsn_int, lsn_str, wait_slot_inactive

C = None
BIG_ROWS = 1000000  # the version matrix takes fewer
CUT_ROWS = 300000  # the table the kill test cuts snapshots of; the matrix: fewer


def setUpModule():
    global C
    C = Cluster("wal_sender_timeout = 10s")


def tearDownModule():
    C.close()


def slots():
    return {r[0]: r[1] for r in C.sql("SELECT slot_name, temporary FROM pg_replication_slots")}


def wait_no_slot(name, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if name not in slots():
            return
        time.sleep(0.05)
    raise AssertionError("slot %s still exists: %s" % (name, slots()))


def replay(runs, key_of):
    """The tables' rows as the events of runs (each a list of events, in
    order) leave them: {table: {key: new}}. key_of(table, row) -> key."""
    state, snapshot_at = {}, None
    for events in runs:
        for ev in events:
            op, table = ev["op"], ev.get("table")
            if op == "read":
                # An initial snapshot's rows belong to no transaction: a new
                # one is a full copy again. An on-demand snapshot's belong to
                # their high watermark's and are as new as the stream there.
                if ev["commit_lsn"] is None and ev["lsn"] != snapshot_at:
                    snapshot_at = ev["lsn"]
                    state = {}
                state.setdefault(table, {})[key_of(table, ev["new"])] = ev["new"]
            elif op in ("insert", "update"):
                rows = state.setdefault(table, {})
                if ev.get("old"):
                    rows.pop(key_of(table, ev["old"]), None)
                rows[key_of(table, ev["new"])] = ev["new"]
            elif op == "delete":
                state.setdefault(table, {}).pop(key_of(table, ev["old"]), None)
            elif op == "truncate":
                state[table] = {}
    return state


def stream_until_now(slot, pub, *args):
    """Everything of slot up to the current WAL position."""
    p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), *args, slot=slot, pub=pub)
    try:
        assert p.run(timeout=300) == 0, p.stderr()
        return p.events()
    finally:
        p.close()


def expected_rows(tables, pub, key_of):
    """{table: {key: new}} as the stream renders each table's rows now: copy
    them into mirrors in pub and read the mirrors' INSERT events."""
    slot = "oracle_" + pub
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    try:
        for t in tables:
            C.sql('INSERT INTO "%s_mirror" SELECT * FROM "%s"' % (t, t))
        events = stream_until_now(slot, pub)
    finally:
        C.sql("SELECT pg_drop_replication_slot(%s)", (slot,))
        for t in tables:
            C.sql('TRUNCATE "%s_mirror"' % t)
    out = {t: {} for t in tables}
    for ev in events:
        if ev["op"] == "insert" and ev["table"].endswith("_mirror"):
            t = ev["table"][: -len("_mirror")]
            out[t][key_of(t, ev["new"])] = ev["new"]
    return out


def by_id(table, row):
    return row["id"]


class Writer:
    """Inserts, updates and deletes of the same keys, in a thread, until
    stopped; some transactions roll back."""

    def __init__(self, table, keys):
        self.table, self.keys = table, keys
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.txns = 0
        self.error = None

    def run(self):
        try:
            conn = psycopg2.connect(C.url())
            rnd = random.Random(7)
            while not self.stop_flag.is_set():
                with conn, conn.cursor() as cur:
                    for _ in range(rnd.randint(1, 5)):
                        k = rnd.randint(1, self.keys)
                        r = rnd.random()
                        if r < 0.4:
                            cur.execute('UPDATE "%s" SET v = v || %%s, n = n + 1 WHERE id = %%s'
                                        % self.table, ("u", k))
                        elif r < 0.7:
                            cur.execute('DELETE FROM "%s" WHERE id = %%s' % self.table, (k,))
                        else:
                            cur.execute('INSERT INTO "%s" (id, v, n) VALUES (%%s, %%s, %%s) '
                                        'ON CONFLICT (id) DO UPDATE SET v = excluded.v'
                                        % self.table, (k, "w%d" % k, k))
                    if rnd.random() < 0.1:
                        conn.rollback()
                        continue
                self.txns += 1
                time.sleep(0.001)
            conn.close()
        except Exception as exc:  # reported by stop()
            self.error = exc

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        if self.error:
            raise self.error
        return self.txns


WIDE_COLUMNS = """
    id int PRIMARY KEY, v text, n numeric, f float8, r real, b bool, by bytea,
    j jsonb, js json, ts timestamptz, tsn timestamp, d date, tm time, iv interval,
    u uuid, arr int[], tarr text[], big text, inet inet, m money, pt point,
    bits bit varying, xml xml, e s_mood, dom s_posint
"""


def create_table(name, columns, pub=None):
    C.sql('CREATE TABLE "%s" (%s)' % (name, columns))
    C.sql('CREATE TABLE "%s_mirror" (LIKE "%s" INCLUDING ALL)' % (name, name))


class InitialSnapshot(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        C.sql("CREATE TYPE s_mood AS ENUM ('sad', 'ok', 'happy')")
        C.sql("CREATE DOMAIN s_posint AS int CHECK (VALUE > 0)")
        create_table("s_empty", "id int PRIMARY KEY, v text")
        create_table("s_one", "id int PRIMARY KEY, v text, n int")
        C.sql("INSERT INTO s_one VALUES (1, 'only', 1)")
        create_table("s_wide", WIDE_COLUMNS)
        C.sql(r"""INSERT INTO s_wide SELECT g,
              E'tab\there\nnewline\\backslash \\N "quote" \u00e9\u4e2d\U0001F600 ' || g,
              g * 1.25, g / 3.0, 1.5, g % 2 = 0, E'\\x00ff10'::bytea || g::text::bytea,
              '{"a": [1, 2, {"b": null}]}', '{"x" : 1}',
              '2024-02-29 12:34:56.789+05', '2024-02-29 12:34:56', '2024-02-29', '23:59:59',
              '1 year 2 mons 3 days 04:05:06', gen_random_uuid(),
              ARRAY[g, NULL, -g], ARRAY['a,b', 'c"d', NULL, E'e\\f'],
              CASE WHEN g = 3 THEN repeat(md5(g::text), 40000) END,
              '10.0.0.1/8', 12.34, point(g, -g), B'10110', '<a>x</a>', 'happy', g
              FROM generate_series(1, 50) g""")
        C.sql("INSERT INTO s_wide (id) VALUES (1000)")  # every other column NULL
        create_table("s_big", "id int PRIMARY KEY, v text, n int")
        C.sql("INSERT INTO s_big SELECT g, 'row ' || g, g FROM generate_series(1, %d) g" % BIG_ROWS)
        C.sql("CREATE PUBLICATION pub_all FOR ALL TABLES")
        # Without s_big, for the tests of what one row looks like (the mirror
        # for expected_rows).
        C.sql("CREATE PUBLICATION pub_small FOR TABLE s_empty, s_one, s_wide, s_wide_mirror")

    def test_snapshot_then_stream_under_writes(self):
        writer = Writer("s_big", 5000).start()
        wide_writer = Writer("s_one", 20).start()
        time.sleep(0.3)  # writes before the snapshot, during it and after
        p = PgStream(C, "--snapshot", "initial", "--snapshot-workers", "3",
                     "--snapshot-chunk-pages", "128", "--status-interval", "0.5",
                     slot="sn_initial", pub="pub_all").start()
        try:
            p.wait_stderr("listening for changes...", timeout=240)
            time.sleep(0.5)
            txns = writer.stop() + wide_writer.stop()
            C.sql("UPDATE s_wide SET v = 'changed after' WHERE id = 2")
            C.sql("DELETE FROM s_wide WHERE id = 5")
            C.sql("INSERT INTO s_empty VALUES (1, 'first')")
            p.wait_for(lambda: any(e.get("table") == "s_empty" and e["op"] == "insert"
                                   for e in p.events()[-5:]),
                       timeout=120, what="the last write")
            self.assertEqual(p.stop(), 0, p.stderr())
            events, err = p.events(), p.stderr()
        finally:
            p.close()
        tables = ["s_empty", "s_one", "s_wide", "s_big"]
        rest = stream_until_now("sn_initial", "pub_all")  # what was not acknowledged
        got = replay([events, rest], by_id)
        want = expected_rows(tables, "pub_all", by_id)
        for t in tables:
            self.assertEqual(got.get(t, {}), want[t], "table %s differs" % t)
        reads = [e for e in events if e["op"] == "read"]
        stream = [e for e in events if e["op"] != "read"]
        self.assertGreater(txns, 0)
        self.assertGreaterEqual(len(reads), BIG_ROWS - 5000)
        # The reads come first, all at the consistent point; every change
        # after them is from a transaction committed after it.
        self.assertEqual(events[: len(reads)], reads)
        at = lsn_int(reads[0]["lsn"])
        self.assertTrue(all(lsn_int(e["lsn"]) == at for e in reads))
        self.assertTrue(all(lsn_int(e["commit_lsn"]) > at for e in stream if e.get("commit_lsn")))
        self.assertIn("snapshot read %d rows of" % len(reads), err)
        print("oracle: %d rows in %d tables checked; %d reads, %d changes, %d writer txns"
              % (sum(len(v) for v in want.values()), len(tables), len(reads), len(stream), txns))

    def test_value_rules_same_as_insert(self):
        """A row read by the snapshot and the same row seen in an INSERT give
        the same object."""
        p = PgStream(C, "--snapshot", "initial_only", slot="sn_values", pub="pub_small")
        try:
            self.assertEqual(p.run(timeout=240), 0, p.stderr())
            reads = {e["new"]["id"]: e["new"] for e in p.events() if e["table"] == "s_wide"}
        finally:
            p.close()
        want = expected_rows(["s_wide"], "pub_small", by_id)["s_wide"]
        self.assertEqual(reads, want)
        self.assertEqual(len(reads), C.value("SELECT count(*) FROM s_wide"))
        self.assertEqual(len(reads[3]["big"]), 32 * 40000)  # a TOASTed value, whole

    def test_initial_only_leaves_no_slot(self):
        p = PgStream(C, "--snapshot", "initial_only", "--snapshot-workers", "4",
                     slot="sn_only", pub="pub_all")
        try:
            self.assertEqual(p.run(timeout=240), 0, p.stderr())
            events = p.events()
            self.assertTrue(all(e["op"] == "read" for e in events))
            counts = {}
            for e in events:
                counts[e["table"]] = counts.get(e["table"], 0) + 1
            for t in ("s_one", "s_wide", "s_big"):
                self.assertEqual(counts.get(t, 0), C.value('SELECT count(*) FROM "%s"' % t), t)
            self.assertNotIn("s_empty", counts)
            self.assertIn("snapshot read", p.stderr())
        finally:
            p.close()
        wait_no_slot("sn_only_snapshot")
        self.assertNotIn("sn_only", slots())

    def test_existing_slot_is_not_snapshotted(self):
        C.sql("SELECT pg_create_logical_replication_slot('sn_exists', 'pgoutput')")
        try:
            C.sql("INSERT INTO s_empty VALUES (77, 'after the slot')")
            events = stream_until_now("sn_exists", "pub_all", "--snapshot", "initial")
            self.assertEqual([e["op"] for e in events if e.get("table") == "s_empty"], ["insert"])
            self.assertFalse(any(e["op"] == "read" for e in events))
        finally:
            C.sql("DELETE FROM s_empty WHERE id = 77")
            C.sql("SELECT pg_drop_replication_slot('sn_exists')")

    def test_debezium_read_events(self):
        p = PgStream(C, "--snapshot", "initial_only", slot="sn_dbz", pub="pub_small",
                     fmt="debezium")
        try:
            self.assertEqual(p.run(timeout=240), 0, p.stderr())
            one = [e for e in p.events() if e["source"]["table"] == "s_one"]
        finally:
            p.close()
        self.assertTrue(one)
        for e in one:
            self.assertEqual(e["op"], "r")
            self.assertIsNone(e["before"])
            self.assertEqual(e["source"]["snapshot"], "true")


class Interrupted(unittest.TestCase):
    """A snapshot cut short is never taken for a finished one."""

    @classmethod
    def setUpClass(cls):
        create_table("cut", "id int PRIMARY KEY, v text, n int")
        C.sql("INSERT INTO cut SELECT g, 'row ' || g, g FROM generate_series(1, %d) g" % CUT_ROWS)
        C.sql("CREATE PUBLICATION pub_cut FOR TABLE cut, cut_mirror")

    def check_after_cut(self, p, slot):
        """After a run cut before the slot existed: the slot exists only if
        the snapshot completed (every row confirmed by the sink; the kill
        may still have come before the slot was made). Returns whether it
        exists."""
        wait_no_slot(slot + "_snapshot")
        exists = slot in slots()
        if exists:
            self.assertIn("snapshot read", p.stderr())
        else:
            self.assertNotIn("listening for changes", p.stderr())
        return exists

    def test_kill_9_at_random_moments(self):
        """kill -9 during snapshots (a slot that completed is dropped so the
        next run snapshots again) and during the stream that follows."""
        slot, runs, kills, cut_mid, stream_kills = "sn_cut", [], 0, 0, 0
        writer = Writer("cut", 3000).start()
        rnd = random.Random(11)
        try:
            while cut_mid < 4 or stream_kills < 2:
                self.assertLess(kills, 40, "too few kills landed where wanted")
                if slot in slots() and cut_mid < 4:
                    wait_slot_inactive(C, slot)
                    C.sql("SELECT pg_drop_replication_slot(%s)", (slot,))
                snapshotting = slot not in slots()
                p = PgStream(C, "--snapshot", "initial", "--snapshot-chunk-pages", "64",
                             "--status-interval", "0.2", slot=slot, pub="pub_cut").start()
                if snapshotting and cut_mid >= 4:
                    # Enough cuts inside snapshots (a slow build may never
                    # finish one within the random delays): let this one
                    # finish, and kill the stream after it.
                    p.wait_stderr("listening for changes...", timeout=600)
                    snapshotting = False
                time.sleep(rnd.uniform(0.02, 0.3))
                p.kill()
                kills += 1
                runs.append(p.events())
                if snapshotting:
                    cut_mid += not self.check_after_cut(p, slot)
                else:
                    stream_kills += 1
                p.close()
                if slot in slots():
                    wait_slot_inactive(C, slot)
        finally:
            txns = writer.stop()
        runs.append(stream_until_now(slot, "pub_cut", "--snapshot", "initial"))
        got = replay(runs, by_id)
        want = expected_rows(["cut"], "pub_cut", by_id)
        self.assertEqual(got.get("cut", {}), want["cut"])
        print("oracle: %d rows checked after %d kills -9 (%d during a snapshot, %d during "
              "the stream; %d writer txns, %d events)"
              % (len(want["cut"]), kills, cut_mid, stream_kills, txns,
                 sum(len(r) for r in runs)))
        C.sql("SELECT pg_drop_replication_slot(%s)", (slot,))

    def test_sigterm_during_snapshot(self):
        slot = "sn_term"
        # A reader that does not read makes the snapshot wait for it.
        p = subprocess.Popen(PgStream(C, "--snapshot", "initial", slot=slot,
                                      pub="pub_cut").argv,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            p.stdout.read(1 << 16)
            time.sleep(0.5)
            p.send_signal(signal.SIGTERM)
            p.stdout.read()  # what it buffered, until it exits
            err = p.stderr.read().decode()
            self.assertEqual(p.wait(timeout=60), 0, err)
        finally:
            if p.poll() is None:
                p.kill()
            p.stdout.close()
            p.stderr.close()
        self.assertIn("snapshot interrupted", err)
        self.assertNotIn("listening for changes", err)
        wait_no_slot(slot + "_snapshot")
        self.assertNotIn(slot, slots())

    def slow_run(self, slot, stderr, seconds):
        """A snapshot whose reader takes 64 kB every 0.25 s for seconds, then
        SIGTERM; returns once pgstream exited 0. The seconds count from
        the first rows read, not from the start, which under load may take
        one of them."""
        p = subprocess.Popen(PgStream(C, "--snapshot", "initial", "--snapshot-workers", "1",
                                      slot=slot, pub="pub_cut").argv,
                             stdout=subprocess.PIPE, stderr=stderr)
        try:
            p.stdout.read(1 << 16)
            deadline = time.time() + seconds
            while time.time() < deadline:
                p.stdout.read(1 << 16)
                time.sleep(0.25)
            p.send_signal(signal.SIGTERM)
            p.stdout.read()
            self.assertEqual(p.wait(timeout=60), 0)
        finally:
            if p.poll() is None:
                p.kill()
            p.stdout.close()

    def test_progress_lines(self):
        """Not on a terminal: a line every 5 s, per table rows done and
        estimated, rate and time left."""
        C.sql("ANALYZE cut")
        with tempfile.TemporaryFile() as err:
            self.slow_run("sn_progress", err, 6)
            err.seek(0)
            text = err.read().decode()
        self.assertRegex(text, r"snapshot: 0 of 2 tables done, \d+ of ~\d+ rows \(\d+%\), "
                               r"\d+ rows/s, about \d+ s left")
        self.assertRegex(text, r"snapshot of public.cut: \d+ of ~\d+ rows, 0 of 1 chunks")
        self.assertNotIn("\r", text)
        wait_no_slot("sn_progress_snapshot")

    def test_health_and_metrics_during_snapshot(self):
        """--metrics-addr: while a snapshot goes on /livez answers 200 (a
        liveness probe must not restart it) and /healthz 503 (not streaming
        yet), and the rows read so far show as op="read" per table, the
        table as not done yet."""
        import socket
        import urllib.request
        import urllib.error
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            port = sk.getsockname()[1]
        p = subprocess.Popen(PgStream(C, "--snapshot", "initial", "--snapshot-workers", "1",
                                      "--metrics-addr", "127.0.0.1:%d" % port,
                                      slot="sn_health", pub="pub_cut").argv,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            health, live, reads, done = [], [], [], []
            deadline = time.time() + 3
            while time.time() < deadline:
                p.stdout.read(1 << 16)
                time.sleep(0.2)
                for path, seen in (("/healthz", health), ("/livez", live)):
                    try:
                        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                                    timeout=2) as r:
                            seen.append((r.status, r.read().decode()))
                    except urllib.error.HTTPError as exc:  # 503
                        seen.append((exc.code, exc.read().decode()))
                    except OSError as exc:
                        seen.append((None, str(exc)))
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                                timeout=2) as r:
                        text = r.read().decode()
                        m = re.search(r'pgstream_events_total\{schema="public",table="cut",'
                                      r'op="read"\} (\d+)', text)
                        reads.append(int(m.group(1)) if m else -1)
                        m = re.search(r'pgstream_snapshot_table_done\{schema="public",'
                                      r'table="cut"\} (\d)', text)
                        done.append(int(m.group(1)) if m else -1)
                except OSError:
                    pass
            p.send_signal(signal.SIGTERM)
            p.stdout.read()
            self.assertEqual(p.wait(timeout=60), 0)
        finally:
            if p.poll() is None:
                p.kill()
            p.stdout.close()
        alive = [h for h in live if h[0] == 200 and h[1].startswith("ok: snapshot for")]
        self.assertGreater(len(alive), len(live) // 2, live)
        waiting = [h for h in health if h[0] == 503 and "snapshot in progress" in h[1]]
        self.assertGreater(len(waiting), len(health) // 2, health)
        self.assertNotIn(200, [h[0] for h in health], health)
        self.assertGreater(max(reads), 0, reads)
        self.assertEqual(reads, sorted(reads))
        # The table is not read to the end in these 3 s: its series says so.
        self.assertIn(0, done, done)
        self.assertNotIn(1, done, done)
        wait_no_slot("sn_health_snapshot")

    def test_progress_bar_on_a_terminal(self):
        master, slave = pty.openpty()
        try:
            self.slow_run("sn_bar", slave, 1.5)
            os.close(slave)
            slave = None
            out = b""
            while True:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        text = out.decode("utf-8", "replace")
        bars = re.findall(r"\r\x1b\[Ksnapshot \[[#.]{24}\] 0/2 tables, (\d+) (?:of ~|rows)", text)
        self.assertGreaterEqual(len(bars), 2, text)
        self.assertLess(int(bars[0]), int(bars[-1]))  # it moves

    def test_sink_failure_during_snapshot(self):
        slot = "sn_epipe"
        p = subprocess.Popen(PgStream(C, "--snapshot", "initial", slot=slot,
                                      pub="pub_cut").argv,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.read(1 << 16)
        p.stdout.close()  # the reader goes away mid-snapshot
        err = p.stderr.read().decode()
        p.stderr.close()
        self.assertNotEqual(p.wait(timeout=60), 0, err)
        self.assertEqual(len([l for l in err.splitlines() if l.startswith("pgstream:")]), 1, err)
        wait_no_slot(slot + "_snapshot")
        self.assertNotIn(slot, slots())

    def test_lost_connection_during_snapshot(self):
        slot = "sn_lost"
        p = PgStream(C, "--snapshot", "initial", "--snapshot-workers", "2", slot=slot,
                     pub="pub_cut")
        p.proc = subprocess.Popen(p.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            p.proc.stdout.read(1 << 16)  # the snapshot is under way, and waits for us
            C.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                  "backend_type = 'client backend' AND query LIKE 'COPY %%'")
            out = p.proc.stdout.read()
            err = p.proc.stderr.read().decode()
            self.assertEqual(p.proc.wait(timeout=60), 1, err)
        finally:
            p.proc.stdout.close()
            p.proc.stderr.close()
            p.close()
        self.assertIn("pgstream: could not read the snapshot", err)
        self.assertGreater(len(out), 0)
        wait_no_slot(slot + "_snapshot")
        self.assertNotIn(slot, slots())


def request(*args):
    """pgstream snapshot ...: the request, written; returns its stdout."""
    p = subprocess.run([harness.BIN, "snapshot", "--database-url", C.url(), "--env-file",
                        "/dev/null", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


class OnDemand(unittest.TestCase):
    """Snapshots of chosen tables while streaming (DBLog's watermarks)."""

    @classmethod
    def setUpClass(cls):
        create_table("od", "id int PRIMARY KEY, v text, n int")
        C.sql("INSERT INTO od SELECT g, 'row ' || g, g FROM generate_series(1, 20000) g")
        C.sql("CREATE TABLE od_nokey (v text)")
        C.sql("CREATE PUBLICATION pub_od FOR TABLE od, od_mirror, od_nokey")

    def stream(self, slot, *args):
        return PgStream(C, "--status-interval", "0.2", "--snapshot-chunk-rows", "250", *args,
                        slot=slot, pub="pub_od").start()

    def test_under_writes_to_the_same_keys(self):
        p = self.stream("sn_od")
        writer = None
        try:
            p.wait_stderr("listening for changes...")
            writer = Writer("od", 20000).start()
            time.sleep(0.3)
            out = request("--table", "public.od", "--slot", "sn_od")
            self.assertIn("snapshot requested at", out)
            p.wait_stderr("on-demand snapshot of public.od done", timeout=180)
            time.sleep(0.3)
            txns = writer.stop()
            writer = None
            C.sql("INSERT INTO od VALUES (99999, 'last', 0)")
            p.wait_for(lambda: any(e.get("new", {}).get("id") == 99999 for e in p.events()[-3:]),
                       timeout=60, what="the last insert")
            self.assertEqual(p.stop(), 0, p.stderr())
            events, err = p.events(), p.stderr()
        finally:
            if writer:
                writer.stop()
            p.close()
        rest = stream_until_now("sn_od", "pub_od")
        got = replay([events, rest], by_id)
        want = expected_rows(["od"], "pub_od", by_id)
        self.assertEqual(got.get("od", {}), want["od"])
        reads = [e for e in events if e["op"] == "read"]
        self.assertTrue(all(e["commit_lsn"] for e in reads))
        self.assertGreater(len(reads), 15000)
        self.assertLessEqual(len(reads), 20000 + txns * 5)
        self.assertFalse(any(e.get("prefix") == "pgstream-watermark" for e in events))
        self.assertIn("on-demand snapshot of public.od requested at", err)
        print("oracle: %d rows checked; %d reads, %d writer txns meanwhile"
              % (len(want["od"]), len(reads), txns))
        C.sql("SELECT pg_drop_replication_slot('sn_od')")

    def test_restart_takes_it_over(self):
        p = self.stream("sn_od_kill", "--snapshot-chunk-rows", "10")
        runs = []
        writer = Writer("od", 20000).start()
        try:
            p.wait_stderr("listening for changes...")
            out = request("--table", "od", "--slot", "sn_od_kill")
            at = lsn_int(re.search(r"requested at (\S+):", out).group(1))
            # Killed once the request is acknowledged (a restart does not
            # see it again), with the snapshot under way.
            p.wait_for(lambda: C.slot_confirmed("sn_od_kill") > at, timeout=60,
                       what="the request acknowledged")
            p.kill()
            self.assertNotIn("on-demand snapshot of public.od done", p.stderr())
            runs.append(p.events())
            p.close()
            wait_slot_inactive(C, "sn_od_kill")
            p = self.stream("sn_od_kill", "--snapshot-chunk-rows", "10")
            p.wait_stderr("on-demand snapshot of public.od done", timeout=300)
            self.assertIn("taken over from the stream's watermarks", p.stderr())
        finally:
            txns = writer.stop()
            self.assertEqual(p.stop(), 0, p.stderr())
            runs.append(p.events())
            err = p.stderr()
            p.close()
        runs.append(stream_until_now("sn_od_kill", "pub_od"))
        got = replay(runs, by_id)
        want = expected_rows(["od"], "pub_od", by_id)
        if got.get("od", {}) != want["od"]:
            # Once seen on 18 (the first keys missing): what each run held.
            missing = sorted(set(want["od"]) - set(got.get("od", {})))
            about = ["missing %d keys (%s ... %s)" % (len(missing), missing[:3], missing[-3:])]
            first_missing = set(missing[:50])
            for i, r in enumerate(runs):
                reads = [e for e in r if e["op"] == "read"]
                about.append("run %d: %d events, %d reads (%d without commit_lsn), missing keys "
                             "read: %d, first lsns %s" % (
                                 i, len(r), len(reads), sum(not e["commit_lsn"] for e in reads),
                                 sum(e["new"]["id"] in first_missing for e in reads),
                                 [e["lsn"] for e in r[:2]]))
            self.fail("\n".join(about) + "\nlast run's log:\n" + err[-3000:])
        reads = sum(e["op"] == "read" for r in runs for e in r)
        # Taken over, not started again: far fewer than two copies.
        self.assertLess(reads, 20000 * 1.6 + txns * 5)
        print("oracle: %d rows checked after kill -9 mid-snapshot; %d reads, %d writer txns"
              % (len(want["od"]), reads, txns))
        C.sql("SELECT pg_drop_replication_slot('sn_od_kill')")

    def test_transaction_committed_but_not_visible_yet(self):
        """A commit that waits for a synchronous standby is in the WAL, and
        the stream sends its change, but new snapshots cannot see it yet: a
        chunk read then would hold the row as it was before and, emitted at
        the high watermark, overwrite the change. pgstream reads the chunk
        again once the transaction is visible."""
        create_table("od_sync", "id int PRIMARY KEY, v text, n int")
        C.sql("INSERT INTO od_sync SELECT g, 'row ' || g, g FROM generate_series(1, 100) g")
        C.sql("CREATE PUBLICATION pub_sync FOR TABLE od_sync, od_sync_mirror")
        p = PgStream(C, "--status-interval", "0.2", slot="sn_sync", pub="pub_sync").start()
        held = {}

        def hold():
            conn = psycopg2.connect(C.url())
            try:
                with conn.cursor() as cur:
                    cur.execute("SET synchronous_commit = on")
                    cur.execute("SELECT pg_backend_pid()")
                    held["pid"] = cur.fetchone()[0]
                    cur.execute("UPDATE od_sync SET v = 'held' WHERE id = 50")
                conn.commit()  # returns once its wait is cancelled
            except psycopg2.Error as exc:
                held["error"] = exc
            finally:
                conn.close()
        holder = threading.Thread(target=hold)
        try:
            p.wait_stderr("listening for changes...")
            # A standby that never answers; every session but the holder
            # commits without waiting for it.
            C.sql("ALTER SYSTEM SET synchronous_commit = 'local'")
            C.sql("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
            C.sql("SELECT pg_reload_conf()")
            holder.start()
            p.wait_for(lambda: any(e["op"] == "update" for e in p.events()), timeout=60,
                       what="the held transaction's change streamed")
            self.assertTrue(holder.is_alive(), held)
            request("--table", "od_sync", "--slot", "sn_sync")
            p.wait_stderr("committed but are not visible yet", timeout=30)
            time.sleep(1)  # a second of chunks read and refused
            self.assertNotIn("od_sync done", p.stderr())
            C.sql("SELECT pg_cancel_backend(%s)", (held["pid"],))  # committed: now visible
            holder.join(timeout=30)
            p.wait_stderr("on-demand snapshot of public.od_sync done", timeout=60)
            self.assertEqual(p.stop(), 0, p.stderr())
            events, err = p.events(), p.stderr()
        finally:
            C.sql("ALTER SYSTEM RESET synchronous_standby_names")
            C.sql("ALTER SYSTEM RESET synchronous_commit")
            C.sql("SELECT pg_reload_conf()")
            if holder.is_alive() and "pid" in held:
                C.sql("SELECT pg_cancel_backend(%s)", (held["pid"],))
            holder.join(timeout=30)
            p.close()
        self.assertNotIn("error", held)
        self.assertIn("the transactions settled after", err)
        rest = stream_until_now("sn_sync", "pub_sync")
        got = replay([events, rest], by_id)
        want = expected_rows(["od_sync"], "pub_sync", by_id)
        self.assertEqual(want["od_sync"][50]["v"], "held")
        self.assertEqual(got.get("od_sync", {}), want["od_sync"])
        self.assertEqual(sum(e["op"] == "read" for e in events), 100)
        C.sql("SELECT pg_drop_replication_slot('sn_sync')")

    def test_bad_requests_leave_the_stream_going(self):
        p = self.stream("sn_od_bad")
        try:
            p.wait_stderr("listening for changes...")
            request("--table", "public.no_such_table", "--slot", "sn_od_bad")
            request("--table", "od_nokey", "--slot", "sn_od_bad")
            C.sql("SELECT pg_logical_emit_message(true, 'pgstream', '{\"snapshot\": [1')")
            C.sql("SELECT pg_logical_emit_message(true, 'pgstream', '[\"od\"]')")
            C.sql("SELECT pg_logical_emit_message(true, 'pgstream', "
                  "'{\"snapshot\": [\"od\"], \"slot\": \"someone_else\"}')")
            C.sql("INSERT INTO od_nokey VALUES ('still streaming')")
            p.wait_for(lambda: any(e.get("table") == "od_nokey" for e in p.events()),
                       timeout=60, what="the insert after the bad requests")
            time.sleep(0.5)
            self.assertEqual(p.stop(), 0, p.stderr())
            err, events = p.stderr(), p.events()
        finally:
            p.close()
        warnings = [l for l in err.splitlines() if l.startswith("warning:")]
        self.assertEqual(len(warnings), 5, err)
        self.assertIn("publication pub_od: 1 table has no replica identity: public.od_nokey"
                      " (no primary key)", err)  # at start, pg/identity.c
        self.assertIn('table public.no_such_table is not in publication "pub_od"', err)
        self.assertIn("table public.od_nokey has no primary key", err)
        self.assertIn("ignoring the snapshot signal at", err)
        self.assertIn("not a JSON object", err)
        self.assertFalse(any(e["op"] == "read" for e in events))
        C.sql("SELECT pg_drop_replication_slot('sn_od_bad')")

    def test_request_command_needs_a_table(self):
        p = subprocess.run([harness.BIN, "snapshot", "--database-url", C.url(), "--env-file",
                            "/dev/null"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr.strip(),
                         "pgstream: invalid options: pgstream snapshot needs --table SCHEMA.TABLE")


class Publications(unittest.TestCase):
    """Only the columns and rows the publication sends are read."""

    def test_column_list_and_row_filter(self):
        create_table("filtered", "id int PRIMARY KEY, a text, secret text, n int")
        C.sql("INSERT INTO filtered SELECT g, 'a' || g, 'hidden', g FROM generate_series(1, 1000) g")
        C.sql("CREATE PUBLICATION pub_f FOR TABLE filtered (id, a, n) WHERE (id % 3 = 0), "
              "filtered_mirror (id, a, n) WHERE (id % 3 = 0)")
        p = PgStream(C, "--snapshot", "initial", "--snapshot-chunk-pages", "1",
                     "--snapshot-workers", "2", slot="sn_f", pub="pub_f").start()
        try:
            p.wait_stderr("listening for changes...", timeout=120)
            C.sql("UPDATE filtered SET id = id + 10000 WHERE id <= 30")  # in and out of the filter
            C.sql("UPDATE filtered SET a = 'changed' WHERE id BETWEEN 31 AND 60")
            C.sql("INSERT INTO filtered VALUES (5000, 'new', 'hidden', 3)")
            time.sleep(0.5)
            self.assertEqual(p.stop(), 0, p.stderr())
            events = p.events()
        finally:
            p.close()
        rest = stream_until_now("sn_f", "pub_f")
        reads = [e for e in events if e["op"] == "read"]
        self.assertEqual(len(reads), 333)
        self.assertTrue(all(set(e["new"]) == {"id", "a", "n"} for e in reads))
        got = replay([events, rest], by_id)
        want = expected_rows(["filtered"], "pub_f", by_id)
        self.assertEqual(got.get("filtered", {}), want["filtered"])
        C.sql("SELECT pg_drop_replication_slot('sn_f')")

    def test_partitioned_table(self):
        C.sql("CREATE TABLE parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)")
        C.sql("CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000)")
        C.sql("CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (1000) TO (100000)")
        C.sql("INSERT INTO parted SELECT g, 'p' || g FROM generate_series(1, 20000) g")
        C.sql("CREATE PUBLICATION pub_root FOR TABLE parted WITH (publish_via_partition_root)")
        C.sql("CREATE PUBLICATION pub_leaf FOR TABLE parted")
        for pub, names in (("pub_root", {"parted": 20000}),
                           ("pub_leaf", {"parted_1": 999, "parted_2": 19001})):
            p = PgStream(C, "--snapshot", "initial_only", "--snapshot-chunk-pages", "8",
                         slot="sn_" + pub, pub=pub)
            try:
                self.assertEqual(p.run(timeout=120), 0, p.stderr())
                counts = {}
                for e in p.events():
                    counts[e["table"]] = counts.get(e["table"], 0) + 1
                self.assertEqual(counts, names, pub)
            finally:
                p.close()


class BadRequests(unittest.TestCase):
    def test_bad_values(self):
        for args, mention in ((["--snapshot", "sometimes"], "--snapshot"),
                              (["--snapshot", "initial", "--snapshot-workers", "0"],
                               "--snapshot-workers"),
                              (["--snapshot", "initial", "--start-lsn", "0/1"], "--start-lsn")):
            p = PgStream(C, *args, slot="sn_bad", pub="pub_all")
            try:
                self.assertEqual(p.run(timeout=30), 2, p.stderr())
                lines = p.stderr().strip().splitlines()
                self.assertEqual(len(lines), 1, lines)
                self.assertIn(mention, lines[0])
            finally:
                p.close()

    def test_missing_publication(self):
        p = PgStream(C, "--snapshot", "initial", slot="sn_nopub", pub="no_such_pub")
        try:
            self.assertNotEqual(p.run(timeout=30), 0)
            self.assertIn('publication "no_such_pub" does not exist', p.stderr())
        finally:
            p.close()
        self.assertNotIn("sn_nopub", slots())


if __name__ == "__main__":
    unittest.main()
