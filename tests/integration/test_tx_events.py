"""--tx-events against a real server: a begin and a commit event around
each transaction's events, the commit carrying the event count (and each
table's), every row change and TRUNCATE its position in its transaction;
in the json format and as Debezium's transaction metadata (BEGIN/END
values, the envelope's transaction block, ids txId:LSN) in the debezium
format. Expected values come from the server (txid_current, the json
format's positions) and from counting the statements run here; a
streamed (--streaming) transaction, the filters, and the default (no
boundaries, no positions: the JSON contract unchanged) as well."""

import subprocess
import unittest

from test_streaming import streamed_txns

from harness import BIN, Cluster, PgStream, assert_refused, lsn_int, lsn_str

C = None
TABLES = ["t%d" % i for i in range(10)]


def setUpModule():
    global C
    C = Cluster("logical_decoding_work_mem = '64kB'")
    for t in TABLES:
        C.sql("CREATE TABLE %s (id int PRIMARY KEY, v text)" % t)
    C.sql("CREATE TABLE skipped (id int PRIMARY KEY)")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


def in_txn(*statements):
    """Run statements in one transaction; return its xid."""
    conn = C.connect()
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            for s in statements:
                cur.execute(s)
            cur.execute("SELECT txid_current()")
            xid = cur.fetchone()[0]
        conn.commit()
        return xid
    finally:
        conn.close()


def run(slot, *args, fmt="json"):
    p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), *args, slot=slot, fmt=fmt)
    try:
        rc = p.run()
        if rc != 0:
            raise AssertionError(p.stderr())
        return p.events() if fmt != "pretty" else p.stdout()
    finally:
        p.close()


def new_slots(*names):
    for n in names:
        C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (n,))


# One transaction over the ten tables (more than txmeta's first 8 slots):
# 2 rows in t0, 1 in each other, a message between, then a TRUNCATE.
WORK = (["INSERT INTO t0 VALUES (1, 'a')"] +
        ["INSERT INTO %s VALUES (1, 'x')" % t for t in TABLES[1:]] +
        ["SELECT pg_logical_emit_message(true, 'app', 'between')",
         "UPDATE t0 SET v = 'b' WHERE id = 1",
         "INSERT INTO skipped VALUES (1)",
         "TRUNCATE t9"])


