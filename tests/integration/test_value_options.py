"""--numeric number|string and --unchanged-toast omit|placeholder (with
--unavailable-value-placeholder) against a real server, in the json,
pretty and debezium formats: an UPDATE that leaves a TOASTed column alone
(Postgres then sends no value for it), numerics and numeric arrays as
strings with their exact digits, int8 and floats left numbers; the
defaults unchanged, and bad values refused."""

import base64
import subprocess
import unittest

from harness import BIN, Cluster, PgStream, assert_refused, lsn_str

C = None
PLACEHOLDER = "__debezium_unavailable_value"


def setUpModule():
    global C
    C = Cluster()
    C.sql("""CREATE TABLE docs (id int PRIMARY KEY, n int, big text, price numeric(10,2),
             nv numeric, na numeric[], i8 int8, f8 float8)""")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    for s in ("def", "ph", "custom", "dbz", "dbz_omit", "dbz_custom", "pretty", "num",
              "num_pretty", "num_dbz", "num_def"):
        C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (s,))
    # md5 text does not compress: over 2 kB it is stored out of line (TOAST).
    C.sql("""INSERT INTO docs VALUES (1, 0,
             (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g),
             1234.50, 'NaN', '{1.10,-2,NULL}', 9223372036854775807, 0.5)""")
    C.sql("UPDATE docs SET n = 1 WHERE id = 1")  # big unchanged: not sent


def tearDownModule():
    C.close()


def run(slot, *args, fmt="json"):
    p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), *args, slot=slot, fmt=fmt)
    try:
        rc = p.run()
        if rc != 0:
            raise AssertionError(p.stderr())
        return p.events() if fmt != "pretty" else p.stdout()
    finally:
        p.close()


class UnchangedToast(unittest.TestCase):
    def test_json_default_omits(self):
        ins, upd = run("def")
        self.assertEqual(len(ins["new"]["big"]), 400 * 32)
        self.assertNotIn("big", upd["new"])
        self.assertEqual(upd["unchanged_toast"], ["big"])

    def test_json_placeholder(self):
        ins, upd = run("ph", "--unchanged-toast", "placeholder")
        self.assertEqual(upd["new"]["big"], PLACEHOLDER)
        self.assertEqual(upd["new"]["n"], 1)
        # Still listed: a real value could be the placeholder's text.
        self.assertEqual(upd["unchanged_toast"], ["big"])
        self.assertEqual(len(ins["new"]["big"]), 400 * 32)

    def test_custom_placeholder(self):
        _, upd = run("custom", "--unchanged-toast", "placeholder",
                     "--unavailable-value-placeholder", "<unchanged>")
        self.assertEqual(upd["new"]["big"], "<unchanged>")

    def test_pretty_placeholder(self):
        out = run("pretty", "--unchanged-toast", "placeholder", fmt="pretty")
        self.assertIn('"big": "%s"' % PLACEHOLDER, out)

    def test_debezium(self):
        _, upd = run("dbz", fmt="debezium")
        self.assertEqual(upd["after"]["big"], PLACEHOLDER)  # Debezium's default
        _, upd = run("dbz_omit", "--unchanged-toast", "omit", fmt="debezium")
        self.assertNotIn("big", upd["after"])
        self.assertEqual(upd["after"]["n"], 1)
        _, upd = run("dbz_custom", "--unavailable-value-placeholder", "?", fmt="debezium")
        self.assertEqual(upd["after"]["big"], "?")


class Numeric(unittest.TestCase):
    def test_strings(self):
        ins, _ = run("num", "--numeric", "string")
        r = ins["new"]
        self.assertEqual((r["price"], r["nv"], r["na"]), ("1234.50", "NaN", ["1.10", "-2", None]))
        self.assertEqual((r["i8"], r["f8"], r["id"]), (9223372036854775807, 0.5, 1))

    def test_default_numbers(self):
        ins, _ = run("num_def", "--numeric", "number")
        self.assertEqual(ins["new"]["price"], 1234.5)
        self.assertEqual(ins["new"]["na"], [1.1, -2, None])
        self.assertEqual(ins["new"]["nv"], "NaN")  # not a JSON number: a string as before

    def test_pretty_strings(self):
        out = run("num_pretty", "--numeric", "string", fmt="pretty")
        self.assertIn('"price": "1234.50"', out)

    def test_debezium_has_its_own_rules(self):
        # --numeric is json's and pretty's; debezium's is --debezium-decimal.
        ins, _ = run("num_dbz", "--numeric", "string", fmt="debezium")
        unscaled = base64.b64encode((123450).to_bytes(3, "big", signed=True)).decode()
        self.assertEqual(ins["after"]["price"], unscaled)


class BadValues(unittest.TestCase):
    def check(self, args, mention):
        p = subprocess.run([BIN, "--env-file", "/dev/null", *args], capture_output=True,
                           text=True, timeout=60, env={})
        assert_refused(self, p, mention)

    def test_bad(self):
        self.check(["--numeric", "float"], "expected number or string")
        self.check(["--unchanged-toast", "drop"], "expected omit or placeholder")
        self.check(["--unavailable-value-placeholder", ""], "must not be empty")


if __name__ == "__main__":
    unittest.main()
