"""--kafka-exactly-once against a broker that speaks the real Kafka protocol:
librdkafka's mock cluster (tests/tools/kafka_mock.c, 3 brokers), or the
real cluster KAFKA_BROKERS names (the fault tests are then skipped, visibly).
Read back with kcat -X isolation.level=read_committed.

What a read_committed consumer sees, and how it is found here: the 2.0.2
mock writes no transaction markers (EndTxn commits or aborts nothing in its
logs), so its read_committed consumers see every message, aborted ones
included. Every message pgstream writes in exactly-once mode names its
Kafka transaction (header kafka_txn), and so does the checkpoint record the
transaction commits with (in {prefix}.pgstream.offsets): the committed view
is the messages of transactions whose checkpoint is there, less those
pgstream said it aborted (an abort after the checkpoint was delivered: a
commit that failed). That is what a real broker's read_committed consumer
sees, for what pgstream controls; that the broker hides aborted data is
Kafka's part, which the mock cannot show.

1. Every operation, COPY's multi-insert records (many events at one LSN)
   and a TRUNCATE of two tables included, read back once; a second slot
   with the same transactional.id that the server sends everything again
   produces nothing again (the checkpoint skips it); a run killed in the
   middle of a 100,000-row COPY, after some of its Kafka transactions
   committed, and a restart: each row once.
2. kill -9 at random moments under load, several times: the committed
   view holds every committed row exactly once, in order per key; no
   restart produced anything at or before the checkpoint it read.
3. Abortable errors injected under load (Produce: CORRUPT_MESSAGE; EndTxn
   and AddPartitionsToTxn: an unknown broker error): each transaction
   aborted and sent again, pgstream keeps running, exit 0 at SIGTERM, the
   committed view exactly once.
   The walsender killed under load: the reconnect repeats nothing (what
   the open transaction holds is skipped too).
4. Fenced (INVALID_PRODUCER_EPOCH on Produce, which librdkafka reports as
   a newer producer with the same transactional.id): exit 1 with one line;
   the restart completes, exactly once.
5. Bad configuration: one line, exit 2."""

import json
import os
import random
import re
import signal
import subprocess
import time
import unittest

import test_kafka as tk
from harness import (BIN, Cluster, FaultStats, PgStream, Workload, assert_refused, lsn_int,
                     lsn_str, wait_slot_inactive, walsender_pids)

REAL = tk.REAL
needs_mock = tk.needs_mock

C = None
K = None
STATS = FaultStats()


