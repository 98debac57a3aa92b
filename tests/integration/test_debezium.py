"""--format debezium against a real server: the documentation's example
events (postgresql.adoc, the customers table: create, update, delete,
truncate, message) field by field, and every value rule the format
implements, with expected values computed here in Python (datetime for
days and microseconds, int.to_bytes for the unscaled decimals, Debezium's
MicroDuration formula in floats), never taken from pgstream.

The same WAL is also read in the json format through a second slot, so that
positions, transaction ids and commit times can be checked against
pgstream's other, independently written rendering of them."""

import base64
import datetime
import decimal
import json
import struct
import unittest

from harness import Cluster, PgStream, lsn_int, lsn_str

C = None
PREFIX = "PostgreSQL_server"

SOURCE_KEYS = ["version", "connector", "name", "ts_ms", "ts_us", "ts_ns", "snapshot", "db",
               "sequence", "schema", "table", "txId", "lsn", "xmin"]
CHANGE_KEYS = ["before", "after", "source", "op", "ts_ms", "ts_us", "ts_ns", "transaction"]

TYPES_TABLE = """CREATE TABLE dtypes (
        id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, b bool,
        t text, vc varchar(10), ch char(3), n52 numeric(5,2), n300 numeric(30,0), nv numeric,
        d date, ts timestamp, ts3 timestamp(3), tstz timestamptz, tm time, tm3 time(3),
        ttz timetz, u uuid, j json, jb jsonb, by bytea, ia int[], ta text[], iv interval,
        nneg numeric(5,-2))"""
TYPES_ROWS = """INSERT INTO dtypes VALUES
        (1, -32768, 2147483647, -9223372036854775808, 1.5, 'NaN', true,
         'say "hi"', 'short', 'ab', 123.45, 123456789012345678901234567890, 1.5,
         '2026-11-24', '2018-06-20 15:13:16.945104', '2018-06-20 15:13:16.945',
         '2018-06-20 15:13:16.945104+02', '04:05:06.789', '04:05:06.789',
         '04:05:06.789+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
         '{"a" : [1, 2]}', '{"k": {"z": [true, 1.50]}}', '\\x0102ff', '{1,NULL,3}',
         ARRAY['a b', NULL], '1 year 2 mons 3 days 04:05:06.78', 12345),
        (2, 0, 0, 0, '-Infinity', 'Infinity', false, '', '', '', -1.00, -129, -0.001,
         '1969-12-31', '1969-12-31 23:59:59.999999', '1969-12-31 23:59:59.999',
         '2026-01-01 00:30:00+05:30', '00:00:00', '23:59:59.999', '00:30:00+05:30',
         '00000000-0000-0000-0000-000000000000', '3', '[]', '\\x', '{}', '{}',
         '-1 mons -00:00:01.5', -4250),
        (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, 'infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL)"""


MORE_TABLE = """CREATE TABLE dmore (
        id int PRIMARY KEY, da date[], ts3a timestamp(3)[], tza timestamptz[], jba jsonb[],
        bya bytea[], ip inet, cid cidr, mac macaddr, mac8 macaddr8, x xml, r4 int4range,
        r8 int8range, nr numrange, tr tsrange, dr daterange, e mood, ipa inet[],
        b1 bit(1), b10 bit(10), vb varbit, vb0 varbit(8))"""
MORE_ROWS = """INSERT INTO dmore VALUES
        (1, ARRAY['2026-11-24'::date, NULL], ARRAY['2018-06-20 15:13:16.945'::timestamp],
         ARRAY['2018-06-20 15:13:16.945104+02'::timestamptz], ARRAY['{"x":1}'::jsonb],
         ARRAY['\\x0102ff'::bytea], '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03',
         '08:00:2b:01:02:03:04:05', '<a>b</a>', '[1,5)', '(1,5]', '[1.5,2.5]',
         '[2018-06-20 15:00,2018-06-21 15:00)', '[2026-01-01,2026-02-01)', 'ok',
         '{10.0.0.1,NULL}', '1', '1000000001', '0100', '00000000')"""


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE TYPE mood AS ENUM ('sad', 'ok')")
    C.sql(MORE_TABLE)
    C.sql("""CREATE TABLE customers (id int PRIMARY KEY, first_name text NOT NULL,
             last_name text NOT NULL, email text NOT NULL)""")
    C.sql(TYPES_TABLE)
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


