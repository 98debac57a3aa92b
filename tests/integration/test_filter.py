"""--include-tables, --exclude-tables, --exclude-columns and --mask-columns
against a real server, in the json and debezium formats and through the
Kafka sink (its keys): which events come out, which columns they carry, a
masked value as HMAC-SHA-256(MASK_SECRET, value) in hex computed here with
Python's hmac, never taken from pgstream; UPDATE old rows and DELETE keys
filtered as new rows; a transaction of excluded tables only acknowledged
(the slot moves past it); key columns refused unless --allow-key-filter;
bad patterns, a missing secret and a pattern that matches nothing."""

import hashlib
import hmac
import subprocess
import unittest

from harness import BIN, Cluster, PgStream, assert_refused, lsn_str, wait_slot_inactive

C = None
SECRET = "s3cr3t-key"


def mac(value, secret=SECRET):
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE SCHEMA audit")
    C.sql("CREATE TABLE users (id int PRIMARY KEY, email text, password text, name text)")
    C.sql("CREATE TABLE orders (id int PRIMARY KEY, user_email text, total numeric(8,2))")
    C.sql("CREATE TABLE skip_me (id int PRIMARY KEY, v text)")
    C.sql("CREATE TABLE skip_too (id int PRIMARY KEY, v text)")
    C.sql("CREATE TABLE audit.log (id int PRIMARY KEY, msg text)")
    C.sql("CREATE TABLE full_t (id int PRIMARY KEY, secret text, v text, note text)")
    C.sql("ALTER TABLE full_t REPLICA IDENTITY FULL")
    C.sql("CREATE TABLE nokey (a text, b text)")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


def new_slot(name):
    C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))


def run(slot, *args, fmt="json", env=None, end=None):
    """One run to --end-lsn (default: now); returns (events, stderr)."""
    end = end or C.current_lsn()
    p = PgStream(C, "--end-lsn", lsn_str(end), *args, slot=slot, fmt=fmt,
                 env=dict({"MASK_SECRET": SECRET}, **(env or {})))
    try:
        rc = p.run()
        if rc != 0:
            raise AssertionError("exit %d: %s" % (rc, p.stderr()))
        return p.events(), p.stderr()
    finally:
        p.close()


def table_of(e, fmt):
    if fmt == "json":
        return "%s.%s" % (e["schema"], e["table"]) if "table" in e else None
    s = e.get("source", {})
    return "%s.%s" % (s["schema"], s["table"]) if s.get("table") else None


def rows_of(e, fmt):
    """(old, new) rows of a change event in either format."""
    if fmt == "json":
        return e.get("old"), e.get("new")
    return e.get("before"), e.get("after")


WORKLOAD = [
    "INSERT INTO users VALUES (1, 'ann@example.com', 'hunter2', 'Ann')",
    "INSERT INTO users VALUES (2, NULL, 'pw', 'Bob')",
    "INSERT INTO orders VALUES (10, 'ann@example.com', 12.50)",
    "INSERT INTO skip_me VALUES (1, 'x')",
    "INSERT INTO audit.log VALUES (1, 'm')",
    "UPDATE users SET email = 'ann@example.org', password = 'new' WHERE id = 1",
    "INSERT INTO full_t VALUES (1, 'top', 'v1', 'n1')",
    "UPDATE full_t SET v = 'v2' WHERE id = 1",
    "DELETE FROM full_t WHERE id = 1",
    "DELETE FROM users WHERE id = 2",
    "TRUNCATE skip_too",
    "SELECT pg_logical_emit_message(true, 'app', 'hello')",
]


