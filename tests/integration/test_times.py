"""Dates and times in the json and pretty formats against a real server:
RFC 3339 by default (timestamptz in UTC with Z, timestamp without an
offset, timetz with its +HH:MM, date and time as they are), arrays
alike, and the documented forms of what RFC 3339 cannot say (infinity,
BC years as ISO 8601's astronomical years, years past 9999, offsets in
seconds); --time-format postgres gives the server's own text, compared
with what the server itself prints (::text in a UTC session). Expected
RFC 3339 values are computed here with Python's datetime, or by the
rule written out where datetime has no years for them."""

import datetime
import subprocess
import unittest

from harness import BIN, Cluster, PgStream, assert_refused, lsn_str

C = None
UTC = datetime.timezone.utc

ROWS = [
    ("2026-12-01 18:50:07.573885+00", "2026-12-01 18:50:07.573885", "2026-12-01",
     "18:50:07.573885", "18:50:07.573885+02"),
    ("2026-11-24 14:30:00+02", "2026-11-24 14:30:00", "1970-01-01", "00:00:00", "23:59:59-03:30"),
    ("2026-06-01 00:00:00.5+00", "2026-06-01 00:00:00.5", "2000-02-29", "12:00:00.5", "00:00:00+00"),
]


def setUpModule():
    global C
    C = Cluster()
    C.sql("""CREATE TABLE times (id int PRIMARY KEY, tz timestamptz, ts timestamp, d date,
             t time, ttz timetz, tza timestamptz[], da date[])""")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    C.sql("SELECT pg_create_logical_replication_slot('rfc', 'pgoutput')")
    C.sql("SELECT pg_create_logical_replication_slot('pg', 'pgoutput')")
    C.sql("SELECT pg_create_logical_replication_slot('pretty', 'pgoutput')")
    for i, (tz, ts, d, t, ttz) in enumerate(ROWS, 1):
        C.sql("INSERT INTO times VALUES (%s, %s, %s, %s, %s, %s, ARRAY[%s::timestamptz, NULL],"
              " ARRAY[%s::date])", (i, tz, ts, d, t, ttz, tz, d))
    C.sql("""INSERT INTO times VALUES
             (10, 'infinity', '-infinity', 'infinity', '24:00:00', '12:00:00+05:53:28',
              NULL, NULL),
             (11, '0044-03-15 12:00:00+00 BC', '0001-01-01 00:00:00 BC', '4713-11-24 BC',
              NULL, NULL, NULL, ARRAY['0001-12-31 BC'::date]),
             (12, '10000-01-01 00:00:00+00', '294276-12-31 23:59:59.999999', '5874897-12-31',
              NULL, NULL, NULL, NULL)""")


def tearDownModule():
    C.close()


def run(slot, *args, fmt="json"):
    p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), *args, slot=slot, fmt=fmt)
    try:
        rc = p.run()
        if rc != 0:
            raise AssertionError(p.stderr())
        return p.events() if fmt == "json" else p.stdout()
    finally:
        p.close()


def rfc(dt):
    """RFC 3339 with the fraction as short as Postgres prints it."""
    s = dt.isoformat()
    if dt.microsecond:
        head, _, frac = s.partition(".")
        digits = frac[:6].rstrip("0")
        s = head + "." + digits + frac[6:]
    return s.replace("+00:00", "Z")


def server_text(col, i):
    conn = C.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'")
            cur.execute("SELECT %s::text FROM times WHERE id = %%s" % col, (i,))
            return cur.fetchone()[0]
    finally:
        conn.close()


class Times(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rfc_events = run("rfc")
        cls.pg_events = run("pg", "--time-format", "postgres")
        cls.rfc = {e["new"]["id"]: e["new"] for e in cls.rfc_events}
        cls.pg = {e["new"]["id"]: e["new"] for e in cls.pg_events}
        cls.pretty = run("pretty", fmt="pretty")

    def test_rfc3339(self):
        for i, (tz, ts, d, t, ttz) in enumerate(ROWS, 1):
            r = self.rfc[i]
            self.assertEqual(r["tz"], rfc(datetime.datetime.fromisoformat(tz).astimezone(UTC)))
            self.assertEqual(r["ts"], rfc(datetime.datetime.fromisoformat(ts)))
            self.assertEqual(r["d"], datetime.date.fromisoformat(d).isoformat())
            self.assertEqual(r["t"], rfc(datetime.time.fromisoformat(t)))
            iso = ttz + ":00" if ttz[-3] in "+-" else ttz
            want = rfc(datetime.time.fromisoformat(iso))
            self.assertEqual(r["ttz"], want)
            self.assertEqual(r["tza"], [r["tz"], None])
            self.assertEqual(r["da"], [r["d"]])
            # Each parses back to the same instant.
            self.assertEqual(datetime.datetime.fromisoformat(r["tz"].replace("Z", "+00:00")),
                             datetime.datetime.fromisoformat(tz))

    def test_documented_forms(self):
        r = self.rfc[10]
        self.assertEqual((r["tz"], r["ts"], r["d"]), ("infinity", "-infinity", "infinity"))
        self.assertEqual(r["t"], "24:00:00")
        self.assertEqual(r["ttz"], "12:00:00+05:53:28")  # an offset in seconds: as is
        # BC: astronomical year 1 - N, four digits at least.
        r = self.rfc[11]
        self.assertEqual(r["tz"], "-0043-03-15T12:00:00Z")
        self.assertEqual(r["ts"], "0000-01-01T00:00:00")
        self.assertEqual(r["d"], "-4712-11-24")
        self.assertEqual(r["da"], ["0000-12-31"])
        r = self.rfc[12]
        self.assertEqual(r["tz"], "10000-01-01T00:00:00Z")
        self.assertEqual(r["ts"], "294276-12-31T23:59:59.999999")
        self.assertEqual(r["d"], "5874897-12-31")

    def test_postgres_format_is_the_servers_text(self):
        for i in list(range(1, len(ROWS) + 1)) + [10, 11, 12]:
            for col in ("tz", "ts", "d", "t", "ttz"):
                self.assertEqual(self.pg[i][col], server_text(col, i), (i, col))
        self.assertEqual(self.pg[1]["tza"], [server_text("tza[1]", 1), None])

    def test_pretty(self):
        self.assertIn('"tz": "2026-12-01T18:50:07.573885Z"', self.pretty)

    def test_commit_time_unchanged(self):
        # The event's own commit_time was RFC 3339 before: both modes keep it.
        for events in (self.rfc_events, self.pg_events):
            for e in events:
                self.assertTrue(e["commit_time"].endswith("Z"), e["commit_time"])
                self.assertIn("T", e["commit_time"])
        self.assertEqual([e["commit_time"] for e in self.rfc_events],
                         [e["commit_time"] for e in self.pg_events])

    def test_bad_value(self):
        r = subprocess.run([BIN, "--env-file", "/dev/null", "--time-format", "iso"],
                           capture_output=True, text=True, timeout=60, env={})
        assert_refused(self, r, "expected rfc3339 or postgres")


if __name__ == "__main__":
    unittest.main()
