"""--streaming (pgoutput protocol v2): large transactions arrive while still
running, are spooled, and are emitted only at commit, exactly as protocol v1
would emit them; aborted transactions and rolled-back subtransactions leave
no trace.

What either mode must emit is taken from the database, not from pgstream:
the server's own decoding of the same WAL through a third slot with the
test_decoding plugin (every change of every committed transaction, in commit
order: its LSN, transaction id, operation and column values, and the commit
time), the commit record's start (commit_lsn) from pg_walinspect, and the
tables' final contents, which replaying the events must reproduce. Then the
two modes' outputs must also be byte-identical."""

import json
import re
from datetime import datetime, timezone
import time
import unittest

from harness import Cluster, PgStream, lsn_int, lsn_str

C = None


def setUpModule():
    global C
    # A tiny decoding budget makes the server stream anything over 64 kB.
    C = Cluster("logical_decoding_work_mem = '64kB'")
    C.sql("CREATE TABLE big (id int PRIMARY KEY, v text, n int)")
    C.sql("CREATE TABLE small (id int PRIMARY KEY)")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    C.sql("CREATE EXTENSION pg_walinspect")


def tearDownModule():
    C.close()


def streamed_txns(cluster, slot):
    """How many transactions the server streamed through slot; the
    statistics reach the view shortly after the walsender exits, so wait
    up to 5 s for a non-zero count."""
    streamed = 0
    for _ in range(50):
        streamed = cluster.value("SELECT stream_txns FROM pg_stat_replication_slots"
                                 " WHERE slot_name = %s", (slot,))
        if streamed:
            break
        time.sleep(0.1)
    return streamed


def workload():
    """Big transactions with savepoints, an abort, DDL inside a streamed
    transaction, and small transactions committing in between."""
    big = C.connect()
    big.autocommit = False
    cur = big.cursor()
    cur.execute("INSERT INTO big SELECT g, repeat('x', 50), g FROM generate_series(1, 5000) g")
    cur.execute("SAVEPOINT a")
    cur.execute("INSERT INTO big SELECT g, 'rolled back', g FROM generate_series(5001, 10000) g")
    cur.execute("ROLLBACK TO SAVEPOINT a")
    # Small transactions commit while the big one is streaming.
    for i in range(1, 21):
        C.sql("INSERT INTO small VALUES (%s)", (i,))
    cur.execute("SAVEPOINT b")
    cur.execute("UPDATE big SET n = -n WHERE id <= 2000")
    cur.execute("RELEASE SAVEPOINT b")
    cur.execute("INSERT INTO big SELECT g, 'kept', g FROM generate_series(10001, 13000) g")
    big.commit()
    # A streamed transaction that aborts.
    cur.execute("INSERT INTO big SELECT g, 'aborted', g FROM generate_series(20001, 30000) g")
    big.rollback()
    # DDL inside a streamed transaction: the new schema travels in the stream.
    cur.execute("ALTER TABLE big ADD COLUMN extra text DEFAULT 'e'")
    cur.execute("INSERT INTO big SELECT g, 'after ddl', g, 'x' || g"
                " FROM generate_series(30001, 34000) g")
    big.commit()
    C.sql("INSERT INTO big VALUES (40000, 'single', 1, 'y')")
    big.close()


TD_CHANGE = re.compile(r"^table ([a-z_]+)\.([a-z_]+): (INSERT|UPDATE|DELETE): (.*)$")
TD_VALUE = re.compile(r"([a-z_]+)\[([^\]]+)\]:('(?:[^']|'')*'|null|\S+)(?: |$)")
TD_COMMIT = re.compile(r"^COMMIT (\d+) \(at (.+)\)$")


def td_value(typ, text):
    """A test_decoding column value as pgstream's JSON renders it (only the
    types the workload uses)."""
    if text == "null":
        return None
    if typ == "integer":
        return int(text)
    assert typ == "text", "column type %s not expected in this workload" % typ
    assert text[0] == text[-1] == "'", text
    return text[1:-1].replace("''", "'")