class Boundaries(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        new_slots("j", "d", "plain", "p", "flt")
        cls.xid1 = in_txn(*WORK)
        cls.xid2 = in_txn("DELETE FROM t1 WHERE id = 1")
        cls.xid3 = in_txn("INSERT INTO skipped VALUES (2)")  # all filtered below
        cls.json = run("j", "--tx-events")
        cls.dbz = run("d", "--tx-events", fmt="debezium")
        cls.plain = run("plain")
        cls.pretty = run("p", "--tx-events", fmt="pretty")
        cls.flt = run("flt", "--tx-events", "--exclude-tables", "public.skipped")

    def test_default_unchanged(self):
        ops = [e["op"] for e in self.plain]
        self.assertNotIn("begin", ops)
        self.assertNotIn("commit", ops)
        self.assertFalse(any("tx_order" in e for e in self.plain))

    def test_json_boundaries(self):
        evs = self.json
        # Without the boundaries, the same events as the default run.
        inner = [e for e in evs if e["op"] not in ("begin", "commit")]
        self.assertEqual([{k: v for k, v in e.items() if k != "tx_order"} for e in inner],
                         self.plain)
        ops = [e["op"] for e in evs]
        self.assertEqual(ops.count("begin"), 3)
        self.assertEqual(ops.count("commit"), 3)
        begin, commit = evs[0], evs[len(WORK) + 1]
        self.assertEqual((begin["op"], commit["op"]), ("begin", "commit"))
        for b in (begin, commit):
            self.assertEqual(b["xid"], self.xid1)
            self.assertEqual(b["commit_lsn"], evs[1]["commit_lsn"])
            self.assertEqual(b["commit_time"], evs[1]["commit_time"])
        changes = evs[1:len(WORK) + 1]
        numbered = [e for e in changes if e["op"] != "message"]
        # 9 inserts + 1 insert + update + skipped insert + truncate = 13, in order.
        self.assertEqual([e["tx_order"] for e in numbered], list(range(1, 14)))
        self.assertNotIn("tx_order", [e for e in changes if e["op"] == "message"][0])
        self.assertEqual(commit["events"], 13)
        want = {"public." + t: 1 for t in TABLES}
        want["public.t0"] = 2
        want["public.t9"] = 2
        want["public.skipped"] = 1
        self.assertEqual(commit["tables"], want)
        # Tables in the order the transaction first touched them.
        self.assertEqual(list(commit["tables"]),
                         ["public." + t for t in TABLES] + ["public.skipped"])
        self.assertGreater(lsn_int(commit["lsn"]), lsn_int(changes[-1]["lsn"]))
        self.assertLessEqual(lsn_int(begin["lsn"]), lsn_int(changes[0]["lsn"]))
        second = evs[len(WORK) + 2:len(WORK) + 5]
        self.assertEqual([e["op"] for e in second], ["begin", "delete", "commit"])
        self.assertEqual(second[1]["tx_order"], 1)
        self.assertEqual(second[2]["events"], 1)
        self.assertEqual(second[2]["tables"], {"public.t1": 1})

    def test_filtered(self):
        # The excluded table's events are neither emitted nor counted, and
        # a transaction of which nothing is emitted has no boundaries.
        evs = self.flt
        self.assertEqual([e["op"] for e in evs].count("begin"), 2)
        commit = [e for e in evs if e["op"] == "commit"][0]
        self.assertEqual(commit["events"], 12)
        self.assertNotIn("public.skipped", commit["tables"])
        self.assertEqual(max(e.get("tx_order", 0) for e in evs), 12)
        self.assertNotIn(self.xid3, [e.get("xid") for e in evs])

    def test_debezium_metadata(self):
        evs = self.dbz
        begin, end = evs[0], evs[len(WORK) + 1]
        self.assertEqual(list(begin), ["status", "id", "event_count", "data_collections", "ts_ms"])
        self.assertEqual(list(end), list(begin))
        self.assertEqual((begin["status"], end["status"]), ("BEGIN", "END"))
        self.assertIsNone(begin["event_count"])
        self.assertIsNone(begin["data_collections"])
        jbegin, jcommit = self.json[0], self.json[len(WORK) + 1]
        # id: txId:LSN of the event, as PostgresTransactionMonitor makes it.
        self.assertEqual(begin["id"], "%d:%d" % (self.xid1, lsn_int(jbegin["lsn"])))
        self.assertEqual(end["id"], "%d:%d" % (self.xid1, lsn_int(jcommit["lsn"])))
        changes = evs[1:len(WORK) + 1]
        for e in changes:
            if e["op"] == "m":
                self.assertNotIn("transaction", e)
                continue
            self.assertEqual(e["transaction"]["id"], "%d:%d" % (self.xid1, e["source"]["lsn"]))
            self.assertEqual(begin["ts_ms"], e["source"]["ts_ms"])
        numbered = [e for e in changes if e["op"] != "m"]
        self.assertEqual([e["transaction"]["total_order"] for e in numbered],
                         list(range(1, 14)))
        t0 = [e["transaction"]["data_collection_order"] for e in numbered
              if e["source"]["table"] == "t0"]
        self.assertEqual(t0, [1, 2])
        self.assertEqual(end["event_count"], 13)
        self.assertEqual(end["data_collections"][:2],
                         [{"data_collection": "public.t0", "event_count": 2},
                          {"data_collection": "public.t1", "event_count": 1}])
        self.assertEqual(sum(c["event_count"] for c in end["data_collections"]), 13)
        self.assertEqual(end["ts_ms"], begin["ts_ms"])

    def test_pretty(self):
        lines = [l for l in self.pretty.splitlines() if l.startswith("[")]
        self.assertEqual(lines[0], "[BEGIN] xid=%d lsn=%s" % (self.xid1, self.json[0]["lsn"]))
        self.assertEqual(lines[len(WORK) + 1],
                         "[COMMIT] xid=%d events=13 lsn=%s"
                         % (self.xid1, self.json[len(WORK) + 1]["lsn"]))


class Streamed(unittest.TestCase):
    def test_streamed_transaction(self):
        # Over logical_decoding_work_mem: sent while in progress, spooled,
        # emitted at its commit between one begin and one commit.
        new_slots("s")
        xid = in_txn("INSERT INTO t2 SELECT g, repeat('x', 200) FROM generate_series(2, 3001) g")
        evs = run("s", "--tx-events", "--streaming")
        self.assertEqual([e["op"] for e in evs], ["begin"] + ["insert"] * 3000 + ["commit"])
        self.assertEqual([e["tx_order"] for e in evs[1:-1]], list(range(1, 3001)))
        self.assertEqual((evs[0]["xid"], evs[-1]["xid"], evs[-1]["events"]), (xid, xid, 3000))
        self.assertEqual(evs[-1]["tables"], {"public.t2": 3000})
        self.assertGreater(streamed_txns(C, "s"), 0)


class Options(unittest.TestCase):
    def test_transaction_topic_needs_kafka_and_tx_events(self):
        # (--tx-events with Kafka itself: test_kafka.py TxEvents)
        for args in (["--sink", "kafka", "--kafka-brokers", "localhost:1"], ["--tx-events"]):
            p = subprocess.run([BIN, "--database-url", C.url(), "--env-file", "/dev/null",
                                "--kafka-transaction-topic", "{prefix}.tx", *args],
                               capture_output=True, text=True, timeout=60, env={})
            assert_refused(self, p, "--kafka-transaction-topic needs --sink kafka and "
                                    "--tx-events")


if __name__ == "__main__":
    unittest.main()