class Filters(unittest.TestCase):
    """One workload, read in both formats under the same filters."""

    ARGS = ("--include-tables", "public.*", "--exclude-tables", "public.skip_*",
            "--exclude-columns", "*.*.password,public.full_t.v",
            "--mask-columns", "public.users.email,public.orders.user_email,public.full_t.secret")

    @classmethod
    def setUpClass(cls):
        new_slot("f_json")
        new_slot("f_dbz")
        new_slot("f_plain")
        for s in WORKLOAD:
            C.sql(s)
        cls.out = {fmt: run("f_" + {"json": "json", "debezium": "dbz"}[fmt], *cls.ARGS,
                            fmt=fmt)[0] for fmt in ("json", "debezium")}
        cls.plain = run("f_plain")[0]

    def changes(self, fmt, table):
        return [e for e in self.out[fmt] if table_of(e, fmt) == table]

    def test_unfiltered_run_has_everything(self):
        # The filters, not the workload, make the difference below.
        tables = {table_of(e, "json") for e in self.plain}
        self.assertTrue({"public.skip_me", "public.skip_too", "audit.log"} <= tables, tables)
        users = [e for e in self.plain if table_of(e, "json") == "public.users"]
        self.assertEqual(users[0]["new"]["password"], "hunter2")

    def test_tables(self):
        for fmt in ("json", "debezium"):
            tables = [table_of(e, fmt) for e in self.out[fmt]]
            self.assertEqual(sorted(set(t for t in tables if t)),
                             ["public.full_t", "public.orders", "public.users"], fmt)
            # The message passes: it names no table.
            self.assertEqual(tables.count(None), 1, fmt)
            self.assertEqual(len(tables), 9, fmt)  # users 4, orders 1, full_t 3

    def test_excluded_and_masked_columns(self):
        for fmt in ("json", "debezium"):
            users = self.changes(fmt, "public.users")
            ins1, ins2, upd, dele = users
            self.assertEqual(rows_of(ins1, fmt)[1],
                             {"id": 1, "email": mac("ann@example.com"), "name": "Ann"}, fmt)
            # A null stays null: there is no value to hash.
            self.assertEqual(rows_of(ins2, fmt)[1], {"id": 2, "email": None, "name": "Bob"})
            self.assertEqual(rows_of(upd, fmt)[1]["email"], mac("ann@example.org"))
            self.assertNotIn("password", rows_of(upd, fmt)[1])
            # The DELETE's old key: the key column, as sent.
            self.assertEqual(rows_of(dele, fmt)[0], {"id": 2}, fmt)

    def test_hash_joins_across_tables(self):
        for fmt in ("json", "debezium"):
            order = rows_of(self.changes(fmt, "public.orders")[0], fmt)[1]
            user = rows_of(self.changes(fmt, "public.users")[0], fmt)[1]
            self.assertEqual(order["user_email"], user["email"])
            # The other columns keep their format's rendering.
            self.assertEqual(order["total"], 12.50 if fmt == "json" else "BOI=")

    def test_old_rows_filtered(self):
        # REPLICA IDENTITY FULL: the UPDATE's and the DELETE's old rows are
        # whole rows, filtered like the new ones.
        for fmt in ("json", "debezium"):
            ins, upd, dele = self.changes(fmt, "public.full_t")
            want = {"id": 1, "secret": mac("top"), "note": "n1"}
            self.assertEqual(rows_of(ins, fmt)[1], want, fmt)
            self.assertEqual(rows_of(upd, fmt), (want, want), fmt)
            self.assertEqual(rows_of(dele, fmt)[0], want, fmt)

    def test_masked_type_is_text_in_debezium(self):
        # A masked numeric would be Debezium's base64 Decimal otherwise.
        new_slot("f_num")
        C.sql("INSERT INTO orders VALUES (11, 'x', 99.99)")
        evs, _ = run("f_num", "--include-tables", "public.orders", "--mask-columns",
                     "public.orders.total", fmt="debezium")
        self.assertEqual(evs[0]["after"]["total"], mac("99.99"))


class ServerSide(unittest.TestCase):
    def test_publication_column_list_and_row_filter(self):
        # What the README recommends where it suffices (PostgreSQL 15+):
        # the server leaves columns and rows out, and pgstream's filters
        # combine with it.
        C.sql("CREATE PUBLICATION pub_cols FOR TABLE users (id, email, name) WHERE (id > 100)")
        new_slot("srv")
        C.sql("INSERT INTO users VALUES (100, 'lo@x', 'p', 'Lo')")
        C.sql("INSERT INTO users VALUES (101, 'hi@x', 'p', 'Hi')")
        C.sql("INSERT INTO skip_me VALUES (500, 'not published')")
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--mask-columns",
                     "public.users.email", slot="srv", pub="pub_cols",
                     env={"MASK_SECRET": SECRET})
        try:
            self.assertEqual(p.run(), 0, p.stderr())
            self.assertEqual([e["new"] for e in p.events()],
                             [{"id": 101, "email": mac("hi@x"), "name": "Hi"}])
        finally:
            p.close()
        C.sql("DELETE FROM users WHERE id IN (100, 101)")


