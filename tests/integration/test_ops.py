"""Every operation and what Postgres sends for it: INSERT, UPDATE and DELETE
under REPLICA IDENTITY DEFAULT, FULL and USING INDEX; unchanged TOASTed
columns; ALTER TABLE mid-stream; TRUNCATE of two tables; logical messages;
the envelope (lsn, commit_lsn, xid, commit_time) and the pretty format."""

import re
import unittest

from harness import Cluster, PgStream, lsn_int, lsn_str

C = None


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


def capture(slot, sql_statements, *args, fmt="json"):
    """Create a slot, run the statements, stream to the current LSN."""
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    for stmt in sql_statements:
        C.sql(stmt)
    p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), *args, slot=slot, fmt=fmt)
    try:
        rc = p.run()
        assert rc == 0, p.stderr()
        return p.events() if fmt == "json" else p.stdout()
    finally:
        p.close()


class Operations(unittest.TestCase):
    def test_envelope_and_default_identity(self):
        C.sql("CREATE TABLE t_def (id int PRIMARY KEY, name text, n int)")
        ev = capture("s_def", [
            "INSERT INTO t_def VALUES (1, 'a', 10)",
            "UPDATE t_def SET name = 'b' WHERE id = 1",
            "UPDATE t_def SET id = 2 WHERE id = 1",
            "DELETE FROM t_def WHERE id = 2",
        ])
        self.assertEqual([e["op"] for e in ev], ["insert", "update", "update", "delete"])
        keys = list(ev[0].keys())
        self.assertEqual(keys, ["op", "schema", "table", "lsn", "commit_lsn", "xid",
                                "commit_time", "new"])
        self.assertEqual((ev[0]["schema"], ev[0]["table"]), ("public", "t_def"))
        self.assertEqual(ev[0]["new"], {"id": 1, "name": "a", "n": 10})
        self.assertRegex(ev[0]["commit_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        for e in ev:
            self.assertLessEqual(lsn_int(e["lsn"]), lsn_int(e["commit_lsn"]))
        self.assertEqual(len({e["xid"] for e in ev}), 4)  # four transactions
        # Key unchanged: no old tuple under DEFAULT.
        self.assertNotIn("old", ev[1])
        self.assertEqual(ev[1]["new"], {"id": 1, "name": "b", "n": 10})
        # Key changed: the old key.
        self.assertEqual(ev[2]["old"], {"id": 1})
        self.assertEqual(ev[3]["old"], {"id": 2})
        self.assertNotIn("new", ev[3])

    def test_replica_identity_full(self):
        C.sql("CREATE TABLE t_full (id int PRIMARY KEY, name text, n int)")
        C.sql("ALTER TABLE t_full REPLICA IDENTITY FULL")
        ev = capture("s_full", [
            "INSERT INTO t_full VALUES (1, 'a', 10)",
            "UPDATE t_full SET name = 'b' WHERE id = 1",
            "DELETE FROM t_full WHERE id = 1",
        ])
        self.assertEqual(ev[1]["old"], {"id": 1, "name": "a", "n": 10})
        self.assertEqual(ev[1]["new"], {"id": 1, "name": "b", "n": 10})
        self.assertEqual(ev[2]["old"], {"id": 1, "name": "b", "n": 10})

    def test_replica_identity_using_index(self):
        C.sql("CREATE TABLE t_idx (id int PRIMARY KEY, code text NOT NULL, n int)")
        C.sql("CREATE UNIQUE INDEX t_idx_code ON t_idx (code)")
        C.sql("ALTER TABLE t_idx REPLICA IDENTITY USING INDEX t_idx_code")
        ev = capture("s_idx", [
            "INSERT INTO t_idx VALUES (1, 'a', 10)",
            "UPDATE t_idx SET code = 'b' WHERE id = 1",
            "DELETE FROM t_idx WHERE id = 1",
        ])
        self.assertEqual(ev[1]["old"], {"code": "a"})
        self.assertEqual(ev[2]["old"], {"code": "b"})

    def test_unchanged_toast_is_left_out(self):
        C.sql("CREATE TABLE t_toast (id int PRIMARY KEY, big text, n int)")
        C.sql("ALTER TABLE t_toast ALTER COLUMN big SET STORAGE EXTERNAL")
        ev = capture("s_toast", [
            "INSERT INTO t_toast VALUES (1, repeat('x', 100000), 1)",
            "UPDATE t_toast SET n = 2 WHERE id = 1",
        ])
        self.assertEqual(len(ev[0]["new"]["big"]), 100000)
        self.assertEqual(ev[1]["new"], {"id": 1, "n": 2})
        self.assertEqual(ev[1]["unchanged_toast"], ["big"])
        self.assertNotIn("unchanged_toast", ev[0])

    def test_alter_table_mid_stream(self):
        C.sql("CREATE TABLE t_alter (id int PRIMARY KEY, a text)")
        ev = capture("s_alter", [
            "INSERT INTO t_alter VALUES (1, 'x')",
            "ALTER TABLE t_alter ADD COLUMN b int DEFAULT 7",
            "INSERT INTO t_alter VALUES (2, 'y', 8)",
            "ALTER TABLE t_alter DROP COLUMN a",
            "INSERT INTO t_alter VALUES (3, 9)",
            "UPDATE t_alter SET b = 10 WHERE id = 1",
        ])
        self.assertEqual([e["new"] for e in ev], [
            {"id": 1, "a": "x"}, {"id": 2, "a": "y", "b": 8}, {"id": 3, "b": 9},
            {"id": 1, "b": 10}])

    def test_truncate_two_tables(self):
        C.sql("CREATE TABLE t_tr1 (id int PRIMARY KEY)")
        C.sql("CREATE TABLE t_tr2 (id int PRIMARY KEY)")
        ev = capture("s_tr", [
            "INSERT INTO t_tr1 VALUES (1)",
            "TRUNCATE t_tr1, t_tr2 RESTART IDENTITY CASCADE",
        ])
        tr = [e for e in ev if e["op"] == "truncate"]
        self.assertEqual(sorted(e["table"] for e in tr), ["t_tr1", "t_tr2"])
        for e in tr:
            self.assertIs(e["cascade"], True)
            self.assertIs(e["restart_identity"], True)
            self.assertEqual(list(e.keys()), ["op", "schema", "table", "lsn", "commit_lsn",
                                              "xid", "commit_time", "cascade",
                                              "restart_identity"])
        self.assertEqual(tr[0]["xid"], tr[1]["xid"])

    def test_logical_messages(self):
        C.sql("CREATE TABLE t_msg (id int PRIMARY KEY)")
        ev = capture("s_msg", [
            "SELECT pg_logical_emit_message(true, 'app', 'hello ✓')",
            "SELECT pg_logical_emit_message(false, 'raw', '\\xff00fe'::bytea)",
        ])
        self.assertEqual(len(ev), 2)
        tx, raw = ev
        self.assertEqual((tx["op"], tx["prefix"], tx["content"], tx["transactional"]),
                         ("message", "app", "hello ✓", True))
        self.assertIsInstance(tx["xid"], int)
        self.assertEqual((raw["prefix"], raw["transactional"]), ("raw", False))
        self.assertEqual(raw["content_encoding"], "base64")
        self.assertEqual(raw["content"], "/wD+")

    def test_start_lsn_skips_earlier_changes(self):
        C.sql("CREATE TABLE t_start (id int PRIMARY KEY)")
        C.sql("SELECT pg_create_logical_replication_slot('s_start', 'pgoutput')")
        C.sql("INSERT INTO t_start VALUES (1)")
        start = lsn_str(C.current_lsn())
        C.sql("INSERT INTO t_start VALUES (2)")
        p = PgStream(C, "--start-lsn", start, "--end-lsn", lsn_str(C.current_lsn()),
                     slot="s_start")
        try:
            self.assertEqual(p.run(), 0, p.stderr())
            self.assertEqual([e["new"]["id"] for e in p.events()], [2])
        finally:
            p.close()

    def test_pretty_update_without_full_identity_shows_key(self):
        C.sql("CREATE TABLE t_pkey (id int PRIMARY KEY, name text)")
        out = capture("s_pkey", [
            "INSERT INTO t_pkey VALUES (1, 'a')",
            "UPDATE t_pkey SET name = 'b' WHERE id = 1",
        ], fmt="pretty")
        self.assertIn('[UPDATE] table=t_pkey lsn=', out)
        self.assertIn('key={\n  "id": 1\n}\nnew={\n  "id": 1,\n  "name": "b"\n}\n', out)

    def test_pretty_format(self):
        C.sql("CREATE TABLE users (id int PRIMARY KEY, name text, email text)")
        C.sql("ALTER TABLE users REPLICA IDENTITY FULL")
        out = capture("s_pretty", [
            "INSERT INTO users VALUES (1, 'Mujib', 'm@example.com')",
            "UPDATE users SET name = 'Bum' WHERE id = 1",
            "DELETE FROM users WHERE id = 1",
        ], fmt="pretty")
        lsn = r"[0-9A-F]+/[0-9A-F]+"
        expected = (
            r"\[INSERT\] table=users lsn=%s\ndata=\{\n  \"id\": 1,\n  \"name\": \"Mujib\",\n"
            r"  \"email\": \"m@example.com\"\n\}\n"
            r"\[UPDATE\] table=users lsn=%s\nold=\{\n  \"name\": \"Mujib\"\n\}\n"
            r"new=\{\n  \"name\": \"Bum\"\n\}\n"
            r"\[DELETE\] table=users lsn=%s\ndata=\{\n  \"id\": 1,\n  \"name\": \"Bum\",\n"
            r"  \"email\": \"m@example.com\"\n\}\n$") % (lsn, lsn, lsn)
        self.assertRegex(out, re.compile(expected))


if __name__ == "__main__":
    unittest.main()