def run_both(slot_dbz, slot_json, *args):
    """Stream up to now in both formats; return (debezium events, json events)."""
    end = lsn_str(C.current_lsn())
    out = []
    for slot, fmt in ((slot_dbz, "debezium"), (slot_json, "json")):
        p = PgStream(C, "--end-lsn", end, "--topic-prefix", PREFIX, *args, slot=slot, fmt=fmt)
        try:
            rc = p.run()
            if rc != 0:
                raise AssertionError(p.stderr())
            out.append(p.events())
        finally:
            p.close()
    return out


def us_of(iso):
    """Microseconds since 1970 of the json format's commit_time."""
    t = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
    t = t.replace(tzinfo=datetime.timezone.utc)
    delta = t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds


def unscaled_b64(n):
    """java.math.BigInteger.toByteArray() of n, in base64."""
    size = (n if n >= 0 else ~n).bit_length() // 8 + 1
    return base64.b64encode(n.to_bytes(size, "big", signed=True)).decode()


def micro_duration(years, months, days, hours, minutes, seconds):
    """Debezium's MicroDuration.durationMicros with 365.25/12 days a month."""
    ndays = (years * 12 + months) * (365.25 / 12.0) + days
    return int(((((ndays * 24) + hours) * 60 + minutes) * 60 + seconds) * 1e6)


EPOCH = datetime.datetime(1970, 1, 1)


def micros(dt):
    delta = dt - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds


class DocumentationEvents(unittest.TestCase):
    """The documentation's customers events, in one stream."""

    @classmethod
    def setUpClass(cls):
        C.sql("SELECT pg_create_logical_replication_slot('dbz_doc', 'pgoutput')")
        C.sql("SELECT pg_create_logical_replication_slot('json_doc', 'pgoutput')")
        cls.xids = [
            in_txn("INSERT INTO customers VALUES (1, 'Anne', 'Kretchmar', 'annek@noanswer.org')"),
            in_txn("UPDATE customers SET first_name = 'Anne Marie' WHERE id = 1"),
            in_txn("UPDATE customers SET id = 2 WHERE id = 1"),
            in_txn("DELETE FROM customers WHERE id = 2"),
            in_txn("INSERT INTO customers VALUES (3, 'a', 'b', 'c')", "TRUNCATE customers"),
            in_txn("SELECT pg_logical_emit_message(true, 'foo', 'bar')"),
        ]
        C.sql("SELECT pg_logical_emit_message(false, 'foo', '\\x6267f2'::bytea)")
        cls.raw, cls.json = run_both("dbz_doc", "json_doc")
        # The key change (the third statement) is a delete and a create, as
        # the connector writes it; without the delete, the events line up
        # with the json format's one by one.
        cls.keychange = cls.raw[2:4]
        cls.dbz = cls.raw[:2] + cls.raw[3:]

    def test_count_and_order_of_keys(self):
        self.assertEqual(len(self.raw), 9)
        self.assertEqual(len(self.json), 8)
        for e in self.raw:
            if e["op"] in "cudt":
                want = CHANGE_KEYS if e["op"] != "t" else CHANGE_KEYS[2:]
                self.assertEqual(list(e), want)
            else:
                self.assertEqual(list(e), ["source", "op", "ts_ms", "ts_us", "ts_ns", "message"])

    def test_create(self):
        e = self.dbz[0]
        self.assertEqual(e["op"], "c")
        self.assertIsNone(e["before"])
        self.assertEqual(e["after"], {"id": 1, "first_name": "Anne", "last_name": "Kretchmar",
                                      "email": "annek@noanswer.org"})
        self.assertIsNone(e["transaction"])

    def test_update_default_identity(self):
        # The key did not change: pgoutput sends no old tuple, so before is null.
        e = self.dbz[1]
        self.assertEqual(e["op"], "u")
        self.assertIsNone(e["before"])
        self.assertEqual(e["after"]["first_name"], "Anne Marie")

    def test_update_key_changed(self):
        # A primary key update: the connector's delete of the old key (the
        # key pgoutput sends) and create of the new row, one source.
        d, c = self.keychange
        self.assertEqual((d["op"], c["op"]), ("d", "c"))
        self.assertEqual(d["before"], {"id": 1})
        self.assertIsNone(d["after"])
        self.assertIsNone(c["before"])
        self.assertEqual(c["after"], {"id": 2, "first_name": "Anne Marie",
                                      "last_name": "Kretchmar", "email": "annek@noanswer.org"})
        self.assertEqual(d["source"], c["source"])
        self.assertEqual(self.json[2]["op"], "update")
        self.assertEqual(d["source"]["lsn"], lsn_int(self.json[2]["lsn"]))

    def test_delete(self):
        e = self.dbz[3]
        self.assertEqual(e["op"], "d")
        self.assertEqual(e["before"], {"id": 2})
        self.assertIsNone(e["after"])

    def test_truncate(self):
        e = self.dbz[5]
        self.assertEqual(e["op"], "t")
        self.assertEqual((e["source"]["schema"], e["source"]["table"]), ("public", "customers"))

    def test_messages(self):
        m, n = self.dbz[6], self.dbz[7]
        self.assertEqual(m["op"], "m")
        self.assertEqual(m["message"], {"prefix": "foo",
                                        "content": base64.b64encode(b"bar").decode()})
        self.assertEqual(m["source"]["txId"], self.xids[5])
        # The documentation's content "Ymfy" is these bytes.
        self.assertEqual(n["message"], {"prefix": "foo", "content": "Ymfy"})
        self.assertNotIn("txId", n["source"])
        for e in (m, n):
            self.assertEqual((e["source"]["schema"], e["source"]["table"]), ("", ""))

    def test_source(self):
        server_version = C.value("SHOW server_version")
        self.assertTrue(server_version)
        commits = []
        for e, j in zip(self.dbz, self.json):
            s = e["source"]
            self.assertEqual(list(s), SOURCE_KEYS if "txId" in s
                             else [k for k in SOURCE_KEYS if k != "txId"])
            self.assertTrue(s["version"].startswith("pgstream-"))
            self.assertEqual(s["connector"], "postgresql")
            self.assertEqual(s["name"], PREFIX)
            self.assertEqual(s["snapshot"], "false")
            self.assertEqual(s["db"], "postgres")
            self.assertIsNone(s["xmin"])
            self.assertEqual(s["lsn"], lsn_int(j["lsn"]))
            if j["xid"] is not None:
                self.assertEqual(s["txId"], j["xid"])
                us = us_of(j["commit_time"])
                self.assertEqual((s["ts_ms"], s["ts_us"], s["ts_ns"]),
                                 (us // 1000, us, us * 1000))
                commits.append(lsn_int(j["commit_lsn"]))
            seq = json.loads(s["sequence"])
            self.assertEqual(seq[1], str(s["lsn"]))
        self.assertEqual([e["source"]["txId"] for e in self.dbz[:5]], self.xids[:4] + [self.xids[4]])
        # sequence[0]: the commit LSN of the transaction before the event's.
        seqs = [json.loads(e["source"]["sequence"])[0] for e in self.dbz[:7]]
        distinct = []
        for c in commits:
            if not distinct or distinct[-1] != c:
                distinct.append(c)
        self.assertIsNone(seqs[0])
        self.assertEqual(seqs[1], str(distinct[0]))
        self.assertEqual(seqs[5], str(distinct[3]))  # truncate: same txn as insert 3
        self.assertEqual(seqs[6], str(distinct[4]))

    def test_processing_time(self):
        now_ms = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)
        for e in self.dbz:
            self.assertLessEqual(e["ts_ms"], now_ms)
            self.assertGreater(e["ts_ms"], now_ms - 600000)
            self.assertEqual(e["ts_us"] // 1000, e["ts_ms"])
            self.assertEqual(e["ts_ns"] // 1000, e["ts_us"])
            self.assertGreaterEqual(e["ts_ms"], e["source"]["ts_ms"])


class Values(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        C.sql("SELECT pg_create_logical_replication_slot('dbz_vals', 'pgoutput')")
        C.sql("SELECT pg_create_logical_replication_slot('dbz_str', 'pgoutput')")
        C.sql("SELECT pg_create_logical_replication_slot('dbz_dbl', 'pgoutput')")
        C.sql(MORE_ROWS)
        C.sql(TYPES_ROWS)
        C.sql("ALTER TABLE dtypes REPLICA IDENTITY FULL")
        # Stored out of line uncompressed, so that an update leaving it
        # alone does not send it.
        C.sql("ALTER TABLE dtypes ALTER t SET STORAGE EXTERNAL")
        C.sql("UPDATE dtypes SET t = repeat('x', 10000) WHERE id = 3")
        C.sql("UPDATE dtypes SET i2 = 7 WHERE id = 3")
        end = lsn_str(C.current_lsn())
        cls.modes = {}
        for slot, mode in (("dbz_vals", None), ("dbz_str", "string"), ("dbz_dbl", "double")):
            args = ["--end-lsn", end] + (["--debezium-decimal", mode] if mode else [])
            p = PgStream(C, *args, slot=slot, fmt="debezium")
            try:
                rc = p.run()
                if rc != 0:
                    raise AssertionError(p.stderr())
                events = p.events()
                cls.modes[mode] = [e["after"] for e in events
                                   if e["source"]["table"] == "dtypes"]
                if mode is None:
                    cls.more = [e["after"] for e in events
                                if e["source"]["table"] == "dmore"][0]
            finally:
                p.close()
        cls.rows = {r["id"]: r for r in cls.modes[None][:3]}

    def test_integers_floats_bool(self):
        r1, r2 = self.rows[1], self.rows[2]
        self.assertEqual((r1["i2"], r1["i4"], r1["i8"]), (-32768, 2147483647, -2**63))
        self.assertEqual((r1["f4"], r1["f8"], r1["b"]), (1.5, "NaN", True))
        self.assertEqual((r2["f4"], r2["f8"], r2["b"]), ("-Infinity", "Infinity", False))
        self.assertIsNone(self.rows[3]["i4"])

    def test_text(self):
        r1 = self.rows[1]
        self.assertEqual((r1["t"], r1["vc"], r1["ch"]), ('say "hi"', "short", "ab "))
        self.assertEqual(self.rows[2]["t"], "")

    def test_numeric_precise(self):
        r1, r2 = self.rows[1], self.rows[2]
        self.assertEqual(r1["n52"], unscaled_b64(12345))
        self.assertEqual(r1["n300"], unscaled_b64(123456789012345678901234567890))
        self.assertEqual(r1["nv"], {"scale": 1, "value": unscaled_b64(15)})
        self.assertEqual(r2["n52"], unscaled_b64(-100))
        self.assertEqual(r2["n300"], unscaled_b64(-129))
        self.assertEqual(r2["nv"], {"scale": 3, "value": unscaled_b64(-1)})
        # numeric(5,-2): the server rounds to hundreds, the Decimal's scale is -2
        self.assertEqual((r1["nneg"], r2["nneg"]), (unscaled_b64(123), unscaled_b64(-43)))

    def test_numeric_string_and_double(self):
        s = {r["id"]: r for r in self.modes["string"][:3]}
        d = {r["id"]: r for r in self.modes["double"][:3]}
        self.assertEqual((s[1]["n52"], s[1]["nv"], s[2]["nv"]), ("123.45", "1.5", "-0.001"))
        self.assertEqual((d[1]["n52"], d[1]["nv"], d[2]["nv"]), (123.45, 1.5, -0.001))
        self.assertEqual(d[1]["n300"], float(123456789012345678901234567890))

    def test_dates_and_times(self):
        r1, r2, r3 = self.rows[1], self.rows[2], self.rows[3]
        self.assertEqual(r1["d"], (datetime.date(2026, 11, 24) - EPOCH.date()).days)
        self.assertEqual(r2["d"], -1)
        self.assertEqual(r1["ts"], micros(datetime.datetime(2018, 6, 20, 15, 13, 16, 945104)))
        self.assertEqual(r1["ts"], 1529507596945104)  # the documentation's example
        self.assertEqual(r1["ts3"], micros(datetime.datetime(2018, 6, 20, 15, 13, 16, 945000))
                         // 1000)
        self.assertEqual((r2["ts"], r2["ts3"]), (-1, -1))
        self.assertEqual(r3["ts"], 9223372036825200000)
        self.assertEqual(r1["tstz"], "2018-06-20T13:13:16.945104Z")
        # The fraction always as wide as the column's scale (6), as the
        # connector's own test expects "+21016-11-04T06:51:30.000000Z".
        self.assertEqual(r2["tstz"], "2025-12-31T19:00:00.000000Z")
        self.assertEqual(r1["tm"], ((4 * 60 + 5) * 60 + 6) * 1000000 + 789000)
        self.assertEqual(r1["tm3"], ((4 * 60 + 5) * 60 + 6) * 1000 + 789)
        self.assertEqual((r2["tm"], r2["tm3"]), (0, 86399999))
        self.assertEqual(r1["ttz"], "02:05:06.789Z")
        self.assertEqual(r2["ttz"], "19:00:00Z")

    def test_interval(self):
        self.assertEqual(self.rows[1]["iv"], micro_duration(1, 2, 3, 4, 5, 6.78))
        self.assertEqual(self.rows[2]["iv"], micro_duration(0, -1, 0, 0, 0, -1.5))

    def test_uuid_json_bytea_arrays(self):
        r1, r2 = self.rows[1], self.rows[2]
        self.assertEqual(r1["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        self.assertEqual(r1["j"], '{"a" : [1, 2]}')  # json: the text as stored
        self.assertEqual(json.loads(r1["jb"]), {"k": {"z": [True, 1.50]}})
        self.assertIsInstance(r1["jb"], str)
        self.assertEqual((r2["j"], r2["jb"]), ("3", "[]"))
        self.assertEqual(r1["by"], base64.b64encode(b"\x01\x02\xff").decode())
        self.assertEqual(r2["by"], "")
        self.assertEqual((r1["ia"], r1["ta"]), ([1, None, 3], ["a b", None]))
        self.assertEqual((r2["ia"], r2["ta"]), ([], []))

    def test_arrays_of_converted_types(self):
        m = self.more
        self.assertEqual(m["da"], [(datetime.date(2026, 11, 24) - EPOCH.date()).days, None])
        self.assertEqual(m["ts3a"], [micros(datetime.datetime(2018, 6, 20, 15, 13, 16, 945000))
                                     // 1000])
        self.assertEqual(m["tza"], ["2018-06-20T13:13:16.945104Z"])
        self.assertEqual([json.loads(v) for v in m["jba"]], [{"x": 1}])
        self.assertIsInstance(m["jba"][0], str)
        self.assertEqual(m["bya"], [base64.b64encode(b"\x01\x02\xff").decode()])

    def test_bits(self):
        # io.debezium.data.Bits: the bit string as a little-endian integer,
        # in as few bytes as it needs; BIT(1) a boolean.
        def bits(text):
            n = int(text, 2)
            return base64.b64encode(n.to_bytes((n.bit_length() + 7) // 8, "little")).decode()

        m = self.more
        self.assertIs(m["b1"], True)
        self.assertEqual(m["b10"], bits("1000000001"))
        self.assertEqual(m["b10"], "AQI=")
        self.assertEqual(m["vb"], bits("0100"))
        self.assertEqual(m["vb0"], "")

    def test_string_types(self):
        # The mapping table's STRING types: Postgres's text, as the json format.
        m = self.more
        self.assertEqual((m["ip"], m["cid"], m["mac"], m["mac8"]),
                         ("192.168.0.1/24", "10.0.0.0/8", "08:00:2b:01:02:03",
                          "08:00:2b:01:02:03:04:05"))
        self.assertEqual(m["x"], "<a>b</a>")
        self.assertEqual((m["r4"], m["r8"], m["nr"], m["dr"]),
                         ("[1,5)", "[2,6)", "[1.5,2.5]", "[2026-01-01,2026-02-01)"))
        self.assertEqual(m["tr"], '["2018-06-20 15:00:00","2018-06-21 15:00:00")')
        self.assertEqual(m["e"], "ok")
        self.assertEqual(m["ipa"], ["10.0.0.1", None])

    def test_unchanged_toast(self):
        # The second update leaves the 10000-byte t unchanged: not sent.
        last = self.modes[None][-1]
        self.assertEqual(last["i2"], 7)
        self.assertEqual(last["t"], "__debezium_unavailable_value")


class Points(unittest.TestCase):
    def test_point(self):
        # io.debezium.data.geometry.Point; wkb made here with struct from the
        # coordinates the server prints.
        C.sql("CREATE TABLE pts (id int PRIMARY KEY, p point)")
        C.sql("SELECT pg_create_logical_replication_slot('dbz_pts', 'pgoutput')")
        C.sql("INSERT INTO pts VALUES (1, '(1.5,-2.25)'), (2, '(-0,1e300)'), (3, NULL),"
              " (4, '(0.1,3)')")
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), slot="dbz_pts", fmt="debezium")
        try:
            self.assertEqual(p.run(), 0, p.stderr())
            got = {e["after"]["id"]: e["after"]["p"] for e in p.events()}
        finally:
            p.close()
        for i in (1, 2, 4):
            text = C.value("SELECT p::text FROM pts WHERE id = %s", (i,))
            x, y = (float(v) for v in text.strip("()").split(","))
            wkb = base64.b64encode(struct.pack("<BIdd", 1, 1, x, y)).decode()
            self.assertEqual(got[i], {"x": x, "y": y, "wkb": wkb, "srid": None})
            self.assertEqual(list(got[i]), ["x", "y", "wkb", "srid"])
        self.assertIsNone(got[3])


class Money(unittest.TestCase):
    def test_money(self):
        # A Decimal of 2 places in each --debezium-decimal mode, the json
        # format's text unchanged; expected values from the server's own
        # numeric of the column (money::numeric).
        C.sql("CREATE TABLE cash (id int PRIMARY KEY, m money)")
        for s in ("dbz_cash", "dbz_cash_s", "dbz_cash_d", "json_cash"):
            C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (s,))
        C.sql("INSERT INTO cash VALUES (1, 1234.56), (2, -0.5), (3, 92233720368547758.07),"
              " (4, NULL)")
        end = lsn_str(C.current_lsn())
        got = {}
        for slot, fmt, args in (("dbz_cash", "debezium", ()),
                                ("dbz_cash_s", "debezium", ("--debezium-decimal", "string")),
                                ("dbz_cash_d", "debezium", ("--debezium-decimal", "double")),
                                ("json_cash", "json", ())):
            p = PgStream(C, "--end-lsn", end, *args, slot=slot, fmt=fmt)
            try:
                self.assertEqual(p.run(), 0, p.stderr())
                rows = [e.get("after") or e.get("new") for e in p.events()]
                got[slot] = {r["id"]: r["m"] for r in rows}
            finally:
                p.close()
        for i in (1, 2, 3):
            exact = C.value("SELECT m::numeric::text FROM cash WHERE id = %s", (i,))
            unscaled = int(exact.replace(".", ""))
            self.assertEqual(got["dbz_cash"][i], unscaled_b64(unscaled))
            self.assertEqual(got["dbz_cash_s"][i], exact)
            self.assertEqual(got["dbz_cash_d"][i], float(exact))
            self.assertEqual(got["json_cash"][i], C.value("SELECT m::text FROM cash WHERE id = %s",
                                                          (i,)))
        self.assertEqual(got["json_cash"][1], "$1,234.56")
        self.assertIsNone(got["dbz_cash"][4])


class Hstore(unittest.TestCase):
    def test_hstore_json(self):
        # hstore.handling.mode=json: a JSON string of the map, which is
        # what the server's hstore_to_json makes of the same value.
        C.sql("CREATE EXTENSION hstore")
        C.sql("CREATE TABLE hs (id int PRIMARY KEY, h hstore)")
        for s in ("dbz_hs", "json_hs"):
            C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (s,))
        C.sql("""INSERT INTO hs VALUES (1, 'a=>1, b=>NULL'),
                 (2, hstore(ARRAY['q"uote', E'back\\\\slash', E'tab\\there', 'é'],
                            ARRAY['x', 'y', E'line\\nbreak', 'ü'])),
                 (3, ''), (4, NULL)""")
        end = lsn_str(C.current_lsn())
        got = {}
        for slot, fmt in (("dbz_hs", "debezium"), ("json_hs", "json")):
            p = PgStream(C, "--end-lsn", end, slot=slot, fmt=fmt)
            try:
                self.assertEqual(p.run(), 0, p.stderr())
                got[fmt] = {(e.get("after") or e.get("new"))["id"]:
                            (e.get("after") or e.get("new"))["h"] for e in p.events()}
            finally:
                p.close()
        for i in (1, 2, 3):
            want = json.loads(C.value("SELECT hstore_to_json(h)::text FROM hs WHERE id = %s",
                                      (i,)))
            self.assertIsInstance(got["debezium"][i], str)
            self.assertEqual(json.loads(got["debezium"][i]), want)
            # json keeps hstore's text, as before.
            self.assertEqual(got["json"][i], C.value("SELECT h::text FROM hs WHERE id = %s", (i,)))
        self.assertEqual(json.loads(got["debezium"][1]), {"a": "1", "b": None})
        self.assertEqual(json.loads(got["debezium"][2]),
                         {'q"uote': "x", "back\\slash": "y", "tab\there": "line\nbreak", "é": "ü"})
        self.assertIsNone(got["debezium"][4])


class TimeAndIntervalModes(unittest.TestCase):
    """--debezium-time-precision connect and --debezium-interval string;
    expected values from the server's own fields (extract) and Python's
    datetime and Decimal, as Debezium computes them."""

    def test_modes(self):
        C.sql("CREATE TABLE tmodes (id int PRIMARY KEY, t time, ts timestamp, iv interval)")
        C.sql("SELECT pg_create_logical_replication_slot('dbz_tmodes', 'pgoutput')")
        C.sql("""INSERT INTO tmodes VALUES
                 (1, '04:05:06.789123', '2018-06-20 15:13:16.945104',
                  '1 year 2 mons 3 days 04:05:06.78'),
                 (2, '00:00:00', '1969-12-31 23:59:59.999999', '-1 mons -00:00:01.5'),
                 (3, '23:59:59.999999', '2026-01-01 00:00:00', '00:00:01.000001')""")
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--debezium-time-precision",
                     "connect", "--debezium-interval", "string", slot="dbz_tmodes",
                     fmt="debezium")
        try:
            self.assertEqual(p.run(), 0, p.stderr())
            got = {e["after"]["id"]: e["after"] for e in p.events()}
        finally:
            p.close()
        for i in (1, 2, 3):
            t, ts = C.sql("SELECT t::text, ts::text FROM tmodes WHERE id = %s", (i,))[0]
            tt = datetime.time.fromisoformat(t)
            self.assertEqual(got[i]["t"], ((tt.hour * 60 + tt.minute) * 60 + tt.second) * 1000
                             + tt.microsecond // 1000)
            self.assertEqual(got[i]["ts"], (datetime.datetime.fromisoformat(ts) - EPOCH)
                             // datetime.timedelta(milliseconds=1))
            y, mo, d, h, mi, sec = C.sql(
                "SELECT extract(year FROM iv)::int, extract(month FROM iv)::int,"
                " extract(day FROM iv)::int, extract(hour FROM iv)::int,"
                " extract(minute FROM iv)::int, extract(second FROM iv)::text"
                " FROM tmodes WHERE id = %s", (i,))[0]
            secs = decimal.Decimal(float(sec)).quantize(decimal.Decimal("0.000001"),
                                                        rounding=decimal.ROUND_DOWN)
            secs = format(secs.normalize(), "f")
            self.assertEqual(got[i]["iv"], "P%dY%dM%dDT%dH%dM%sS" % (y, mo, d, h, mi, secs))
        self.assertEqual(got[1]["iv"], "P1Y2M3DT4H5M6.78S")
        self.assertEqual(got[3]["iv"], "P0Y0M0DT0H0M1S")  # Debezium's double: 1.000001 is 1


class KeyChanges(unittest.TestCase):
    """REPLICA IDENTITY FULL: the old row is whole; the key is the primary
    key (from the catalog), so only its change is a delete and a create."""

    def test_full_identity(self):
        C.sql("CREATE TABLE kfull (id int PRIMARY KEY, v text)")
        C.sql("ALTER TABLE kfull REPLICA IDENTITY FULL")
        C.sql("SELECT pg_create_logical_replication_slot('dbz_kfull', 'pgoutput')")
        C.sql("INSERT INTO kfull VALUES (1, 'a')")
        C.sql("UPDATE kfull SET v = 'b' WHERE id = 1")
        C.sql("UPDATE kfull SET id = 2 WHERE id = 1")
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--tx-events", slot="dbz_kfull",
                     fmt="debezium")
        try:
            self.assertEqual(p.run(), 0, p.stderr())
            evs = [e for e in p.events() if "op" in e]
        finally:
            p.close()
        self.assertEqual([e["op"] for e in evs], ["c", "u", "d", "c"])
        self.assertEqual((evs[1]["before"], evs[1]["after"]),
                         ({"id": 1, "v": "a"}, {"id": 1, "v": "b"}))
        self.assertEqual((evs[2]["before"], evs[2]["after"]), ({"id": 1, "v": "b"}, None))
        self.assertEqual((evs[3]["before"], evs[3]["after"]), (None, {"id": 2, "v": "b"}))
        # One change of the WAL: the two halves share its place in the transaction.
        self.assertEqual(evs[2]["transaction"], evs[3]["transaction"])
        self.assertEqual(evs[3]["transaction"]["total_order"], 1)


class Options(unittest.TestCase):
    def test_bad_decimal_mode(self):
        p = PgStream(C, "--debezium-decimal", "exact", fmt="debezium")
        try:
            self.assertNotEqual(p.run(), 0)
            self.assertIn("expected precise, string or double", p.stderr())
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main()