class RowFilterColumnList(unittest.TestCase):
    """PostgreSQL 15+'s row filters and column lists, as pgoutput applies
    them: rows narrower than the table (only the listed columns, in the
    table's order), and an UPDATE that the filter turns into an INSERT (the
    old row did not match, the new one does: the whole new row) or a DELETE
    (the old one matched, the new one does not: the old key, or the old
    row under FULL). The server wants a filter of a publication that sends
    UPDATE and DELETE to use replica identity columns only, and a column
    list to cover them: under FULL, every column, so a narrower list is for
    a publication that sends inserts only. Self-contained: test_versions.py
    runs it on 16, 17 and 18 too."""

    WORKLOAD = [
        "INSERT INTO pf_def VALUES (1, 1, 'b1', 'c1'), (20, 20, 'b20', 'c20')",
        "UPDATE pf_def SET id = 11 WHERE id = 1",  # into the filter
        "UPDATE pf_def SET id = 5 WHERE id = 20",  # out of it
        "UPDATE pf_def SET b = 'x' WHERE id = 11",  # in it; b is not listed
        "UPDATE pf_def SET id = 12, c = 'c12' WHERE id = 11",  # in it, key changed
        "UPDATE pf_def SET id = 2 WHERE id = 5",  # never in it
        "DELETE FROM pf_def WHERE id = 12",
        "INSERT INTO pf_full VALUES (1, 1, 'b1', 'c1'), (20, 20, 'b20', 'c20')",
        "UPDATE pf_full SET a = 11 WHERE id = 1",
        "UPDATE pf_full SET a = 5 WHERE id = 20",
        "UPDATE pf_full SET b = 'x' WHERE id = 1",
        "UPDATE pf_full SET a = 6 WHERE id = 20",
        "DELETE FROM pf_full WHERE id = 1",
        "DELETE FROM pf_full WHERE id = 20",
        "INSERT INTO pf_ins VALUES (1, 1, 'b1', 'c1'), (20, 20, 'b20', 'c20')",
        "UPDATE pf_ins SET a = 11 WHERE id = 1",  # updates are not published
        "INSERT INTO pf_ins VALUES (30, 30, 'b30', 'c30')",
    ]

    @classmethod
    def setUpClass(cls):
        for t in ("pf_def", "pf_full", "pf_ins"):
            C.sql("CREATE TABLE %s (id int PRIMARY KEY, a int, b text, c text)" % t)
        C.sql("ALTER TABLE pf_full REPLICA IDENTITY FULL")
        C.sql("ALTER TABLE pf_ins REPLICA IDENTITY FULL")
        C.sql("CREATE PUBLICATION pub_pf FOR TABLE pf_def (id, c) WHERE (id > 10),"
              " TABLE pf_full WHERE (a > 10)")
        C.sql("CREATE PUBLICATION pub_pf_ins FOR TABLE pf_ins (id, c) WHERE (a > 10)"
              " WITH (publish = 'insert')")
        for slot in ("s_pf", "s_pf_ins"):
            new_slot(slot)
        for stmt in cls.WORKLOAD:
            C.sql(stmt)
        end = C.current_lsn()
        cls.events = {}
        for slot, pub in (("s_pf", "pub_pf"), ("s_pf_ins", "pub_pf_ins")):
            p = PgStream(C, "--end-lsn", lsn_str(end), slot=slot, pub=pub)
            try:
                assert p.run() == 0, p.stderr()
                for e in p.events():
                    cls.events.setdefault(e["table"], []).append(e)
            finally:
                p.close()

    @classmethod
    def tearDownClass(cls):
        # test_versions.py shares its cluster: no slots or tables left.
        for slot in ("s_pf", "s_pf_ins"):
            C.sql("SELECT pg_drop_replication_slot(%s)", (slot,))
        C.sql("DROP PUBLICATION pub_pf, pub_pf_ins")
        C.sql("DROP TABLE pf_def, pf_full, pf_ins")

    def changes(self, table):
        evs = self.events.get(table, [])
        for e in evs:
            for r in (e.get("old"), e.get("new")):
                # The table's order, the listed columns only (old keys
                # aside, which are the key).
                if r is not None and len(r) > 1:
                    self.assertEqual(list(r), [c for c in ("id", "a", "b", "c") if c in r])
        return [(e["op"], e.get("old"), e.get("new")) for e in evs]

    def test_default_identity_column_list_and_filter(self):
        self.assertEqual(self.changes("pf_def"), [
            ("insert", None, {"id": 20, "c": "c20"}),
            ("insert", None, {"id": 11, "c": "c1"}),
            ("delete", {"id": 20}, None),
            ("update", None, {"id": 11, "c": "c1"}),
            ("update", {"id": 11}, {"id": 12, "c": "c12"}),
            ("delete", {"id": 12}, None),
        ])

    def test_full_identity_filter(self):
        r = {"id": 1, "a": 11, "b": "b1", "c": "c1"}
        self.assertEqual(self.changes("pf_full"), [
            ("insert", None, {"id": 20, "a": 20, "b": "b20", "c": "c20"}),
            ("insert", None, r),
            ("delete", {"id": 20, "a": 20, "b": "b20", "c": "c20"}, None),
            ("update", r, dict(r, b="x")),
            ("delete", dict(r, b="x"), None),
        ])

    def test_full_identity_narrower_column_list_inserts_only(self):
        self.assertEqual(self.changes("pf_ins"), [
            ("insert", None, {"id": 20, "c": "c20"}),
            ("insert", None, {"id": 30, "c": "c30"}),
        ])


