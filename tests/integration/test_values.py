"""Every value rule of the JSON event contract, against a real server:
NULL vs empty string, numbers from their exact digits, NaN/Infinity, -0,
arrays (1-D, multi-dimensional, text with quoting), json/jsonb, timestamptz
in UTC, bytea, and text that needs escaping."""

import unittest

from harness import Cluster, PgStream, lsn_str

C = None

# One row per group of value rules; tests/tools/compare_builds.py uses them too.
VALS_TABLE = """CREATE TABLE vals (
        id int PRIMARY KEY, t text, b bool, i2 int2, i4 int4, i8 int8, o oid,
        f4 float4, f8 float8, n numeric, j json, jb jsonb, ia int[], ta text[],
        ba bool[], jba jsonb[], ma int[], ts timestamptz, tn timestamp, d date,
        by bytea, u uuid, iv interval, vc varchar(10), ch char(3))"""
VALS_ROWS = """INSERT INTO vals VALUES
          (1, '', true, -32768, 2147483647, 9223372036854775807, 4294967295,
           1.5, '-0', 1234567890123456789012345678901234567890.5,
           '{"a" : [1, "x\\ny"],
             "b": null}', '{"k": {"z": [true, 1.50]}}',
           '{1,2,NULL}', ARRAY['a b', 'q"uote', NULL, 'NULL', '', 'back\\slash', 'c,d'],
           '{t,f}', ARRAY['{"x":1}'::jsonb, NULL], '{{1,2},{3,4}}',
           '2026-11-24 14:30:00.123456+02', '2026-11-24 14:30:00', '2026-11-24',
           '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 02:03:04',
           'short', 'ab'),
          (2, NULL, false, NULL, NULL, NULL, NULL, 'NaN', 'Infinity', 'NaN', NULL, NULL,
           '{}', '{}', NULL, NULL, '[0:1][1:2]={{5,6},{7,8}}', NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL),
          (3, E'say "hi"\\n\\ttab \\x01 \\x1f end 😀 é \\\\', NULL, 0, 0, 0, 0,
           '-Infinity', '-Infinity', '-Infinity', '"just a string"', '[]',
           NULL, ARRAY[E'line\\nbreak', '😀'], NULL, NULL, NULL,
           NULL, NULL, NULL, '\\x', NULL, '-1 mons', NULL, NULL),
          (4, 'x', NULL, NULL, NULL, NULL, NULL, 1e-40, 1.7976931348623157e308,
           0.000000000000000000001, NULL, '{"big": 123456789012345678901234567890}',
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
        """


def setUpModule():
    global C
    C = Cluster()
    C.sql(VALS_TABLE)
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