def expected_events():
    """Every change of every committed transaction since the slots were
    made, as the server decodes it (test_decoding, slot s_truth), with the
    fields pgstream's events carry, in commit order."""
    rows = C.sql("SELECT lsn::text, xid::text, data FROM pg_logical_slot_get_changes("
                 "'s_truth', NULL, NULL, 'include-xids', '1', 'include-timestamp', '1',"
                 " 'skip-empty-xacts', '1')")
    commits = {}  # commit record's end LSN -> its start (pg_walinspect)
    for start, end, xid, rmgr, kind in C.sql(
            "SELECT start_lsn::text, end_lsn::text, xid::text, resource_manager, record_type"
            " FROM pg_get_wal_records_info((SELECT restart_lsn FROM pg_replication_slots"
            " WHERE slot_name = 's_v1'), pg_current_wal_flush_lsn())"
            " WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'"):
        commits[lsn_int(end)] = (start, xid)
    events, txn = [], []
    for lsn, xid, data in rows:
        if data.startswith("BEGIN "):
            assert not txn
            continue
        m = TD_COMMIT.match(data)
        if m:
            assert m.group(1) == xid, data
            start, commit_xid = commits[lsn_int(lsn)]
            assert commit_xid == xid, (data, commit_xid)
            at = datetime.fromisoformat(m.group(2)).astimezone(timezone.utc)
            for e in txn:
                e["commit_lsn"] = start
                e["commit_time"] = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            events += txn
            txn = []
            continue
        m = TD_CHANGE.match(data)
        assert m, data
        schema, table, op, cols = m.groups()
        values = TD_VALUE.findall(cols)
        assert "".join("%s[%s]:%s " % v for v in values).strip() == cols, cols
        assert op != "DELETE" and "old-key:" not in cols, "not in this workload: " + data
        # In pgstream's key order (README, Event format); the rest at COMMIT.
        txn.append({"op": op.lower(), "schema": schema, "table": table, "lsn": lsn,
                    "commit_lsn": None, "xid": int(xid), "commit_time": None,
                    "new": {n: td_value(t, v) for n, t, v in values}})
    assert not txn, "decoding ended inside a transaction"
    return events


class Streaming(unittest.TestCase):
    def test_same_events_as_the_database(self):
        for slot in ("s_v1", "s_stream"):
            C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        C.sql("SELECT pg_create_logical_replication_slot('s_truth', 'test_decoding')")
        workload()
        end = lsn_str(C.current_lsn())
        runs = {}
        for slot, extra in (("s_v1", ()), ("s_stream", ("--streaming",))):
            p = PgStream(C, "--end-lsn", end, *extra, slot=slot)
            try:
                self.assertEqual(p.run(timeout=300), 0, p.stderr())
                runs[slot] = p.stdout().splitlines()
            finally:
                p.close()
        self.assertGreater(streamed_txns(C, "s_stream"), 0,
                           "the server streamed nothing: the test tests nothing")
        want = expected_events()
        # The workload as written: inserts 1-5000, 20 small transactions
        # committed meanwhile (so first), 2000 updates, 3000 and 4000 more
        # inserts and a last one; nothing rolled back or aborted.
        self.assertEqual(len(want), 5000 + 20 + 2000 + 3000 + 4000 + 1)
        self.assertEqual([e["new"]["id"] for e in want if e["table"] == "small"],
                         list(range(1, 21)))
        self.assertFalse([e for e in want if e["new"].get("v") in ("rolled back", "aborted")])
        for slot in ("s_v1", "s_stream"):
            got = [json.loads(line) for line in runs[slot]]
            self.assertEqual(len(got), len(want), slot)
            for n, (g, w) in enumerate(zip(got, want)):
                # json.dumps keeps the key order, which is part of the format.
                self.assertEqual(json.dumps(g), json.dumps(w),
                                 "%s: event %d differs from the server's decoding" % (slot, n))
            self.check_final_contents(got)
        self.assertEqual(runs["s_stream"], runs["s_v1"])

    def check_final_contents(self, events):
        """Replaying the events (each update carries the whole new row)
        gives what the tables hold; a column an event does not carry is the
        one added later with a default, which old rows read as 'e'."""
        replay = {"big": {}, "small": {}}
        for e in events:
            replay[e["table"]][e["new"]["id"]] = e["new"]
        for table, cols in (("big", ("id", "v", "n", "extra")), ("small", ("id",))):
            held = {r[0]: dict(zip(cols, r)) for r in C.sql(
                "SELECT %s FROM %s" % (", ".join(cols), table))}
            self.assertEqual(set(replay[table]), set(held), table)
            for i, row in held.items():
                got = dict(replay[table][i])
                if table == "big" and "extra" not in got:
                    self.assertEqual(row["extra"], "e", i)
                    got["extra"] = "e"
                self.assertEqual(got, row, "%s row %d" % (table, i))


if __name__ == "__main__":
    unittest.main()