class Acknowledged(unittest.TestCase):
    def test_excluded_transactions_are_acknowledged(self):
        new_slot("f_ack")
        start = C.current_lsn()
        for i in range(20):
            C.sql("INSERT INTO skip_me VALUES (%d, 'y')" % (100 + i))
        end = C.current_lsn()
        self.assertGreater(end, start)
        evs, _ = run("f_ack", "--exclude-tables", "public.skip_me", end=end)
        self.assertEqual([e for e in evs if e.get("table") == "skip_me"], [])
        # --end-lsn exits only once acknowledged; the slot says so too.
        self.assertGreaterEqual(wait_slot_inactive(C, "f_ack"), end)


class KeyColumns(unittest.TestCase):
    def refused(self, slot, *args):
        new_slot(slot)
        self.before = C.slot_confirmed(slot)
        C.sql("INSERT INTO users VALUES (50, 'k@x', 'p', 'K')")
        p = subprocess.run([BIN, "--database-url", C.url(), "--slot", slot, "--format", "json",
                            "--env-file", "/dev/null", "--log-level", "error", "--end-lsn",
                            lsn_str(C.current_lsn()), *args], capture_output=True, text=True,
                           timeout=120, env={"MASK_SECRET": SECRET, "PATH": "/usr/bin:/bin"})
        C.sql("DELETE FROM users WHERE id = 50")
        return p

    def test_excluded_key_refused(self):
        p = self.refused("k_drop", "--exclude-columns", "public.users.id")
        line = assert_refused(self, p, "--exclude-columns matches public.users.id", status=1)
        self.assertIn("--allow-key-filter", line)
        # Refused before the table's first event: nothing of it acknowledged.
        self.assertEqual(C.slot_confirmed("k_drop"), self.before)

    def test_masked_key_refused(self):
        p = self.refused("k_mask", "--mask-columns", "public.users.i?")
        assert_refused(self, p, "--mask-columns matches public.users.id", status=1)

    def test_full_identity_primary_key_refused(self):
        # Under REPLICA IDENTITY FULL pgoutput flags every column; the
        # primary key is still the row's identity, found in the catalog.
        new_slot("k_full")
        C.sql("INSERT INTO full_t VALUES (7, 'a', 'b', 'c')")
        p = subprocess.run([BIN, "--database-url", C.url(), "--slot", "k_full", "--env-file",
                            "/dev/null", "--log-level", "error", "--end-lsn",
                            lsn_str(C.current_lsn()), "--mask-columns", "public.full_t.id"],
                           capture_output=True, text=True, timeout=120,
                           env={"MASK_SECRET": SECRET, "PATH": "/usr/bin:/bin"})
        assert_refused(self, p, "a key column of public.full_t", status=1)
        # Its other columns are not key columns: masking them is fine.
        evs, _ = run("k_full", "--mask-columns", "public.full_t.secret")
        self.assertEqual(evs[0]["new"]["secret"], mac("a"))

    def test_allowed(self):
        new_slot("k_allow")
        C.sql("INSERT INTO users VALUES (60, 'e@x', 'p', 'E')")
        C.sql("UPDATE users SET id = 61 WHERE id = 60")
        C.sql("DELETE FROM users WHERE id = 61")
        evs, _ = run("k_allow", "--include-tables", "public.users", "--mask-columns",
                     "public.users.id", "--exclude-columns", "public.users.password",
                     "--allow-key-filter")
        ins, upd, dele = evs
        self.assertEqual(ins["new"], {"id": mac("60"), "email": "e@x", "name": "E"})
        # The key change's old key and the DELETE's key: hashed alike.
        self.assertEqual(upd["old"], {"id": mac("60")})
        self.assertEqual(upd["new"]["id"], mac("61"))
        self.assertEqual(dele["old"], {"id": mac("61")})
        # Excluded, the key is gone from the rows and the old keys alike.
        new_slot("k_allow2")
        C.sql("INSERT INTO users VALUES (62, 'f@x', 'p', 'F')")
        C.sql("DELETE FROM users WHERE id = 62")
        evs, _ = run("k_allow2", "--include-tables", "public.users", "--exclude-columns",
                     "public.users.id", "--allow-key-filter", fmt="debezium")
        self.assertEqual(evs[0]["after"], {"email": "f@x", "password": "p", "name": "F"})
        self.assertEqual(evs[1]["before"], {})