def setUpModule():
    global C, K
    C = Cluster("wal_sender_timeout = 10s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    K = tk.Kafka()
    tk.C, tk.K, tk.STATS = C, K, STATS  # test_kafka's helpers, on this cluster


def tearDownModule():
    STATS.report("test_kafka_eos")
    K.close()
    C.close()


def eos_args(prefix, *more):
    return tk.kafka_args(prefix, "--kafka-exactly-once", *more)


def prepare(prefix, tables, partitions=16):
    """Topics of room enough (see test_kafka.Kafka.create), and the offsets
    topic: the mock cannot create it (no CreateTopics) and pgstream would
    warn and leave it to auto-creation."""
    for t in tables:
        K.create("%s.public.%s" % (prefix, t), partitions)
    K.create(prefix + ".pgstream.offsets", 1)


def read_committed(topic):
    """Every message of topic as a read_committed consumer gets it (kcat's
    JSON, headers made a dict), in (partition, offset) order."""
    p = subprocess.run(["kcat", "-C", "-J", "-e", "-q", "-o", "beginning", "-X",
                        "isolation.level=read_committed", "-b", K.bootstrap, "-t", topic],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    msgs = []
    for line in p.stdout.splitlines():
        if line.strip():
            m = json.loads(line)
            h = m.get("headers") or []
            m["headers"] = dict(zip(h[::2], h[1::2]))
            msgs.append(m)
    msgs.sort(key=lambda m: (m["partition"], m["offset"]))
    return msgs


def checkpoints(prefix, key):
    """The checkpoint records under key, oldest first."""
    return [json.loads(m["payload"]) for m in read_committed(prefix + ".pgstream.offsets")
            if m["key"] == key]


def last_checkpoint(prefix, key):
    cps = checkpoints(prefix, key)
    return cps[-1] if cps else None


def aborted_in(text):
    """Labels of the transactions pgstream said it aborted."""
    return set(re.findall(r"Kafka transaction (\S+) aborted", text))


def committed_view(msgs, prefix, key, logs):
    """The messages a read_committed consumer of a real broker gets (see the
    module's docstring)."""
    labels = {c["kafka_txn"] for c in checkpoints(prefix, key)} - aborted_in(logs)
    return [m for m in msgs if m["headers"].get("kafka_txn") in labels]


def check_exactly_once(w, view):
    """Every committed row exactly once in the view, none rolled back or
    invented, each partition in (commit_lsn, lsn) order."""
    checked, repeats = w.verify([tk.events_of(view)])
    assert repeats == 0
    return checked


def pos(m):
    return (lsn_int(m["headers"]["commit_lsn"]), lsn_int(m["headers"]["lsn"]))


def run_eos(slot, lsn, *args, timeout=300):
    p = PgStream(C, "--end-lsn", lsn_str(lsn), *args, slot=slot)
    rc = p.run(timeout=timeout)
    err = p.stderr()
    p.close()
    assert rc == 0, err
    return err


class ExactlyOnce(unittest.TestCase):
    def test_ops_once_and_a_second_slot_skips_them(self):
        """Every operation once, with the kafka_txn header; a checkpoint
        naming the last event; a second slot (same transactional.id) that
        the server sends everything again to produces nothing."""
        prefix, txn_id = "eops", "eops.txn"
        C.sql("CREATE TABLE eo_a (id int PRIMARY KEY, v text)")
        C.sql("CREATE TABLE eo_b (id int PRIMARY KEY)")
        prepare(prefix, ["eo_a", "eo_b"], 4)
        for s in ("s_eo_json", "s_eo_1", "s_eo_2"):
            tk.new_slot(s)
        for stmt in [
            "INSERT INTO eo_a SELECT g, 'v' || g FROM generate_series(1, 50) g",
            # COPY writes multi-insert records: many events at one LSN
            "COPY eo_b FROM PROGRAM 'seq 1 3000'",
            "UPDATE eo_a SET id = id + 1000 WHERE id <= 5",
            "DELETE FROM eo_a WHERE id > 40",
            "SELECT pg_logical_emit_message(true, 'app', 'in')",
            "SELECT pg_logical_emit_message(false, 'app', 'out')",
            "TRUNCATE eo_a, eo_b",  # one record, two events
            "INSERT INTO eo_b VALUES (1), (2)",
        ]:
            C.sql(stmt)
        end = C.current_lsn()
        ref = PgStream(C, "--end-lsn", lsn_str(end), slot="s_eo_json")
        self.assertEqual(ref.run(), 0, ref.stderr())
        lines = ref.stdout().splitlines()
        ref.close()
        args = eos_args(prefix, "--kafka-transactional-id", txn_id)
        run_eos("s_eo_1", end, *args)
        topics = ["%s.public.eo_a" % prefix, "%s.public.eo_b" % prefix, prefix + ".messages"]
        first = [m for t in topics for m in read_committed(t)]
        values = [m["payload"] for m in first if m["payload"] is not None]
        self.assertEqual(sorted(values), sorted(lines))
        cps = checkpoints(prefix, txn_id)
        self.assertTrue(cps)
        labels = {c["kafka_txn"] for c in cps}
        self.assertTrue(all(m["headers"]["kafka_txn"] in labels for m in first))
        last = json.loads(lines[-1])
        self.assertEqual((cps[-1]["slot"], cps[-1]["commit_lsn"], cps[-1]["lsn"],
                          cps[-1]["index"]), ("s_eo_1", last["commit_lsn"], last["lsn"], 2))
        # The second slot still stands where the first did: the server
        # sends everything again, and all of it is skipped.
        err = run_eos("s_eo_2", end, "--log-level", "debug", *args)
        self.assertIn("Kafka holds everything up to event 2 of the transaction committed at "
                      + last["commit_lsn"], err)
        again = [m for t in topics for m in read_committed(t)]
        self.assertEqual(len(again), len(first), "produced again what Kafka held")
        self.assertGreaterEqual(wait_slot_inactive(C, "s_eo_2"), end)
        skipped = int(re.search(r"(\d+) events skipped", err).group(1))
        self.assertEqual(skipped, len(lines))
        print("operations: %d events once in %d Kafka transactions; the second slot skipped"
              " all %d" % (len(values), len(labels), skipped), flush=True)
        STATS.checked += len(values)

    @needs_mock
    def test_killed_inside_a_copy(self):
        """kill -9 while a 100,000-row COPY (multi-insert records: events
        sharing LSNs) is being produced, after some of its Kafka
        transactions committed (its first checkpoint is inside it); the
        restart produces the rest only."""
        prefix, slot, rows = "ecopy", "s_ecopy", 100000
        C.sql("CREATE TABLE eo_copy (id bigint PRIMARY KEY)")
        prepare(prefix, ["eo_copy"], 32)
        tk.new_slot(slot)
        C.sql("COPY eo_copy FROM PROGRAM 'seq 1 %d'" % rows)
        end = C.current_lsn()
        key = "%s.pgstream.%s" % (prefix, slot)
        for b in (1, 2, 3):
            K.inject("rtt %d 20" % b)  # slow enough to see it half done
        try:
            # The first commit seen in pgstream's own log, not by asking
            # Kafka: a kcat per poll can take long enough under load for the
            # whole COPY to be committed before the kill.
            p = PgStream(C, "--log-level", "debug", *eos_args(prefix), slot=slot).start()
            p.wait_for(lambda: "kafka: committed transaction" in p.stderr(), 60,
                       "a first commit")
            p.kill()
            STATS.fault("kill9")
            logs = p.stderr()
            p.close()
        finally:
            for b in (1, 2, 3):
                K.inject("rtt %d 0" % b)
        mid = last_checkpoint(prefix, key)
        self.assertLess(mid["index"], rows, "the kill came after the COPY was committed")
        self.assertLess(wait_slot_inactive(C, slot), lsn_int(mid["commit_lsn"]))
        err = run_eos(slot, end, "--log-level", "debug", *eos_args(prefix))
        peak = int(re.search(r"peak RSS (\d+) kB", err).group(1))
        msgs = read_committed(prefix + ".public.eo_copy")
        view = committed_view(msgs, prefix, key, logs + err)
        ids = sorted(json.loads(m["payload"])["new"]["id"] for m in view)
        self.assertTrue(ids == list(range(1, rows + 1)), "%d rows in the committed view, %d "
                        "distinct, of %d" % (len(ids), len(set(ids)), rows))
        skipped = int(re.search(r"(\d+) events skipped", err).group(1))
        self.assertEqual(skipped, mid["index"])
        if not tk.SANITIZED:
            self.assertLess(peak, 64 * 1024)
        print("killed inside a %d-row COPY after event %d committed: the restart skipped %d, "
              "%d rows once in the committed view (%d messages in the mock's log), peak RSS "
              "%d kB" % (rows, mid["index"], skipped, len(ids), len(msgs), peak), flush=True)
        STATS.checked += len(ids)


    def test_checkpoint_not_ours(self):
        """A checkpoint ahead of the server's WAL (written for another
        database, or before a restore) and a record under the key that
        pgstream did not write: exit 1, one line each, nothing skipped."""
        prefix = "eother"
        prepare(prefix, [], 1)
        topic = prefix + ".pgstream.offsets"
        tk.new_slot("s_eother")
        for key, value, says in [
            ("eother.a", json.dumps({"slot": "x", "commit_lsn": "FF/0", "index": 1, "lsn": "FF/0",
                                     "kafka_txn": "x-1"}),
             "pgstream: could not resume: the sink's checkpoint is at a transaction committed "
             "at FF/0, but this server's WAL ends at "),
            ("eother.b", "{\"offset\": 5}",
             "pgstream: could not read the checkpoint from Kafka topic eother.pgstream.offsets: "
             "the record at partition 0 offset 1 under key eother.b is not one pgstream wrote"),
        ]:
            subprocess.run(["kcat", "-P", "-b", K.bootstrap, "-t", topic, "-k", key],
                           input=value, text=True, check=True, timeout=60)
            p = PgStream(C, *eos_args(prefix, "--kafka-transactional-id", key), slot="s_eother")
            rc = p.run(timeout=60)
            err = p.stderr().strip().splitlines()
            p.close()
            self.assertEqual(rc, 1, err)
            self.assertTrue(err[-1].startswith(says), err[-1])
            self.assertEqual([x for x in err if x.startswith("pgstream:")], [err[-1]])
        print("checkpoints not ours: refused with one line each", flush=True)


class Snapshot(unittest.TestCase):
    def test_snapshot_rows_each_once(self):
        """--snapshot initial with exactly once: a snapshot's rows share one
        position (its consistent point), so each is told apart by its
        number; every row reaches Kafka once, then the stream."""
        C.sql("CREATE TABLE eos_snap (id int PRIMARY KEY, v text)")
        C.sql("INSERT INTO eos_snap SELECT g, 'v' || g FROM generate_series(1, 3000) g")
        prepare("eossnap", ["eos_snap"])
        p = PgStream(C, "--snapshot", "initial", *eos_args("eossnap"), slot="s_eos_snap").start()
        try:
            p.wait_stderr("listening for changes...", timeout=120)
            C.sql("INSERT INTO eos_snap VALUES (5000, 'after')")
            end = C.current_lsn()
            p.wait_for(lambda: C.slot_confirmed("s_eos_snap") >= end, timeout=60,
                       what="the insert acknowledged")
            self.assertEqual(p.stop(), 0, p.stderr())
            logs = p.stderr()
        finally:
            p.close()
        self.assertFalse(aborted_in(logs), logs)  # so every message is committed
        msgs = read_committed("eossnap.public.eos_snap")
        evs = [json.loads(m["payload"]) for m in msgs if m["payload"]]
        reads = sorted(e["new"]["id"] for e in evs if e["op"] == "read")
        self.assertEqual(reads, list(range(1, 3001)))
        self.assertEqual([e["new"]["id"] for e in evs if e["op"] == "insert"], [5000])


class Kills(unittest.TestCase):
    def test_kill_9_at_random_moments(self):
        slot, table, prefix = "s_ekill", "ledger_ekill", "ekill"
        rounds = 6
        key = "%s.pgstream.%s" % (prefix, slot)
        tk.new_slot(slot)
        w = Workload(C, table)
        prepare(prefix, [table])
        topic = "%s.public.%s" % (prefix, table)
        acks, bounds, cps, logs = [], [], [], ""
        if K.mock:
            # Slow brokers: every kill finds a transaction open, some
            # of it delivered, its commit not yet done.
            for b in (1, 2, 3):
                K.inject("rtt %d 30" % b)
        w.start(10 ** 9, big_every=50, big_size=1000, rollback_every=7, pause=0.008)
        try:
            for r in range(rounds):
                p = PgStream(C, "--status-interval", random.choice(["0.1", "0.5"]),
                             *eos_args(prefix), slot=slot).start()
                p.wait_stderr("listening for changes", 60)
                time.sleep(0.3 + random.expovariate(1 / 1.2))
                p.kill()
                STATS.fault("kill9")
                logs += p.stderr()
                acks.append(wait_slot_inactive(C, slot))
                bounds.append(tk.partition_ends(topic))
                cps.append(last_checkpoint(prefix, key))
                p.close()
        finally:
            w.stop()
            if K.mock:
                for b in (1, 2, 3):
                    K.inject("rtt %d 0" % b)
        logs += run_eos(slot, C.current_lsn(), *eos_args(prefix))
        tk.check_volume(w)
        msgs = read_committed(topic)
        view = committed_view(msgs, prefix, key, logs)
        checked = check_exactly_once(w, view)
        # The checkpoint honoured: nothing a restart produced is at or
        # before the checkpoint it read (the last one before it started).
        runs = tk.split_runs(msgs, bounds)
        for r in range(1, len(runs)):
            if cps[r - 1] is None:
                continue
            limit = (lsn_int(cps[r - 1]["commit_lsn"]), lsn_int(cps[r - 1]["lsn"]))
            again = [m for m in runs[r] if pos(m) <= limit]
            self.assertFalse(again, "run %d produced %d messages at or before the checkpoint "
                             "%s it started from" % (r, len(again), cps[r - 1]))
        # Postgres was never told more than Kafka had committed: else the
        # restart after it would have lost rows, which check_exactly_once
        # finds missing.
        STATS.checked += checked
        print("kill -9 (exactly once): %d rounds, %d transactions, %d rows exactly once in the "
              "committed view; %d messages in the mock's log (aborted ones included); "
              "checkpoints %s" % (rounds, len(w.committed), checked, len(msgs),
                                  [c and c["index"] for c in cps]), flush=True)


class Faults(unittest.TestCase):
    @needs_mock
    def test_abortable_errors_survived(self):
        slot, table, prefix = "s_eabort", "ledger_eabort", "eabort"
        key = "%s.pgstream.%s" % (prefix, slot)
        tk.new_slot(slot)
        w = Workload(C, table)
        prepare(prefix, [table])
        topic = "%s.public.%s" % (prefix, table)
        p = PgStream(C, "--status-interval", "0.3", *eos_args(prefix), slot=slot).start()
        try:
            w.start(10 ** 9, sizes=(1, 5, 20, 100), big_every=50, big_size=1000, pause=0.005,
                    rollback_every=9)
            p.wait_for(lambda: C.slot_confirmed(slot) > 0, 60, "a first acknowledgement")
            for fault in ["errors 1 2",               # Produce: CORRUPT_MESSAGE
                          "request-errors 26 1 -1",   # EndTxn: unknown broker error
                          "request-errors 24 1 -1",   # AddPartitionsToTxn
                          "errors 3 2"]:
                before = len(aborted_in(p.stderr()))
                K.inject(fault)
                p.wait_for(lambda: len(aborted_in(p.stderr())) > before, 30,
                           "an abort after %r" % fault)
                # settled: streaming again after every abort so far, and
                # committing (the next fault finds no abort under way)
                p.wait_for(lambda: p.stderr().count("listening for changes") >
                           len(aborted_in(p.stderr())), 30, "streaming again")
                time.sleep(1)
        finally:
            w.stop()
        end = C.current_lsn()
        p.wait_for(lambda: C.slot_confirmed(slot) >= end, 60, "the end acknowledged")
        self.assertEqual(p.stop(), 0, p.stderr())
        logs = p.stderr()
        p.close()
        tk.check_volume(w)
        aborts = aborted_in(logs)
        self.assertGreaterEqual(len(aborts), 4, logs)
        reasons = re.findall(r"aborted: ([^;]*);", logs)
        for why in ("Invalid message", "EndTxn commit failed", "add partition"):
            self.assertTrue([r for r in reasons if why in r], (why, reasons))
        self.assertNotIn("pgstream:", logs)
        msgs = read_committed(topic)
        view = committed_view(msgs, prefix, key, logs)
        checked = check_exactly_once(w, view)
        STATS.checked += checked
        print("abortable errors: %d transactions aborted and sent again (%s), %d rows exactly "
              "once in the committed view, %d messages in the mock's log"
              % (len(aborts), "; ".join(sorted(set(re.findall(r"aborted: ([^;]*);", logs)))),
                 checked, len(msgs)), flush=True)

    def test_walsender_killed(self):
        """The walsender killed under load (pgstream reconnects; the
        server sends again what was not acknowledged, some of it in the
        open Kafka transaction, which commits later): nothing twice."""
        slot, table, prefix = "s_ewal", "ledger_ewal", "ewal"
        key = "%s.pgstream.%s" % (prefix, slot)
        tk.new_slot(slot)
        w = Workload(C, table)
        prepare(prefix, [table])
        topic = "%s.public.%s" % (prefix, table)
        # a long status interval: much is sent again at each reconnect
        p = PgStream(C, "--status-interval", "2", *eos_args(prefix), slot=slot).start()
        kills = 0
        try:
            w.start(10 ** 9, big_every=30, big_size=2000, pause=0.005, rollback_every=11)
            p.wait_for(lambda: last_checkpoint(prefix, key) is not None, 60, "a first commit")
            for _ in range(3):
                time.sleep(random.uniform(0.3, 1.2))
                pids = walsender_pids(C, slot)
                if pids:
                    C.sql("SELECT pg_terminate_backend(%s)", (pids[0],))
                    kills += 1
                    STATS.fault("walsender_killed")
                p.wait_for(lambda: walsender_pids(C, slot), 30, "a reconnect")
        finally:
            w.stop()
        end = C.current_lsn()
        p.wait_for(lambda: C.slot_confirmed(slot) >= end, 60, "the end acknowledged")
        self.assertEqual(p.stop(), 0, p.stderr())
        logs = p.stderr()
        p.close()
        self.assertGreaterEqual(logs.count("reconnecting in"), kills)
        view = committed_view(read_committed(topic), prefix, key, logs)
        checked = check_exactly_once(w, view)
        STATS.checked += checked
        print("walsender killed %d times: %d rows exactly once" % (kills, checked), flush=True)

    @needs_mock
    def test_fenced_exits_with_one_line(self):
        slot, table, prefix = "s_efence", "ledger_efence", "efence"
        key = "%s.pgstream.%s" % (prefix, slot)
        tk.new_slot(slot)
        w = Workload(C, table)
        prepare(prefix, [table])
        topic = "%s.public.%s" % (prefix, table)
        p = PgStream(C, "--status-interval", "0.3", *eos_args(prefix), slot=slot).start()
        try:
            w.start(10 ** 9, pause=0.005)
            p.wait_for(lambda: last_checkpoint(prefix, key) is not None, 60, "a first commit")
            # What a broker answers a producer whose epoch a newer
            # InitProducerId of the same transactional.id has bumped.
            K.inject("errors 1 47")  # INVALID_PRODUCER_EPOCH
            STATS.fault("fenced")
            rc = p.proc.wait(timeout=60)
            err = p.stderr().strip().splitlines()
            p.close()
        finally:
            w.stop()
        self.assertEqual(rc, 1, err)
        self.assertTrue(err[-1].startswith("pgstream: could not produce to Kafka: fenced: a "
                                           "newer producer with transactional.id %s has "
                                           "started" % key), err[-1])
        self.assertEqual([x for x in err if x.startswith("pgstream:")], [err[-1]])
        logs = "\n".join(err) + run_eos(slot, C.current_lsn(), *eos_args(prefix))
        view = committed_view(read_committed(topic), prefix, key, logs)
        checked = check_exactly_once(w, view)
        STATS.checked += checked
        print("fenced: exit 1 with %r; the restart completed, %d rows exactly once"
              % (err[-1][:100], checked), flush=True)


class BadConfig(unittest.TestCase):
    def test_bad_configuration(self):
        kafka = ["--sink", "kafka", "--kafka-brokers", K.bootstrap]
        cases = [
            (["--kafka-exactly-once"], "--kafka-exactly-once needs --sink kafka"),
            (["--kafka-exactly-once", "--output", "/tmp/x"], "--kafka-exactly-once needs"),
            (kafka + ["--kafka-transactional-id", "x"], "needs --kafka-exactly-once"),
            (kafka + ["--kafka-offsets-topic", "x"], "needs --kafka-exactly-once"),
            (kafka + ["--kafka-commit-interval", "1"], "needs --kafka-exactly-once"),
            (kafka + ["--kafka-exactly-once", "--kafka-commit-interval", "0"],
             "--kafka-commit-interval"),
            (kafka + ["--kafka-exactly-once", "--kafka-commit-interval", "31"],
             "must be at most half of transaction.timeout.ms (60000 ms)"),
            (kafka + ["--kafka-exactly-once", "--kafka-transactional-id", ""], "empty"),
            (kafka + ["--kafka-exactly-once", "--kafka-offsets-topic", "{table}.o"],
             "--kafka-offsets-topic"),
            (kafka + ["--kafka-exactly-once", "--kafka-property", "enable.idempotence=false"],
             "enable.idempotence"),
            (kafka + ["--kafka-exactly-once", "--kafka-property", "transaction.timeout.ms=x"],
             "transaction.timeout.ms"),
            (kafka + ["--kafka-exactly-once", "--kafka-property", "transactional.id=x"],
             "transactional.id is pgstream's to set"),
        ]
        for args, mention in cases:
            with self.subTest(args=args):
                p = subprocess.run([BIN, "--database-url", C.url(), "--env-file", "/dev/null",
                                    *args], capture_output=True, text=True, timeout=60)
                assert_refused(self, p, mention, 2)
        print("bad configuration: %d refused with one line, exit 2" % len(cases), flush=True)


if __name__ == "__main__":
    unittest.main()