class Values(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        C.sql("SELECT pg_create_logical_replication_slot('pgstream_slot', 'pgoutput')")
        C.sql(VALS_ROWS)
        end = lsn_str(C.current_lsn())
        cls.p = PgStream(C, "--end-lsn", end)
        cls.rc = cls.p.run()
        cls.lines = cls.p.stdout().split("\n")[:-1]
        cls.events = cls.p.events()
        cls.rows = {e["new"]["id"]: e["new"] for e in cls.events}
        cls.raw = {e["new"]["id"]: line for e, line in zip(cls.events, cls.lines)}

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def test_exit_and_count(self):
        self.assertEqual(self.rc, 0, self.p.stderr())
        self.assertEqual(len(self.events), 4)

    def test_null_vs_empty_string(self):
        self.assertEqual(self.rows[1]["t"], "")
        self.assertIsNone(self.rows[2]["t"])
        self.assertIn('"t":null', self.raw[2])

    def test_bool(self):
        self.assertIs(self.rows[1]["b"], True)
        self.assertIs(self.rows[2]["b"], False)

    def test_integers_are_numbers(self):
        self.assertIn('"i2":-32768,"i4":2147483647,"i8":9223372036854775807,"o":4294967295',
                      self.raw[1])

    def test_numeric_exact_digits(self):
        self.assertIn('"n":1234567890123456789012345678901234567890.5', self.raw[1])
        self.assertIn('"n":0.000000000000000000001', self.raw[4])

    def test_floats(self):
        self.assertIn('"f4":1.5,"f8":-0,', self.raw[1])
        self.assertIn('"f4":"NaN","f8":"Infinity","n":"NaN"', self.raw[2])
        self.assertIn('"f4":"-Infinity","f8":"-Infinity","n":"-Infinity"', self.raw[3])
        self.assertIn('"f4":1e-40,"f8":1.7976931348623157e+308', self.raw[4])

    def test_json_embedded(self):
        self.assertEqual(self.rows[1]["j"], {"a": [1, "x\ny"], "b": None})
        self.assertIn('"jb":{"k": {"z": [true, 1.50]}}', self.raw[1])
        self.assertEqual(self.rows[3]["j"], "just a string")
        self.assertEqual(self.rows[3]["jb"], [])
        self.assertIn('"big": 123456789012345678901234567890', self.raw[4])

    def test_arrays(self):
        r = self.rows[1]
        self.assertEqual(r["ia"], [1, 2, None])
        self.assertEqual(r["ta"], ["a b", 'q"uote', None, "NULL", "", "back\\slash", "c,d"])
        self.assertEqual(r["ba"], [True, False])
        self.assertEqual(r["jba"], [{"x": 1}, None])
        self.assertEqual(r["ma"], [[1, 2], [3, 4]])
        self.assertEqual(self.rows[2]["ia"], [])
        self.assertEqual(self.rows[2]["ma"], [[5, 6], [7, 8]])
        self.assertEqual(self.rows[3]["ta"], ["line\nbreak", "😀"])

    def test_text_forms_fixed_by_session_settings(self):
        r = self.rows[1]
        # RFC 3339 from Postgres's ISO text in UTC (test_times.py has the rest).
        self.assertEqual(r["ts"], "2026-11-24T12:30:00.123456Z")
        self.assertEqual(r["tn"], "2026-11-24T14:30:00")
        self.assertEqual(r["d"], "2026-11-24")
        self.assertEqual(r["by"], "\\x00ff10")
        self.assertEqual(r["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        self.assertEqual(r["iv"], "1 day 02:03:04")
        self.assertEqual(r["vc"], "short")
        self.assertEqual(r["ch"], "ab ")
        self.assertEqual(self.rows[3]["by"], "\\x")

    def test_text_escaping(self):
        self.assertEqual(self.rows[3]["t"], 'say "hi"\n\ttab \x01 \x1f end 😀 é \\')
        self.assertIn(r'"t":"say \"hi\"\n\ttab \u0001 \u001f end 😀 é \\"', self.raw[3])

    def test_lines_are_single_json_objects(self):
        for line in self.lines:
            self.assertTrue(line.startswith('{"op":"insert","schema":"public","table":"vals",'))
            self.assertNotIn("\n", line)


class UserTypes(unittest.TestCase):
    """Domains follow their base type, arrays of domains are arrays of it;
    enums and composites are strings of their text form."""

    def test_domains_and_user_types(self):
        C.sql("CREATE DOMAIN posint AS int CHECK (VALUE > 0)")
        C.sql("CREATE DOMAIN money2 AS numeric(12,2)")
        C.sql("CREATE DOMAIN flags AS bool[]")
        C.sql("CREATE DOMAIN deep AS posint")
        C.sql("CREATE TYPE mood AS ENUM ('sad', 'ok')")
        C.sql("CREATE TYPE pair AS (a int, b text)")
        C.sql("""CREATE TABLE utypes (id int PRIMARY KEY, p posint, m money2, f flags,
                 dp deep, pa posint[], e mood, c pair, ea mood[])""")
        C.sql("SELECT pg_create_logical_replication_slot('s_utypes', 'pgoutput')")
        C.sql("""INSERT INTO utypes VALUES (1, 5, 12.50, '{t,f}', 7, '{1,2}', 'ok',
                 ROW(1, 'x y'), '{sad,ok}')""")
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), slot="s_utypes")
        try:
            self.assertEqual(p.run(), 0, p.stderr())
            line = p.stdout().strip()
        finally:
            p.close()
        self.assertIn('"new":{"id":1,"p":5,"m":12.50,"f":[true,false],"dp":7,"pa":[1,2],'
                      '"e":"ok","c":"(1,\\"x y\\")","ea":["sad","ok"]}', line)


if __name__ == "__main__":
    unittest.main()
