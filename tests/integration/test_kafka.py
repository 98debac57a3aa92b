"""The Kafka sink (--sink kafka), against a broker that speaks the real Kafka
protocol: librdkafka's mock cluster with 3 brokers in a process of its own
(tests/tools/kafka_mock.c, which also injects faults), or, when
KAFKA_BROKERS is set, that real cluster (the fault tests are then skipped,
visibly). Everything is read back from Kafka with kcat.

1. Every operation lands in its table's topic with the row's key, headers
   lsn/commit_lsn/xid and the very bytes --format json prints; tombstones
   after a DELETE and for the old key of a key-changing UPDATE; every keyed
   record in the partition Java's murmur2 gives; a fixed topic and
   --kafka-tombstones=false; --format debezium's envelopes, a key change
   as Debezium sends it (delete, tombstone, create).
2. The reference workload (bench/workload) counted back, every key's
   changes in one partition and in order.
3. Produce errors injected and all brokers down for seconds under load:
   nothing lost, the slot's confirmed_flush_lsn frozen while nothing can be
   delivered, memory flat, the Postgres connection kept; a kill -9 while
   the brokers are down loses nothing. One broker answering 5 s late: the
   acknowledgement held before its partitions' first row, the other
   partitions delivered meanwhile.
4. A row larger than message.max.bytes: exit 1 with one line naming the
   topic, the table, the LSN and the remedy, nothing acknowledged past it;
   a restart with the limit raised delivers it. The same for a topic
   refused (TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_OR_PART).
5. SIGTERM under load flushes and exits 0; SIGTERM inside a 1,000,000-row
   transaction: exit 0 within about a second, nothing of it acknowledged, the restart
   delivers it whole; kill -9 at random moments under load: every
   committed row in Kafka at least once, repeats only of transactions not
   acknowledged before the restart.
6. Bad Kafka configuration: one line, non-zero exit; acks=0/1 or
   enable.idempotence=false: one warning line.
7. REPLICA IDENTITY FULL: keyed by the primary key (one row, one key, one
   partition; a primary-key change tombstones the old key); without one,
   by the whole row."""

import json
import os
import random
import re
import signal
import subprocess
import time
import unittest

from harness import (BIN, ROOT, Cluster, FaultStats, PgStream, Workload, assert_refused, lsn_int,
                     lsn_str, rss_kb, wait_slot_inactive, walsender_pids)

REAL = os.environ.get("KAFKA_BROKERS")
KAFKA_MOCK = os.environ.get("KAFKA_MOCK") or os.path.join(ROOT, "build", "tests", "kafka_mock")
SANITIZED = os.environ.get("PGSTREAM_SANITIZED") == "1"
needs_mock = unittest.skipIf(REAL, "fault injection needs the mock cluster (KAFKA_BROKERS is set)")

C = None
K = None
STATS = FaultStats()


class Kafka:
    """The brokers: the mock cluster (a child process fed commands on its
    stdin), or the real cluster KAFKA_BROKERS names."""

    def __init__(self):
        self.mock = None
        if REAL:
            self.bootstrap = REAL
            return
        self.mock = subprocess.Popen([KAFKA_MOCK], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.bootstrap = self.mock.stdout.readline().strip()
        assert self.bootstrap, "kafka_mock printed no bootstrap servers"

    def inject(self, command):
        self.mock.stdin.write(command + "\n")
        self.mock.stdin.flush()
        reply = self.mock.stdout.readline().strip()
        assert reply == "ok", "kafka_mock %r: %s" % (command, reply)
        if command.split()[0] != "create":
            STATS.fault(command.split()[0])

    def create(self, topic, partitions=16):
        """A topic with room for the fault tests' volume: the mock keeps
        only the last 5 MB of each partition (rdkafka_mock.c), and creates
        topics of 4 partitions on first use. A real cluster creates its
        own (auto.create.topics.enable)."""
        if self.mock:
            self.inject("create %s %d" % (topic, partitions))

    def topics(self, prefix):
        p = subprocess.run(["kcat", "-L", "-J", "-b", self.bootstrap], capture_output=True,
                           text=True, timeout=60, check=True)
        return sorted(t["topic"] for t in json.loads(p.stdout)["topics"]
                      if t["topic"].startswith(prefix + "."))

    def read(self, topic):
        """Every message of topic, as kcat's JSON: topic, partition, offset,
        key, payload (None for a tombstone), headers (made a dict)."""
        p = subprocess.run(["kcat", "-C", "-J", "-e", "-q", "-o", "beginning", "-b",
                            self.bootstrap, "-t", topic], capture_output=True, text=True,
                           timeout=300)
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

    def close(self):
        if self.mock:
            self.mock.stdin.close()
            self.mock.wait(timeout=30)


def setUpModule():
    global C, K
    C = Cluster("wal_sender_timeout = 10s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    K = Kafka()


def tearDownModule():
    STATS.report("test_kafka")
    K.close()
    C.close()


def kafka_args(prefix, *more):
    return ("--sink", "kafka", "--kafka-brokers", K.bootstrap, "--topic-prefix", prefix) + more


def new_slot(name):
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))


def drop_slots(*names):
    """Drop slots once their runs ended: the module's tests together need
    more than the server's max_replication_slots (10)."""
    for name in names:
        wait_slot_inactive(C, name)
        C.sql("SELECT pg_drop_replication_slot(%s)", (name,))


def drop_slot(name):
    drop_slots(name)


def slot_copy(base, name):
    """A new slot where base is (which nothing reads): several runs over
    the same WAL, one slot at a time besides base."""
    C.sql("SELECT pg_copy_logical_replication_slot(%s, %s)", (base, name))
    return name


def run_to(lsn, slot, *args, timeout=300):
    """One pgstream run to --end-lsn lsn; returns it (closed by the caller)."""
    p = PgStream(C, "--end-lsn", lsn_str(lsn), *args, slot=slot)
    rc = p.run(timeout=timeout)
    assert rc == 0, p.stderr()
    return p


def partition_ends(topic):
    """Per partition, one past the last offset: where the next run begins."""
    ends = {}
    for m in K.read(topic):
        ends[m["partition"]] = max(ends.get(m["partition"], 0), m["offset"] + 1)
    return ends


