"""Issue 16's options together against a real server: the filters, the
masking, --tx-events, --time-format, --numeric and --unchanged-toast in one
run, in the json and debezium formats, checked against the same WAL read
with each option alone (or none), so that no option undoes another: the
combined run's events are the single runs' decisions applied together."""

import hashlib
import hmac
import unittest

from harness import Cluster, PgStream, lsn_str

C = None
SECRET = "combined"


def mac(v):
    return hmac.new(SECRET.encode(), v.encode(), hashlib.sha256).hexdigest()


def setUpModule():
    global C
    C = Cluster()
    C.sql("""CREATE TABLE acct (id int PRIMARY KEY, email text, pw text, bal numeric(10,2),
             at timestamptz, big text, n int)""")
    C.sql("CREATE TABLE noise (id int PRIMARY KEY)")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    for s in ("all_json", "all_dbz", "none_json"):
        C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (s,))
    conn = C.connect()
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("""INSERT INTO acct VALUES (1, 'a@x', 'pw', 10.50,
                       '2026-12-01 18:50:07.5+00',
                       (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 300) g), 0)""")
        cur.execute("INSERT INTO noise VALUES (1)")
    conn.commit()
    C.sql("UPDATE acct SET n = 1 WHERE id = 1")  # big: unchanged TOAST
    C.sql("INSERT INTO noise VALUES (2)")        # a transaction of excluded rows only
    C.sql("DELETE FROM acct WHERE id = 1")


def tearDownModule():
    C.close()


ALL = ("--exclude-tables", "public.noise", "--exclude-columns", "public.acct.pw",
       "--mask-columns", "public.acct.email", "--tx-events", "--time-format", "postgres",
       "--numeric", "string", "--unchanged-toast", "placeholder",
       "--unavailable-value-placeholder", "(toast)")


def run(slot, *args, fmt="json"):
    p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), *args, slot=slot, fmt=fmt,
                 env={"MASK_SECRET": SECRET})
    try:
        rc = p.run()
        if rc != 0:
            raise AssertionError(p.stderr())
        return p.events()
    finally:
        p.close()


class Combined(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.json = run("all_json", *ALL)
        cls.dbz = run("all_dbz", *ALL, fmt="debezium")
        cls.none = run("none_json")

    def test_json(self):
        ops = [e["op"] for e in self.json]
        self.assertEqual(ops, ["begin", "insert", "commit", "begin", "update", "commit",
                               "begin", "delete", "commit"])
        ins, upd, dele = self.json[1], self.json[4], self.json[7]
        plain = self.none[0]["new"]
        self.assertEqual(ins["new"], {"id": 1, "email": mac("a@x"), "bal": "10.50",
                                      "at": "2026-12-01 18:50:07.5+00", "big": plain["big"],
                                      "n": 0})
        self.assertEqual(upd["new"]["big"], "(toast)")
        self.assertEqual(upd["unchanged_toast"], ["big"])
        self.assertEqual(dele["old"], {"id": 1})
        self.assertEqual([self.json[i]["events"] for i in (2, 5, 8)], [1, 1, 1])
        self.assertEqual(self.json[2]["tables"], {"public.acct": 1})
        # Unfiltered, the same WAL has the noise rows and RFC 3339 numbers.
        self.assertEqual([e["table"] for e in self.none].count("noise"), 2)
        self.assertEqual(plain["at"], "2026-12-01T18:50:07.5Z")
        self.assertEqual(plain["bal"], 10.5)
        self.assertEqual(plain["pw"], "pw")

    def test_debezium(self):
        ends = [e for e in self.dbz if e.get("status") == "END"]
        self.assertEqual([e["event_count"] for e in ends], [1, 1, 1])
        changes = [e for e in self.dbz if "op" in e]
        self.assertEqual([e["op"] for e in changes], ["c", "u", "d"])
        after = changes[0]["after"]
        self.assertEqual(after["email"], mac("a@x"))
        self.assertNotIn("pw", after)
        # debezium keeps its own value rules: Decimal base64, ZonedTimestamp.
        self.assertEqual(after["at"], "2026-12-01T18:50:07.500000Z")
        self.assertEqual(changes[1]["after"]["big"], "(toast)")
        self.assertEqual(changes[2]["before"], {"id": 1})
        self.assertEqual(changes[0]["transaction"]["total_order"], 1)


if __name__ == "__main__":
    unittest.main()