class Kafka(unittest.TestCase):
    """The records' keys go through the filter too."""

    def test_masked_key_in_kafka(self):
        import test_kafka
        k = test_kafka.Kafka()
        try:
            new_slot("k_kafka")
            C.sql("INSERT INTO users VALUES (70, 'z@x', 'p', 'Z')")
            C.sql("DELETE FROM users WHERE id = 70")
            C.sql("INSERT INTO nokey VALUES ('a', 'b')")
            run("k_kafka", "--sink", "kafka", "--kafka-brokers", k.bootstrap, "--topic-prefix",
                "flt", "--include-tables", "public.users,public.nokey", "--mask-columns",
                "public.users.id,public.users.email,public.nokey.a", "--exclude-columns",
                "public.users.password", "--allow-key-filter")
            msgs = k.read("flt.public.users")
            self.assertEqual([m["key"] for m in msgs],
                             ['{"id":"%s"}' % mac("70")] * 3)  # insert, delete, tombstone
            self.assertIsNone(msgs[2]["payload"])
            import json
            self.assertEqual(json.loads(msgs[0]["payload"])["new"],
                             {"id": mac("70"), "email": mac("z@x"), "name": "Z"})
            # A table without key columns has no key, masked or not.
            nokey = k.read("flt.public.nokey")
            self.assertEqual([m["key"] for m in nokey], [None])
            self.assertEqual(json.loads(nokey[0]["payload"])["new"], {"a": mac("a"), "b": "b"})
        finally:
            k.close()
            k.mock.stdout.close()


class BadValues(unittest.TestCase):
    def check(self, args, mention, env=None):
        p = subprocess.run([BIN, "--database-url", C.url(), "--env-file", "/dev/null", *args],
                           capture_output=True, text=True, timeout=60,
                           env=env if env is not None else {"MASK_SECRET": SECRET})
        return assert_refused(self, p, mention)

    def test_table_pattern_without_schema(self):
        self.check(["--include-tables", "users"], '"users" is not a schema.table pattern')
        self.check(["--exclude-tables", "public.a,,public.b"], "--exclude-tables")

    def test_column_pattern_without_table(self):
        self.check(["--exclude-columns", "users.password"], "schema.table.column")

    def test_mask_without_secret(self):
        self.check(["--mask-columns", "public.users.email"], "MASK_SECRET", env={})

    def test_unmatched_pattern_warns(self):
        new_slot("w_slot")
        C.sql("INSERT INTO users VALUES (80, 'w', 'w', 'W')")
        _, err = run("w_slot", "--include-tables", "public.users,public.nosuch*",
                     "--exclude-columns", "*.*.passwd")
        self.assertIn('--include-tables pattern "public.nosuch*" matches no table', err)
        self.assertIn('--exclude-columns pattern "*.*.passwd" matches no column', err)
        self.assertNotIn('"public.users"', err)


if __name__ == "__main__":
    unittest.main()