def high_watermarks(kafka, topic, partitions):
    """How many messages topic holds, from its partitions' end offsets
    (kcat -Q, timestamp -1: the latest), without reading them."""
    argv = ["kcat", "-Q", "-b", kafka.bootstrap]
    for i in range(partitions):
        argv += ["-t", "%s:%d:-1" % (topic, i)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return 0
    return sum(int(x) for x in re.findall(r"offset (-?\d+)", p.stdout) if int(x) > 0)


def read_keys(kafka, topic):
    """(id, partition, commit_lsn) of every message of topic, for topics
    too large for kcat's JSON: keys {"id":N}, headers lsn,commit_lsn,xid."""
    p = subprocess.run(["kcat", "-C", "-e", "-q", "-o", "beginning", "-b", kafka.bootstrap,
                        "-t", topic, "-f", "%p %k %h\\n"], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.splitlines():
        part, key, headers = line.decode().split(" ")
        h = dict(kv.split("=", 1) for kv in headers.split(","))
        out.append((json.loads(key)["id"], int(part), h["commit_lsn"]))
    return out


def split_runs(msgs, bounds):
    """Messages by the run that produced them: bounds[r] are the partition
    ends read after run r died, before the next one started."""
    runs = [[] for _ in range(len(bounds) + 1)]
    for m in msgs:
        r = 0
        while r < len(bounds) and m["offset"] >= bounds[r].get(m["partition"], 0):
            r += 1
        runs[r].append(m)
    return runs


def check_volume(w, partitions=16):
    """The mock keeps 5 MB per partition: a workload that wrote more would
    look like lost rows."""
    rows = w.total() if hasattr(w, "total") else sum(len(t) for t in w.committed)
    assert REAL or rows * 300 < partitions * 5 * 1024 * 1024, \
        "the workload wrote %d rows, more than the mock cluster keeps" % rows


def events_of(msgs):
    """Values (not tombstones) as events, each partition's in offset order
    checked for (commit_lsn, lsn) order, then merged in that order."""
    by_part = {}
    for m in msgs:
        if m["payload"] is not None:
            by_part.setdefault(m["partition"], []).append(json.loads(m["payload"]))
    events = []
    for part, evs in by_part.items():
        pos = [(lsn_int(e["commit_lsn"]), lsn_int(e["lsn"])) for e in evs]
        assert pos == sorted(pos), "partition %d out of order" % part
        events += evs
    events.sort(key=lambda e: (lsn_int(e["commit_lsn"]), lsn_int(e["lsn"])))
    return events


def murmur2(data):
    """Kafka's Java client's murmur2 (Utils.murmur2), unsigned 32 bits."""
    m, h = 0x5bd1e995, (0x9747b28c ^ len(data)) & 0xffffffff
    n4 = len(data) // 4 * 4
    for i in range(0, n4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> 24
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = data[n4:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h = ((h ^ rest[0]) * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    return h ^ (h >> 15)


# Kafka's own test vectors (UtilsTest.testMurmur2), as signed ints.
for _text, _want in (("21", -973932308), ("foobar", -790332482), ("abc", 479470107),
                     ("a-little-bit-long-string", -985981536),
                     ("a-little-bit-longer-string", -1486304829)):
    assert murmur2(_text.encode()) == _want & 0xffffffff, _text


def java_partition(key, partitions):
    """Where Java's default partitioner (and Debezium) puts a keyed record."""
    return (murmur2(key.encode()) & 0x7fffffff) % partitions


def partition_counts(kafka):
    p = subprocess.run(["kcat", "-L", "-J", "-b", kafka.bootstrap], capture_output=True,
                       text=True, timeout=60, check=True)
    return {t["topic"]: len(t["partitions"]) for t in json.loads(p.stdout)["topics"]}


def without_processing_time(line):
    """A Debezium value without its top-level ts_ms/us/ns (pgstream's clock
    when it wrote the event; source's, the commit's, stays, but for a
    non-transactional message, which has no commit)."""
    ev = json.loads(line)
    src = ev.get("source", {})
    for d in (ev, src if src.get("txId") is None else {}):
        for f in ("ts_ms", "ts_us", "ts_ns"):
            d.pop(f, None)
    return json.dumps(ev, sort_keys=True)


def check_headers(m, ev):
    h = m["headers"]
    assert h["lsn"] == ev["lsn"], (h, ev)
    if ev["xid"] is None:
        assert "commit_lsn" not in h and "xid" not in h, h
    else:
        assert h["commit_lsn"] == ev["commit_lsn"] and h["xid"] == str(ev["xid"]), (h, ev)


def expected_key(ev):
    if ev["op"] == "message":
        return json.dumps({"prefix": ev["prefix"]}, separators=(",", ":"))
    keys = KEYS.get(ev["table"])
    if ev["op"] == "truncate" or not keys:
        return None
    row = ev["old"] if ev["op"] == "delete" else ev["new"]
    return json.dumps({k: row[k] for k in keys}, separators=(",", ":"), ensure_ascii=False)


# The tables of the operations test and their key columns, in column order.
KEYS = {"users": ["id"], "t_idx": ["a", "b"], "t_nokey": [], "odd name": ["k ey"]}

OPS = [
    "CREATE TABLE users (id int PRIMARY KEY, name text, n numeric)",
    "CREATE TABLE t_idx (a int NOT NULL, b text NOT NULL, c text)",
    "CREATE UNIQUE INDEX t_idx_ab ON t_idx (a, b)",
    "ALTER TABLE t_idx REPLICA IDENTITY USING INDEX t_idx_ab",
    "CREATE TABLE t_nokey (x int, y text)",
    "CREATE SCHEMA \"other schema\"",
    "CREATE TABLE \"other schema\".\"odd name\" (\"k ey\" text PRIMARY KEY, v jsonb)",
    "INSERT INTO users VALUES (1, 'a', 1.50), (2, 'b\u00e9\"\\n', 2), (3, 'c', NULL)",
    "UPDATE users SET name = 'a2' WHERE id = 1",
    "UPDATE users SET id = 20 WHERE id = 2",
    "DELETE FROM users WHERE id = 3",
    "INSERT INTO t_idx VALUES (1, 'x', 'c1'), (2, 'y', 'c2')",
    "UPDATE t_idx SET c = 'c3' WHERE a = 1",
    "UPDATE t_idx SET b = 'z' WHERE a = 2",
    "DELETE FROM t_idx WHERE a = 1",
    "INSERT INTO t_nokey VALUES (1, 'one'), (2, 'two')",
    "INSERT INTO \"other schema\".\"odd name\" VALUES ('k\u00e9 1', '{\"j\": [1, 2]}')",
    "DELETE FROM \"other schema\".\"odd name\"",
    "SELECT pg_logical_emit_message(true, 'app', 'hello')",
    "SELECT pg_logical_emit_message(false, 'app', 'outside')",
    "TRUNCATE users, t_idx",
]


def topic_of(prefix, ev):
    def clean(s):
        return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in s)
    if ev["op"] == "message":
        return prefix + ".messages"
    return "%s.%s.%s" % (prefix, clean(ev["schema"]), clean(ev["table"]))


class Operations(unittest.TestCase):
    def test_every_op_lands_in_its_topic(self):
        for s in ("s_ops_json", "s_ops_kafka", "s_ops_fixed", "s_ops_dbz", "s_ops_dbzk"):
            new_slot(s)
        for stmt in OPS:
            C.sql(stmt)
        end = C.current_lsn()
        ref = run_to(end, "s_ops_json")
        lines = ref.stdout().splitlines()
        ref.close()
        p = run_to(end, "s_ops_kafka", *kafka_args("ops"))
        self.assertEqual(p.stdout(), "")
        self.assertGreaterEqual(wait_slot_inactive(C, "s_ops_kafka"), end)
        p.close()

        topics = K.topics("ops")
        msgs = [m for t in topics for m in K.read(t)]
        values = [m for m in msgs if m["payload"] is not None]
        # The same bytes as --format json, each event once.
        self.assertEqual(sorted(m["payload"] for m in values), sorted(lines))
        by_value = {m["payload"]: m for m in values}
        tombstones = {}
        for m in msgs:
            if m["payload"] is None:
                tombstones.setdefault((m["topic"], m["key"]), []).append(m)
        want_tombstones = 0
        for line in lines:
            ev = json.loads(line)
            m = by_value[line]
            self.assertEqual(m["topic"], topic_of("ops", ev), line)
            self.assertEqual(m["key"], expected_key(ev), line)
            check_headers(m, ev)
            if ev["op"] == "delete" and m["key"] is not None:
                # the tombstone right behind it, in its partition
                t = [x for x in tombstones.get((m["topic"], m["key"]), [])
                     if x["headers"]["lsn"] == ev["lsn"]]
                self.assertEqual(len(t), 1, line)
                self.assertEqual((t[0]["partition"], t[0]["offset"]),
                                 (m["partition"], m["offset"] + 1))
                check_headers(t[0], ev)
                want_tombstones += 1
            if ev["op"] == "update" and "old" in ev and KEYS[ev["table"]]:
                old_key = json.dumps({k: ev["old"][k] for k in KEYS[ev["table"]]},
                                     separators=(",", ":"))
                if old_key != m["key"]:
                    t = [x for x in tombstones.get((m["topic"], old_key), [])
                         if x["headers"]["lsn"] == ev["lsn"]]
                    self.assertEqual(len(t), 1, "no tombstone for the old key: " + line)
                    want_tombstones += 1
        self.assertEqual(sum(len(v) for v in tombstones.values()), want_tombstones)
        self.assertGreaterEqual(want_tombstones, 5)  # 3 deletes + 2 key changes
        # Per partition, the order --format json has.
        order = {line: i for i, line in enumerate(lines)}
        for t in topics:
            parts = {}
            for m in values:
                if m["topic"] == t:
                    parts.setdefault(m["partition"], []).append(order[m["payload"]])
            for idx in parts.values():
                self.assertEqual(idx, sorted(idx))
        self.assertIn("ops.other_schema.odd_name", topics)
        # Keyed records (tombstones too) where Java's murmur2 partitioner
        # puts them: the partitioner is murmur2_random, not librdkafka's
        # consistent_random (CRC32).
        parts = partition_counts(K)
        keyed = [m for m in msgs if m["key"] is not None]
        for m in keyed:
            self.assertEqual(m["partition"], java_partition(m["key"], parts[m["topic"]]), m)
        self.assertGreater(len({m["partition"] for m in keyed}), 1)

        # One fixed topic, no tombstones.
        p = run_to(end, "s_ops_fixed", *kafka_args("fixed", "--kafka-topic", "fixed.all",
                                                   "--kafka-tombstones=false"))
        p.close()
        self.assertEqual(K.topics("fixed"), ["fixed.all", "fixed.messages"])
        fixed = K.read("fixed.all") + K.read("fixed.messages")
        self.assertTrue(all(m["payload"] is not None for m in fixed))
        self.assertEqual(sorted(m["payload"] for m in fixed), sorted(lines))

        # --format debezium: the values are its envelopes, as it prints them.
        ref = run_to(end, "s_ops_dbz", "--format", "debezium", "--topic-prefix", "dbz")
        dbz = ref.stdout().splitlines()
        ref.close()
        p = run_to(end, "s_ops_dbzk", "--format", "debezium", *kafka_args("dbz"))
        p.close()
        got = [m for t in K.topics("dbz") for m in K.read(t)]
        self.maxDiff = None
        self.assertEqual(sorted(without_processing_time(m["payload"]) for m in got
                                if m["payload"] is not None),
                         sorted(without_processing_time(x) for x in dbz))
        self.assertEqual(sum(m["payload"] is None for m in got), want_tombstones)
        # A key change, users' id 2 -> 20: Debezium's delete under the old
        # key, its tombstone right behind it, the create under the new key.
        users = K.read("dbz.public.users")
        old = [m for m in users if m["key"] == '{"id":2}']
        self.assertEqual([m["payload"] and json.loads(m["payload"])["op"] for m in old],
                         ["c", "d", None])
        self.assertEqual((old[2]["partition"], old[2]["offset"]),
                         (old[1]["partition"], old[1]["offset"] + 1))
        new = [json.loads(m["payload"]) for m in users if m["key"] == '{"id":20}']
        self.assertEqual([(e["op"], e["after"]["id"]) for e in new], [("c", 20)])
        print("operations: %d events read back from %d topics, %d tombstones, %d keyed records"
              " each in murmur2's partition; fixed topic: %d; debezium: %d"
              % (len(values), len(topics), want_tombstones, len(keyed), len(fixed), len(got)),
              flush=True)
        STATS.checked += len(values) + len(fixed) + len(got)
        for s in ("s_ops_dbz", "s_ops_dbzk"):
            drop_slot(s)


class Snapshot(unittest.TestCase):
    def test_snapshot_to_kafka(self):
        """--snapshot initial into Kafka: each row once as a read event in its
        table's topic, keyed by its primary key, then the stream; the
        permanent slot appears only once every read was reported delivered,
        so a kill -9 during the snapshot leaves none and the next start
        snapshots again."""
        C.sql("CREATE TABLE snap_k (id int PRIMARY KEY, v text)")
        C.sql("INSERT INTO snap_k SELECT g, 'v' || g FROM generate_series(1, 5000) g")  # under the queue bound
        C.sql("CREATE PUBLICATION pub_snapk FOR TABLE snap_k")  # whatever ran before
        K.create("snapk.public.snap_k")
        # Slow brokers (every answer 3 s late): every row is read and
        # queued well before the first delivery report.
        for b in (1, 2, 3):
            K.inject("rtt %d 3000" % b)
        p = PgStream(C, "--snapshot", "initial", *kafka_args("snapk"), slot="s_snapk", pub="pub_snapk").start()
        try:
            p.wait_stderr("snapshot of 1 tables", timeout=60)
            time.sleep(1.5)
            self.assertIsNone(p.proc.poll(), p.stderr())
            slots = [r[0] for r in C.sql("SELECT slot_name FROM pg_replication_slots")]
            self.assertNotIn("s_snapk", slots, "the slot exists before Kafka has the rows")
            p.kill()
        finally:
            for b in (1, 2, 3):
                K.inject("rtt %d 0" % b)
            p.close()
        slots = [r[0] for r in C.sql("SELECT slot_name FROM pg_replication_slots")]
        self.assertNotIn("s_snapk", slots)
        p = PgStream(C, "--snapshot", "initial", *kafka_args("snapk"), slot="s_snapk", pub="pub_snapk").start()
        try:
            p.wait_stderr("listening for changes...", timeout=120)
            C.sql("UPDATE snap_k SET v = 'after' WHERE id = 7")
            end = C.current_lsn()
            p.wait_for(lambda: C.slot_confirmed("s_snapk") >= end, timeout=60,
                       what="the update acknowledged")
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()
        msgs = K.read("snapk.public.snap_k")
        reads = {}
        for m in msgs:
            ev = json.loads(m["payload"])
            if ev["op"] == "read":
                self.assertEqual(m["key"], '{"id":%d}' % ev["new"]["id"])
                self.assertEqual(m["headers"].get("lsn"), ev["lsn"])
                self.assertNotIn("commit_lsn", m["headers"])
                reads.setdefault(ev["lsn"], {})[ev["new"]["id"]] = (m["partition"], ev["new"])
        # The run that completed read every row once (the killed one may
        # have sent some too, at its own consistent point).
        last = reads[max(reads, key=lsn_int)]
        self.assertEqual(len(last), 5000)
        self.assertLessEqual(len(reads), 2)
        ups = [json.loads(m["payload"]) for m in msgs if json.loads(m["payload"])["op"] == "update"]
        self.assertEqual([u["new"] for u in ups], [{"id": 7, "v": "after"}])
        # Same key, same partition: the update lands where its row's read did.
        part = [m["partition"] for m in msgs if json.loads(m["payload"])["op"] == "update"][0]
        self.assertEqual(last[7][0], part)


class FullIdentity(unittest.TestCase):
    """REPLICA IDENTITY FULL: pgoutput flags every column as the key, so a
    key made of them would move a row between partitions as it changes.
    pgstream keys such a table by its primary key from the catalog; a table
    without one by the whole row."""

    def test_full_identity_keyed_by_primary_key(self):
        new_slot("s_full")
        for stmt in [
            "CREATE TABLE full_pk (id int PRIMARY KEY, v text, n int)",
            "ALTER TABLE full_pk REPLICA IDENTITY FULL",
            "CREATE TABLE full_nokey (x int, y text)",
            "ALTER TABLE full_nokey REPLICA IDENTITY FULL",
            "INSERT INTO full_pk SELECT g, 'v' || g, g FROM generate_series(1, 3) g",
        ] + ["UPDATE full_pk SET v = 'u%d', n = %d WHERE id = 1" % (i, i) for i in range(12)] + [
            "UPDATE full_pk SET id = 22 WHERE id = 2",
            "DELETE FROM full_pk WHERE id = 3",
            "INSERT INTO full_nokey VALUES (1, 'one')",
            "UPDATE full_nokey SET y = 'uno' WHERE x = 1",
        ]:
            C.sql(stmt)
        end = C.current_lsn()
        run_to(end, "s_full", *kafka_args("full")).close()
        msgs = K.read("full.public.full_pk")
        values = [(m, json.loads(m["payload"])) for m in msgs if m["payload"] is not None]
        ups = [m for m, ev in values if ev["op"] == "update" and ev["new"]["id"] == 1]
        self.assertEqual(len(ups), 12)
        # Under the whole-row key these 12 updates would spread over the
        # topic's 4 partitions; by the primary key they stay in one.
        self.assertEqual({m["key"] for m in ups}, {'{"id":1}'},
                         "one row of a FULL-identity table under several keys")
        self.assertEqual(len({m["partition"] for m in ups}), 1)
        ins = [m for m, ev in values if ev["op"] == "insert" and ev["new"]["id"] == 1]
        self.assertEqual(ins[0]["partition"], ups[0]["partition"])
        # The key-changing UPDATE: the new key, and a tombstone for the old.
        moved = [(m, ev) for m, ev in values if ev["op"] == "update" and ev["new"]["id"] == 22]
        self.assertEqual(len(moved), 1)
        m, ev = moved[0]
        self.assertEqual(m["key"], '{"id":22}')
        tombs = [t for t in msgs if t["payload"] is None]
        old = [t for t in tombs if t["key"] == '{"id":2}']
        self.assertEqual(len(old), 1, tombs)
        self.assertEqual(old[0]["headers"]["lsn"], ev["lsn"])
        # The DELETE keyed and tombstoned by its key; no other tombstone
        # (the whole-row key sent one for every update of id 1).
        dele = [m for m, ev in values if ev["op"] == "delete"]
        self.assertEqual([m["key"] for m in dele], ['{"id":3}'])
        self.assertEqual(sorted(t["key"] for t in tombs), ['{"id":2}', '{"id":3}'])
        # Without a primary key: the whole row, as pgoutput flags it.
        nk = [m for m in K.read("full.public.full_nokey")]
        self.assertEqual(sorted(m["key"] for m in nk if m["payload"] is not None),
                         ['{"x":1,"y":"one"}', '{"x":1,"y":"uno"}'])
        print("full identity: %d messages of full_pk read back, 12 updates of one row under"
              " one key in partition %d, %d tombstones; full_nokey keyed by the row"
              % (len(msgs), ups[0]["partition"], len(tombs)), flush=True)
        STATS.checked += len(values) + len(nk)


class TxEvents(unittest.TestCase):
    """--tx-events into Kafka, as Debezium's transaction metadata: each
    transaction's begin and commit events on a topic of their own
    ({prefix}.transaction, or --kafka-transaction-topic), keyed by the
    transaction so that both land in one partition in order; the changes in
    their tables' topics with their place in the transaction. The same
    bytes as --tx-events to stdout, with and without exactly once."""

    def test_boundaries_on_their_topic(self):
        new_slot("s_tx_base")
        C.sql("CREATE TABLE tx_a (id int PRIMARY KEY, v text)")
        C.sql("CREATE TABLE tx_b (id int PRIMARY KEY)")
        conn = C.connect()
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("INSERT INTO tx_a VALUES (1, 'x'), (2, 'y')")
            cur.execute("INSERT INTO tx_b VALUES (1)")
            cur.execute("SELECT pg_logical_emit_message(true, 'app', 'in')")
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("UPDATE tx_a SET v = 'z' WHERE id = 1")
            cur.execute("DELETE FROM tx_b")
        conn.commit()
        conn.close()
        end = C.current_lsn()
        ref = run_to(end, slot_copy("s_tx_base", "s_tx_json"), "--tx-events")
        lines = ref.stdout().splitlines()
        ref.close()
        drop_slots("s_tx_json")
        evs = [json.loads(line) for line in lines]
        self.assertEqual([e["op"] for e in evs],
                         ["begin", "insert", "insert", "insert", "message", "commit",
                          "begin", "update", "delete", "commit"])
        bounds = [line for line, e in zip(lines, evs) if e["op"] in ("begin", "commit")]

        for slot, prefix, topic, more in (
                ("s_tx_kafka", "txk", "txk.transaction", ()),
                ("s_tx_named", "txn", "txn.meta", ("--kafka-transaction-topic", "{prefix}.meta")),
                ("s_tx_eos", "txe", "txe.transaction", ("--kafka-exactly-once",))):
            with self.subTest(topic=topic):
                run_to(end, slot_copy("s_tx_base", slot), "--tx-events",
                       *kafka_args(prefix, *more)).close()
                drop_slots(slot)
                topics = K.topics(prefix)
                self.assertIn(topic, topics)
                tx = K.read(topic)
                # exactly once: the checkpoint records of its offsets topic
                # aside, every value once
                got = [m["payload"] for m in tx]
                self.assertEqual(sorted(got), sorted(bounds))
                for m in tx:
                    ev = json.loads(m["payload"])
                    self.assertEqual(m["key"], '{"xid":%d}' % ev["xid"])
                    check_headers(m, ev)
                # a transaction's begin before its commit, in one partition
                for xid in {json.loads(b)["xid"] for b in bounds}:
                    mine = [m for m in tx if json.loads(m["payload"])["xid"] == xid]
                    self.assertEqual(len({m["partition"] for m in mine}), 1)
                    self.assertEqual([json.loads(m["payload"])["op"] for m in mine],
                                     ["begin", "commit"])
                data = [m["payload"] for t in topics if t != topic and ".pgstream." not in t
                        for m in K.read(t) if m["payload"] is not None]
                self.assertEqual(sorted(data),
                                 sorted(set(lines) - set(bounds)))

        # --format debezium --debezium-schemas: the connector's transaction
        # metadata values and keys (ids "xid:lsn", BEGIN's and END's
        # apart), and each change's transaction block counted by its END
        with self.subTest(topic="txd.transaction"):
            p = PgStream(C, "--end-lsn", lsn_str(end), "--tx-events", "--debezium-schemas",
                         *kafka_args("txd"), slot=slot_copy("s_tx_base", "s_tx_dbz"),
                         fmt="debezium")
            self.assertEqual(p.run(), 0, p.stderr())
            p.close()
            drop_slots("s_tx_dbz")
            tx = K.read("txd.transaction")
            self.assertEqual(len(tx), len(bounds))
            ends = {}
            for m in tx:
                v, k = json.loads(m["payload"]), json.loads(m["key"])
                self.assertEqual(v["schema"]["name"],
                                 "io.debezium.connector.common.TransactionMetadataValue")
                self.assertEqual(k["schema"]["name"],
                                 "io.debezium.connector.common.TransactionMetadataKey")
                self.assertEqual(k["payload"], {"id": v["payload"]["id"]})
                if v["payload"]["status"] == "END":
                    ends[v["payload"]["id"].split(":")[0]] = v["payload"]
            self.assertEqual(sorted(ends), sorted(str(json.loads(b)["xid"]) for b in bounds
                                                  if json.loads(b)["op"] == "commit"))
            changes = [json.loads(m["payload"])["payload"] for t in ("txd.public.tx_a",
                                                                     "txd.public.tx_b")
                       for m in K.read(t) if m["payload"] is not None]
            for xid, end_ev in ends.items():
                mine = [c for c in changes if c["transaction"]["id"].startswith(xid + ":")]
                self.assertEqual(sorted(c["transaction"]["total_order"] for c in mine),
                                 list(range(1, end_ev["event_count"] + 1)))
                counts = {}
                for c in mine:
                    t = "%s.%s" % (c["source"]["schema"], c["source"]["table"])
                    counts[t] = counts.get(t, 0) + 1
                self.assertEqual({d["data_collection"]: d["event_count"]
                                  for d in end_ev["data_collections"]}, counts)
        drop_slots("s_tx_base")
        print("tx events: %d boundaries on their topic in four runs (default, named, "
              "exactly once, debezium with schemas)" % len(bounds), flush=True)
        STATS.checked += 3 * len(lines)


def without_times(ev):
    """A debezium value without its processing times (each run's own) and
    its source.name (each run's --topic-prefix)."""
    if "payload" in ev:
        ev = ev["payload"]
    ev = {k: v for k, v in ev.items() if k not in ("ts_ms", "ts_us", "ts_ns")}
    ev["source"] = dict(ev["source"], name=None)
    return json.dumps(ev, sort_keys=True)


class DebeziumFormat(unittest.TestCase):
    """--format debezium into Kafka: the connector's values and keys, a key
    change as its delete under the old key, the old key's tombstone, then
    the create under the new (RelationalChangeRecordEmitter's primary key
    update); with --debezium-schemas, keys and values as the JSON converter
    writes them with schemas.enable=true."""

    def test_values_keys_and_key_change(self):
        new_slot("s_dbz_base")
        for stmt in ("CREATE TABLE dk (id int PRIMARY KEY, v text)",
                     "CREATE TABLE dk_full (x int, y text)",
                     "ALTER TABLE dk_full REPLICA IDENTITY FULL",
                     "INSERT INTO dk_full VALUES (1, 'one')",
                     "UPDATE dk_full SET y = 'uno'",
                     "INSERT INTO dk VALUES (1, 'a'), (2, 'b')",
                     "UPDATE dk SET v = 'c' WHERE id = 1",
                     "UPDATE dk SET id = 3 WHERE id = 2",
                     "DELETE FROM dk WHERE id = 1",
                     "SELECT pg_logical_emit_message(true, 'app', 'hi')"):
            C.sql(stmt)
        end = C.current_lsn()
        ref = PgStream(C, "--end-lsn", lsn_str(end), slot=slot_copy("s_dbz_base", "s_dbz_out"),
                       fmt="debezium")
        self.assertEqual(ref.run(), 0, ref.stderr())
        want = [json.loads(line) for line in ref.stdout().splitlines()]
        ref.close()
        drop_slots("s_dbz_out")
        self.assertEqual([e["op"] for e in want], ["c", "u", "c", "c", "u", "d", "c", "d", "m"])
        key_schema = {"type": "struct", "fields": [{"type": "int32", "optional": False,
                                                     "field": "id"}],
                      "optional": False, "name": "dzs.public.dk.Key"}
        for slot, prefix, more in (("s_dbz_k", "dz", ()),
                                   ("s_dbz_ks", "dzs", ("--debezium-schemas",))):
            with self.subTest(prefix=prefix):
                p = PgStream(C, "--end-lsn", lsn_str(end), *kafka_args(prefix), *more,
                             slot=slot_copy("s_dbz_base", slot), fmt="debezium")
                self.assertEqual(p.run(), 0, p.stderr())
                p.close()
                drop_slots(slot)
                rows = K.read(prefix + ".public.dk")
                msgs = K.read(prefix + ".messages")
                def op(m):
                    """A message's op, None for a tombstone."""
                    if m["payload"] is None:
                        return None
                    v = json.loads(m["payload"])
                    return (v["payload"] if more else v)["op"]
                # no primary key (REPLICA IDENTITY FULL): the connector's null key
                # (so spread over the partitions, in no order between them)
                full = K.read(prefix + ".public.dk_full")
                self.assertEqual(sorted((m["key"] or "", op(m)) for m in full),
                                 [("", "c"), ("", "u")])
                self.assertTrue(all(m["key"] is None for m in full))

                def key(m):
                    k = json.loads(m["key"])
                    if more:
                        self.assertEqual(set(k), {"schema", "payload"})
                        if "prefix" not in k["payload"]:
                            self.assertEqual(k["schema"], key_schema)
                        return k["payload"]
                    return k
                values = [m for m in rows + msgs + full if m["payload"] is not None]
                self.assertEqual(sorted(without_times(json.loads(m["payload"])) for m in values),
                                 sorted(without_times(e) for e in want))
                for m in values:
                    ev = json.loads(m["payload"])
                    ev = ev["payload"] if more else ev
                    row = ev.get("after") or ev.get("before")
                    if m in full:
                        continue
                    self.assertEqual(key(m), {"prefix": "app"} if ev["op"] == "m"
                                     else {"id": row["id"]})
                if more:
                    self.assertEqual(json.loads(msgs[0]["key"])["schema"]["name"],
                                     "io.debezium.connector.postgresql.MessageKey")
                # the key change: delete of id 2, its tombstone next, in one
                # partition; the create of id 3 under its own key
                by_id = {}
                for m in rows:
                    by_id.setdefault(key(m)["id"], []).append(m)
                two = by_id[2]
                self.assertEqual([op(m) for m in two], ["c", "d", None])
                self.assertEqual(len({m["partition"] for m in two}), 1)
                self.assertEqual([m["offset"] for m in two[1:]],
                                 [two[1]["offset"], two[1]["offset"] + 1])
                self.assertEqual([op(m) for m in by_id[3]], ["c"])
                # id 1: created, updated, deleted, its tombstone
                self.assertEqual([op(m) for m in by_id[1]], ["c", "u", "d", None])
        drop_slots("s_dbz_base")
        print("debezium: %d events in Kafka as on stdout, keys and the key change's delete, "
              "tombstone, create, with and without schemas" % len(want), flush=True)
        STATS.checked += 2 * len(want)


class ReferenceWorkload(unittest.TestCase):
    N = 2000

    def test_workload_counted_back(self):
        workload = os.path.join(ROOT, "bench", "workload")
        psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", C.url()]
        subprocess.run(psql + ["-f", os.path.join(workload, "schema.sql")], check=True,
                       capture_output=True)
        new_slot("s_bench")
        subprocess.run(psql + ["-v", "n=%d" % self.N, "-f", os.path.join(workload, "workload.sql")],
                       check=True, capture_output=True)
        end = C.current_lsn()
        p = run_to(end, "s_bench", *kafka_args("bench"))
        p.close()
        msgs = K.read("bench.public.bench_orders")
        values = [m for m in msgs if m["payload"] is not None]
        tombs = [m for m in msgs if m["payload"] is None]
        n = self.N
        ops = {}
        for m in values:
            op = json.loads(m["payload"])["op"]
            ops[op] = ops.get(op, 0) + 1
        self.assertEqual(ops, {"insert": n, "update": n // 2 + n // 4, "delete": n // 4})
        self.assertEqual(len(tombs), n // 4)
        # Each key in one partition, its changes in WAL order.
        part_of, last = {}, {}
        for m in msgs:
            self.assertEqual(part_of.setdefault(m["key"], m["partition"]), m["partition"])
            pos = (lsn_int(m["headers"]["commit_lsn"]), lsn_int(m["headers"]["lsn"]))
            self.assertGreaterEqual(pos, last.get(m["key"], (0, 0)))
            last[m["key"]] = pos
        self.assertGreater(len(set(part_of.values())), 1)
        print("workload: %d changes + %d tombstones read back, %d keys over %d partitions"
              % (len(values), len(tombs), len(part_of), len(set(part_of.values()))), flush=True)
        STATS.checked += len(values)


def sample_confirmed(slot, seconds, every=0.1):
    out = []
    t_end = time.time() + seconds
    while time.time() < t_end:
        out.append(C.slot_confirmed(slot))
        time.sleep(every)
    return out


# The 2.0.2 mock does not check an idempotent producer's sequence numbers:
# with several requests in flight to a partition, an injected error on one
# and success on the next is, to librdkafka, proof that the first was
# persisted (a real broker refuses the next one, OUT_OF_ORDER_SEQUENCE_NUMBER,
# until the first is retried), so its messages are reported delivered and
# the mock has lost them. One request in flight keeps that inference true
# for the injected-errors run; the brokers-down run uses the defaults.
ONE_IN_FLIGHT = ("--kafka-property", "max.in.flight.requests.per.connection=1")


class BrokerFaults(unittest.TestCase):
    @needs_mock
    def test_errors_and_brokers_down_under_load(self):
        slot, table = "s_faults", "ledger_faults"
        new_slot(slot)
        w = Workload(C, table)
        acks, bounds = [], []
        topic = "faults.public." + table
        K.create(topic)

        def ended():
            acks.append(wait_slot_inactive(C, slot))
            bounds.append(partition_ends(topic))

        p = PgStream(C, "--status-interval", "0.3", *kafka_args("faults", *ONE_IN_FLIGHT),
                     slot=slot).start()
        try:
            w.start(10 ** 9, sizes=(1, 5, 20, 100), big_every=50, big_size=1000, pause=0.005,
                    rollback_every=9)
            p.wait_for(lambda: C.slot_confirmed(slot) > 0, 60, "a first acknowledgement")
            # Retriable Produce errors: NOT_LEADER_FOR_PARTITION,
            # REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS.
            for code in (6, 7, 19):
                K.inject("errors 20 %d" % code)
                time.sleep(1)
            self.assertEqual(p.stop(), 0, p.stderr())
            STATS.fault("sigterm")
            p.close()
            ended()
            p = PgStream(C, "--status-interval", "0.3", *kafka_args("faults"), slot=slot).start()
            p.wait_for(lambda: C.slot_confirmed(slot) > acks[-1], 60, "acknowledgements")
            # Every broker down: nothing can be delivered, so nothing more
            # may be acknowledged, and memory must stay flat.
            for b in (1, 2, 3):
                K.inject("down %d" % b)
            # Reports of what was delivered before, and their status
            # updates: until the slot has not moved for 2 s.
            frozen, still, deadline = C.slot_confirmed(slot), time.time(), time.time() + 30
            while time.time() - still < 2 and time.time() < deadline:
                time.sleep(0.2)
                now = C.slot_confirmed(slot)
                if now != frozen:
                    frozen, still = now, time.time()
            wal_before = C.current_lsn()
            rss = []
            t_end = time.time() + 6
            while time.time() < t_end:
                self.assertEqual(C.slot_confirmed(slot), frozen,
                                 "acknowledged while no broker could take anything")
                rss.append(rss_kb(p.proc.pid))
                time.sleep(0.2)
            self.assertGreater(C.current_lsn(), wal_before + 100000, "the workload stalled")
            self.assertTrue(walsender_pids(C, slot), "the Postgres connection was lost")
            half = len(rss) // 2
            self.assertLessEqual(max(rss[half:]), max(rss[:half]) + 4096,
                                 "RSS grew while the brokers were down: %s" % rss)
            if not SANITIZED:
                self.assertLess(max(rss), 64 * 1024, rss)
            for b in (1, 2, 3):
                K.inject("up %d" % b)
            p.wait_for(lambda: C.slot_confirmed(slot) > frozen, 60, "acknowledgements to resume")
            # Down again, and pgstream killed while its queue holds what
            # the brokers never got: none of it was acknowledged.
            for b in (1, 2, 3):
                K.inject("down %d" % b)
            time.sleep(2)
            p.kill()
            STATS.fault("kill9")
            for b in (1, 2, 3):
                K.inject("up %d" % b)
            p.close()
            ended()
            p = PgStream(C, "--status-interval", "0.3", *kafka_args("faults"), slot=slot).start()
            time.sleep(3)
        finally:
            w.stop()
        end = C.current_lsn()
        p.wait_for(lambda: C.slot_confirmed(slot) >= end, 120, "the end acknowledged")
        self.assertEqual(p.stop(), 0, p.stderr())
        p.close()
        check_volume(w)
        runs = [events_of(r) for r in split_runs(K.read(topic), bounds)]
        checked, repeats = w.verify(runs, acks)
        STATS.checked += checked
        print("broker faults: %d transactions, %d rows checked in %d runs, %d repeats; "
              "acknowledged LSN frozen at %s while every broker was down, RSS %d-%d kB"
              % (len(w.committed), checked, len(runs), repeats, lsn_str(frozen), min(rss),
                 max(rss)), flush=True)


def partition_leaders(kafka, topic):
    p = subprocess.run(["kcat", "-L", "-J", "-b", kafka.bootstrap, "-t", topic],
                       capture_output=True, text=True, timeout=60, check=True)
    t = [t for t in json.loads(p.stdout)["topics"] if t["topic"] == topic][0]
    return {x["partition"]: x["leader"] for x in t["partitions"]}


class SlowPartition(unittest.TestCase):
    @needs_mock
    def test_one_slow_broker_holds_the_ack_not_the_others(self):
        """Delivery reports complete out of order across partitions: with
        one broker answering 5 s late, the rows of the partitions it leads
        hold the acknowledgement back (never past the first row not yet
        in Kafka) while the other partitions' rows keep being delivered;
        once it answers in time again, everything is delivered and
        acknowledged."""
        slot, table, rows, parts = "s_slow", "slow_k", 200, 6
        topic = "slow.public." + table
        C.sql("CREATE TABLE %s (id int PRIMARY KEY)" % table)
        new_slot(slot)
        K.create(topic, parts)
        leaders = partition_leaders(K, topic)
        slow = leaders[0]
        slow_parts = {q for q, b in leaders.items() if b == slow}
        self.assertLess(len(slow_parts), parts)
        p = PgStream(C, "--status-interval", "0.1", "--log-level", "debug",
                     *kafka_args("slow"), slot=slot).start()
        try:
            p.wait_stderr("listening for changes", 60)
            C.sql("INSERT INTO %s VALUES (0)" % table)  # the topic's metadata known
            p.wait_for(lambda: high_watermarks(K, topic, parts) == 1, 30, "the first row")
            K.inject("rtt %d 5000" % slow)
            t0 = time.time()
            before = {}
            # One connection: a new one per statement would take seconds
            # on a loaded machine, and the first held row's report comes 5 s
            # after it was produced.
            conn = C.connect()
            try:
                with conn.cursor() as cur:
                    for i in range(1, rows + 1):
                        cur.execute("SELECT pg_current_wal_insert_lsn()::text")
                        before[i] = lsn_int(cur.fetchone()[0])
                        cur.execute("INSERT INTO %s VALUES (%%s)" % table, (i,))
            finally:
                conn.close()
            time.sleep(1.5)
            sent = [lsn_int(x) for x in re.findall(r"acknowledged ([0-9A-F]+/[0-9A-F]+)",
                                                   p.stderr())]
            acked = max(sent + [C.slot_confirmed(slot)])
            # (else the slow broker's first reports may have come)
            self.assertLess(time.time() - t0, 4.5, "the machine too slow for this test")
            # What the other brokers' partitions hold by now (the slow one
            # would answer a read 5 s late too).
            present = set()
            for q in sorted(set(range(parts)) - slow_parts):
                r = subprocess.run(["kcat", "-C", "-e", "-q", "-o", "beginning", "-b",
                                    K.bootstrap, "-t", topic, "-p", str(q), "-f", "%k\\n"],
                                   capture_output=True, text=True, timeout=60, check=True)
                present |= {json.loads(k)["id"] for k in r.stdout.split()}
        finally:
            K.inject("rtt %d 0" % slow)
        STATS.fault("rtt")
        held = [i for i in range(1, rows + 1) if java_partition('{"id":%d}' % i, parts) in slow_parts]
        others = set(range(1, rows + 1)) - set(held)
        self.assertEqual(present, others | {0} if java_partition('{"id":0}', parts) not in
                         slow_parts else others, "the other partitions' rows not all delivered")
        # The slow broker answers every Produce 5 s late: none of its rows
        # can have its delivery report, so nothing from the first is
        # acknowledged.
        missing = held
        self.assertLessEqual(acked, before[missing[0]],
                             "acknowledged past row %d, not yet reported delivered" % missing[0])
        self.assertGreater(max(present), missing[0], "the other partitions were held too")
        end = C.current_lsn()
        p.wait_for(lambda: C.slot_confirmed(slot) >= end, 60, "the end acknowledged")
        self.assertEqual(p.stop(), 0, p.stderr())
        p.close()
        ids = sorted(json.loads(m["key"])["id"] for m in K.read(topic))
        self.assertEqual(ids, list(range(0, rows + 1)))
        print("one slow broker (leading partitions %s of %d): %d of %d rows held back, the"
              " first row %d; acknowledged %s, before it; %d rows past it delivered meanwhile;"
              " then all %d delivered once" % (
                  sorted(slow_parts), parts, len(missing), rows, missing[0], lsn_str(acked),
                  len([i for i in present if i > missing[0]]), len(ids)), flush=True)
        STATS.checked += len(ids)
        drop_slot(slot)


class PermanentError(unittest.TestCase):
    def test_row_over_message_max_bytes(self):
        slot = "s_large"
        C.sql("CREATE TABLE large (id int PRIMARY KEY, pad text)")
        new_slot(slot)
        C.sql("INSERT INTO large SELECT g, 'small' FROM generate_series(1, 10) g")
        before = C.current_lsn()
        C.sql("INSERT INTO large VALUES (11, (SELECT string_agg(md5(g::text), '')"
              " FROM generate_series(1, 10000) g))")  # 320 kB
        after = C.current_lsn()
        C.sql("INSERT INTO large SELECT g, 'small' FROM generate_series(12, 20) g")
        end = C.current_lsn()
        p = PgStream(C, "--status-interval", "0.2", *kafka_args(
            "large", "--kafka-property", "message.max.bytes=100000"), slot=slot)
        rc = p.run(timeout=60)
        err = p.stderr().strip().splitlines()
        p.close()
        self.assertEqual(rc, 1)
        self.assertTrue(err[-1].startswith("pgstream: could not produce to Kafka topic "
                                           "large.public.large (table public.large): the event "
                                           "at "), err)
        self.assertIn("message.max.bytes", err[-1])
        self.assertEqual([x for x in err if x.startswith("pgstream:")], [err[-1]])
        confirmed = wait_slot_inactive(C, slot)
        self.assertLess(confirmed, after, "acknowledged past the event that failed")
        self.assertLessEqual(confirmed, before + 200)
        # What came before may be there (delivered before the failure) or
        # not (purged at exit): it was not acknowledged, so it comes again.
        ids = [json.loads(m["payload"])["new"]["id"] for m in K.read("large.public.large")]
        self.assertLessEqual(set(ids), set(range(1, 11)))
        # Raised, the restart delivers it and what came after.
        p = run_to(end, slot, *kafka_args("large", "--kafka-property", "message.max.bytes=1000000"))
        p.close()
        ids = [json.loads(m["payload"])["new"]["id"] for m in K.read("large.public.large")]
        self.assertEqual(sorted(set(ids)), list(range(1, 21)))
        self.assertGreaterEqual(wait_slot_inactive(C, slot), end)
        print("permanent error: exit 1 with %r; %d events read back after the restart"
              % (err[-1][:90], len(ids)), flush=True)
        STATS.fault("message_too_large")

    @needs_mock
    def test_topic_not_authorized_or_unknown(self):
        """The brokers refuse the topic (a Produce answered
        TOPIC_AUTHORIZATION_FAILED, as when an ACL denies Write; or the
        topic's metadata UNKNOWN_TOPIC_OR_PART, as when auto-creation is
        off): exit 1, one line naming topic, table and LSN with the remedy,
        nothing acknowledged past it; once the brokers allow it, a restart
        delivers everything. (The mock answers a topic's metadata with its
        partitions even when told to fail it with TOPIC_AUTHORIZATION_FAILED,
        which leaves librdkafka 2.0.2 waiting, not failing: hence the
        Produce error for that case.)"""
        for code, remedy in ((29, "grant pgstream's principal Write"), (3, "create the topic")):
            slot, table = "s_refused%d" % code, "refused%d" % code
            topic = "refused.public." + table
            C.sql("CREATE TABLE %s (id int PRIMARY KEY)" % table)
            new_slot(slot)
            before = C.current_lsn()
            C.sql("INSERT INTO %s SELECT g FROM generate_series(1, 10) g" % table)
            end = C.current_lsn()
            K.create(topic, 4)
            K.inject("errors 1 29" if code == 29 else "topic-error %s %d" % (topic, code))
            # (an unknown topic fails its messages after this long)
            args = kafka_args("refused", "--kafka-property", "topic.metadata.propagation.max.ms=2000")
            p = PgStream(C, "--status-interval", "0.2", *args, slot=slot)
            try:
                rc = p.run(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                self.fail("still running after 60 s: %s" % p.stderr()[-3000:])
            err = p.stderr().strip().splitlines()
            p.close()
            self.assertEqual(rc, 1, err)
            self.assertTrue(err[-1].startswith("pgstream: could not produce to Kafka topic %s "
                                               "(table public.%s): the event at " % (topic, table)),
                            err)
            self.assertIn(remedy, err[-1])
            self.assertEqual([x for x in err if x.startswith("pgstream:")], [err[-1]])
            self.assertLessEqual(wait_slot_inactive(C, slot), before + 200,
                                 "acknowledged past the refused events")
            if code != 29:  # (the Produce error was used up)
                K.inject("topic-error %s 0" % topic)
            p = run_to(end, slot, *args)
            p.close()
            ids = sorted(json.loads(m["payload"])["new"]["id"] for m in K.read(topic))
            self.assertEqual(sorted(set(ids)), list(range(1, 11)))
            self.assertGreaterEqual(wait_slot_inactive(C, slot), end)
            print("topic refused (%d): exit 1 with %r; %d events read back after the restart"
                  % (code, err[-1], len(ids)), flush=True)
            STATS.fault("topic_refused_%d" % code)
            STATS.checked += len(ids)
            drop_slot(slot)


class Stops(unittest.TestCase):
    def test_sigterm_under_load(self):
        slot, table = "s_term", "ledger_term"
        new_slot(slot)
        w = Workload(C, table)
        acks, bounds = [], []
        topic = "term.public." + table
        K.create(topic)
        w.start(10 ** 9, big_every=50, big_size=1000, pause=0.005)
        try:
            for r in range(3):
                p = PgStream(C, "--status-interval", "1", *kafka_args("term"), slot=slot).start()
                p.wait_stderr("listening for changes", 60)
                time.sleep(random.uniform(0.5, 2))
                t0 = time.monotonic()
                p.signal(signal.SIGTERM)
                STATS.fault("sigterm")
                rc = p.proc.wait(timeout=30)
                took = time.monotonic() - t0
                self.assertEqual(rc, 0, p.stderr())
                self.assertLess(took, 12)
                p.close()
                acks.append(wait_slot_inactive(C, slot))
                bounds.append(partition_ends(topic))
        finally:
            w.stop()
        p = run_to(C.current_lsn(), slot, *kafka_args("term"))
        p.close()
        check_volume(w)
        runs = [events_of(r) for r in split_runs(K.read(topic), bounds)]
        checked, repeats = w.verify(runs, acks)
        STATS.checked += checked
        print("sigterm: 3 stops under load, %d rows checked, %d repeats" % (checked, repeats),
              flush=True)

    def test_sigterm_inside_million_row_transaction(self):
        """SIGTERM while a 1,000,000-row transaction is being produced:
        exit 0 within the close's bounded flush, the small transactions
        delivered before it acknowledged, nothing of it (it never
        completed) acknowledged, and the restart delivers it whole."""
        # A quarter of it under AddressSanitizer: the same paths, in a
        # fraction of the time (the plain build's run has the million).
        rows, slot = (250000 if SANITIZED else 1000000), "s_bigterm"
        C.sql("CREATE TABLE big_k (id bigint PRIMARY KEY)")
        C.sql("CREATE TABLE around_k (id int PRIMARY KEY)")
        new_slot(slot)
        for i in range(1, 6):
            C.sql("INSERT INTO around_k VALUES (%s)", (i,))
        C.sql("INSERT INTO big_k SELECT g FROM generate_series(1, %s) g", (rows,))
        for i in range(6, 11):
            C.sql("INSERT INTO around_k VALUES (%s)", (i,))
        end = C.current_lsn()
        # The mock keeps 5 MB per partition: room for the whole transaction.
        for prefix in ("bigterm1", "bigterm2"):
            K.create(prefix + ".public.big_k", 96)
        p = PgStream(C, "--status-interval", "0.1", "--log-level", "debug", *kafka_args("bigterm1"),
                     slot=slot).start()
        # Well inside the transaction: a tenth of it delivered, then a few
        # status updates more (every 0.1 s). A walsender reads them only
        # when its socket is full, so an acknowledgement made too early
        # may never reach the slot: what pgstream sent is checked too, in
        # its debug log ("acknowledged LSN").
        p.wait_for(lambda: high_watermarks(K, "bigterm1.public.big_k", 96) > rows // 10, 120,
                   "the big transaction to be streaming")
        time.sleep(0.4)
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        STATS.fault("sigterm_bigtxn")
        rc = p.proc.wait(timeout=60)
        took = time.monotonic() - t0
        err = p.stderr()
        p.close()
        acked = wait_slot_inactive(C, slot)
        self.assertEqual(rc, 0, err)
        self.assertLess(took, 12, "shutdown took %.2f s" % took)
        first = read_keys(K, "bigterm1.public.big_k")
        self.assertGreater(len(first), 0, "the stop came before the transaction")
        self.assertLess(len(first), rows, "the stop came too late to test anything")
        before = K.read("bigterm1.public.around_k")
        self.assertEqual(sorted(json.loads(m["key"])["id"] for m in before), [1, 2, 3, 4, 5])

        p = run_to(end, slot, *kafka_args("bigterm2"), timeout=240)
        p.close()
        second = read_keys(K, "bigterm2.public.big_k")
        # Whole, once, each partition in id order (the WAL's).
        ids = sorted(i for i, _, _ in second)
        self.assertTrue(ids == list(range(1, rows + 1)), "the restart delivered %d of the"
                        " transaction's %d rows, %d distinct" % (len(ids), rows, len(set(ids))))
        last = {}
        for i, part, _ in second:
            self.assertGreater(i, last.get(part, 0))
            last[part] = i
        commits = {c for _, _, c in second}
        self.assertEqual(len(commits), 1)
        big_commit = lsn_int(commits.pop())
        # Delivered and acknowledged: the small transactions before it;
        # never the big one, which SIGTERM cut.
        self.assertGreater(acked, max(lsn_int(m["headers"]["commit_lsn"]) for m in before))
        self.assertLess(acked, big_commit, "acknowledged past the unfinished transaction")
        sent = [lsn_int(x) for x in re.findall(r"acknowledged ([0-9A-F]+/[0-9A-F]+)", err)]
        self.assertTrue(sent, "no acknowledgement in the debug log")
        self.assertLess(max(sent), big_commit, "pgstream acknowledged %s, past the unfinished"
                        " transaction (commit at %s)" % (lsn_str(max(sent)), lsn_str(big_commit)))
        after = K.read("bigterm2.public.around_k")
        self.assertEqual(sorted(json.loads(m["key"])["id"] for m in after), [6, 7, 8, 9, 10])
        print("sigterm in a %d-row transaction: exit 0 after %.2f s, %d of its rows delivered"
              " before the stop, none acknowledged; the restart delivered all %d"
              % (rows, took, len(first), len(second)), flush=True)
        STATS.checked += len(first) + len(second) + 10

    def test_kill_9_at_random_moments(self):
        slot, table = "s_kill", "ledger_kill"
        rounds = 6
        new_slot(slot)
        w = Workload(C, table)
        acks, bounds = [], []
        topic = "kill.public." + table
        K.create(topic)
        if K.mock:
            # Slow brokers: every kill finds messages produced, not yet
            # delivered, which must not have been acknowledged.
            for b in (1, 2, 3):
                K.inject("rtt %d 150" % b)
        w.start(10 ** 9, big_every=50, big_size=1000, rollback_every=7, pause=0.008)
        try:
            for r in range(rounds):
                p = PgStream(C, "--status-interval", random.choice(["0.1", "0.5"]),
                             *kafka_args("kill"), slot=slot).start()
                p.wait_stderr("listening for changes", 60)
                time.sleep(random.expovariate(1 / 0.8))
                p.kill()
                STATS.fault("kill9")
                acks.append(wait_slot_inactive(C, slot))
                bounds.append(partition_ends(topic))
                p.close()
        finally:
            w.stop()
            if K.mock:
                for b in (1, 2, 3):
                    K.inject("rtt %d 0" % b)
        p = run_to(C.current_lsn(), slot, *kafka_args("kill"))
        p.close()
        check_volume(w)
        runs = [events_of(r) for r in split_runs(K.read(topic), bounds)]
        checked, repeats = w.verify(runs, acks)
        STATS.checked += checked
        print("kill -9: %d rounds, %d transactions, %d rows checked, %d repeats"
              % (rounds, len(w.committed), checked, repeats), flush=True)


class BadConfig(unittest.TestCase):
    def refused(self, args, status, mention):
        p = subprocess.run([BIN, "--database-url", C.url(), "--env-file",
                            "/dev/null", *args], capture_output=True, text=True, timeout=60)
        return assert_refused(self, p, mention, status)

    def test_weakened_delivery_warned(self):
        """acks=0/1 or enable.idempotence=false: one warning line at start
        saying what it risks; the defaults none."""
        C.sql("CREATE TABLE weak_k (id int PRIMARY KEY)")
        end = C.current_lsn()
        cases = [
            ((), []),
            (("acks=all",), []),
            (("acks=1", "enable.idempotence=false"),
             ["acks=1: a delivery report means only the partition leader",
              "enable.idempotence=false: librdkafka's retries may duplicate"]),
            (("acks=0", "enable.idempotence=false"), ["acks=0: a delivery report no longer"]),
            (("enable.idempotence=false",), ["enable.idempotence=false"]),
        ]
        for i, (props, says) in enumerate(cases):
            with self.subTest(props=props):
                slot = "s_weak_%d" % i
                new_slot(slot)
                args = [a for prop in props for a in ("--kafka-property", prop)]
                p = run_to(end, slot, *kafka_args("weak", *args))
                lines = [l for l in p.stderr().splitlines() if "delivery weakened" in l]
                p.close()
                self.assertEqual(len(lines), 1 if says else 0, lines)
                for text in says:
                    self.assertIn(text, lines[0])
        print("weakened delivery: %d configurations, the warning where due" % len(cases),
              flush=True)

    def test_bad_kafka_configuration(self):
        kafka = ["--sink", "kafka", "--kafka-brokers", K.bootstrap]
        cases = [
            (kafka + ["--kafka-property", "no.such.thing=1"], 2, "no.such.thing"),
            (kafka + ["--kafka-property", "acks=banana"], 2, "acks"),
            (kafka + ["--kafka-property", "compression.codec=lzma"], 2, "compression.codec"),
            (kafka + ["--kafka-property", "novalue"], 2, "KEY=VALUE"),
            (kafka + ["--kafka-property", "acks=1"], 2, "idempotence"),
            (kafka + ["--kafka-property", "bootstrap.servers=x:1"], 2, "--kafka-brokers"),
            (kafka + ["--kafka-topic", "{prefix}.{db}"], 2, "--kafka-topic"),
            (kafka + ["--kafka-messages-topic", "{table}"], 2, "--kafka-messages-topic"),
            (kafka + ["--tx-events", "--kafka-transaction-topic", "{schema}.tx"], 2,
             "--kafka-transaction-topic"),
            (kafka + ["--topic-prefix", "a/b"], 2, "--topic-prefix"),
            (kafka + ["--format", "pretty"], 2, "--format json"),
            (kafka + ["--output", "/tmp/x"], 2, "--output"),
            (["--sink", "kafka"], 2, "--kafka-brokers"),
            (["--sink", "nats"], 2, "--sink"),
            (["--sink", "file"], 2, "--output"),
        ]
        for args, status, mention in cases:
            with self.subTest(args=args):
                self.refused(args, status, mention)
        # Nobody listening: one line after the connect timeout, exit 1.
        t0 = time.monotonic()
        line = self.refused(["--sink", "kafka", "--kafka-brokers", "127.0.0.1:%d" % 1], 1,
                            "could not connect to Kafka at 127.0.0.1:1")
        self.assertLess(time.monotonic() - t0, 30)
        print("bad configuration: %d refused with exit 2, unreachable: %r"
              % (len(cases), line), flush=True)


if __name__ == "__main__":
    unittest.main()
