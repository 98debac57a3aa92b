"""--format debezium --debezium-schemas against a real server: each value is
{"schema": ..., "payload": ...} as Kafka Connect's JSON converter writes it
with schemas.enable=true.

Expected schemas are Debezium's documentation (postgresql.adoc): the create
event's example schema for the customers table, transcribed below field by
field, and the data type mapping tables, transcribed as MAPPING (type, and
semantic name with its parameters, per column type and per option). What the
documentation's example leaves out or contradicts in its own payload is
written here as a difference, each with its reason. Every payload is also
checked against its schema by a validator of Kafka Connect's JSON
semantics, and against the same event without --debezium-schemas."""

import base64
import json
import struct
import unittest

from harness import Cluster, PgStream, lsn_str

C = None
PREFIX = "PostgreSQL_server"


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE EXTENSION hstore")
    C.sql("CREATE EXTENSION ltree")
    C.sql("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
    # enumsortorder, not alphabetical: 'meh' sorts between sad and ok.
    C.sql("ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok'")
    C.sql("CREATE DOMAIN posint AS int4 NOT NULL CHECK (VALUE > 0)")
    C.sql("CREATE DOMAIN moodd AS mood")
    # The documentation's table (its SERIAL is an int4 with a default).
    C.sql("""CREATE TABLE customers (id SERIAL, first_name VARCHAR(255) NOT NULL,
             last_name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL, PRIMARY KEY(id))""")
    C.sql(TYPES_TABLE)
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


def stream(slot, *args):
    """Events up to now, through slot (created on first use)."""
    end = lsn_str(C.current_lsn())
    p = PgStream(C, "--end-lsn", end, "--topic-prefix", PREFIX, *args, slot=slot,
                 fmt="debezium")
    try:
        rc = p.run()
        if rc != 0:
            raise AssertionError(p.stderr())
        return p.events()
    finally:
        p.close()


def slots(*names):
    for s in names:
        C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (s,))


# ---- Kafka Connect's JSON semantics, to check a payload against its schema ----

INT_RANGES = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def check(schema, value, path="$", partial=False):
    """Raise AssertionError unless value is what schema describes. partial:
    a struct's required fields may be absent (not null), as in the
    documentation's delete event, whose before holds only the key that
    REPLICA IDENTITY DEFAULT sends."""
    if value is None:
        assert schema["optional"], "%s: null in a required %s" % (path, schema["type"])
        return
    t = schema["type"]
    if t in INT_RANGES:
        bits = INT_RANGES[t]
        assert type(value) is int, "%s: %r is not an %s" % (path, value, t)
        assert -(1 << (bits - 1)) <= value < (1 << (bits - 1)), "%s: %r out of %s" % (path, value, t)
    elif t in ("float", "double"):
        # the JSON converter's NaN and infinities are strings
        assert type(value) in (int, float) or value in ("NaN", "Infinity", "-Infinity"), \
            "%s: %r is not a %s" % (path, value, t)
    elif t == "boolean":
        assert type(value) is bool, "%s: %r is not a boolean" % (path, value)
    elif t == "string":
        assert type(value) is str, "%s: %r is not a string" % (path, value)
        if schema.get("name") == "io.debezium.data.Enum":
            assert value in schema["parameters"]["allowed"].split(","), \
                "%s: %r not among %s" % (path, value, schema["parameters"]["allowed"])
        if schema.get("name") == "io.debezium.data.Json":
            json.loads(value)
    elif t == "bytes":
        assert type(value) is str, "%s: %r is not base64" % (path, value)
        base64.b64decode(value, validate=True)
    elif t == "map":
        assert type(value) is dict, "%s: %r is not a map" % (path, value)
        for k, v in value.items():
            check(schema["keys"], k, "%s key" % path)
            check(schema["values"], v, "%s[%r]" % (path, k))
    elif t == "array":
        assert type(value) is list, "%s: %r is not an array" % (path, value)
        for i, v in enumerate(value):
            check(schema["items"], v, "%s[%d]" % (path, i))
    elif t == "struct":
        assert type(value) is dict, "%s: %r is not a struct" % (path, value)
        fields = {f["field"]: f for f in schema["fields"]}
        unknown = set(value) - set(fields)
        assert not unknown, "%s: fields %s not in the schema" % (path, sorted(unknown))
        for name, f in fields.items():
            if partial and name not in value:
                continue
            check(f, value.get(name), "%s.%s" % (path, name))
        # the schema lists the payload's fields in the payload's order
        order = [f["field"] for f in schema["fields"] if f["field"] in value]
        assert order == list(value), "%s: order %s, schema %s" % (path, list(value), order)
    else:
        raise AssertionError("%s: unknown schema type %r" % (path, t))


def prim(t, field, optional=False, **extra):
    """A field's schema as the JSON converter writes it, in its member order."""
    s = {"type": t, "optional": optional}
    for k in ("name", "version", "doc", "parameters", "default"):
        if k in extra:
            s[k] = extra[k]
    s["field"] = field
    return s


# ---- the documentation's create event (postgresql.adoc, "create events") ----

DOC_ROW = [prim("int32", "id"), prim("string", "first_name"), prim("string", "last_name"),
           prim("string", "email")]
DOC_SOURCE = [prim("string", "version"), prim("string", "connector"), prim("string", "name"),
              prim("int64", "ts_ms"), prim("int64", "ts_us"), prim("int64", "ts_ns"),
              prim("boolean", "snapshot", True, default=False), prim("string", "db"),
              prim("string", "schema"), prim("string", "table"), prim("int64", "txId", True),
              prim("int64", "lsn", True), prim("int64", "xmin", True)]


def documented_envelope():
    """The example's schema, with the differences pgstream writes, each
    one the documentation's own payload or connector asks for."""
    source = [dict(f) for f in DOC_SOURCE]
    # 1. snapshot: the example's payload and ours write a string ("true",
    #    "false"); the connector's schema for it is its SnapshotRecord enum.
    source[6] = prim("string", "snapshot", True, name="io.debezium.data.Enum", version=1,
                     parameters={"allowed": "true,first,first_in_data_collection,"
                                            "last_in_data_collection,last,false,incremental"},
                     default="false")
    # 2. sequence: in the example's payload, missing from its schema.
    source.insert(8, prim("string", "sequence", True))
    row = {"type": "struct", "fields": DOC_ROW, "optional": True,
           "name": PREFIX + ".public.customers.Value"}
    return {
        "type": "struct",
        "fields": [
            dict(row, field="before"), dict(row, field="after"),
            {"type": "struct", "fields": source, "optional": False,
             # 3. the connector's schemas carry their version (1 here)
             "name": "io.debezium.connector.postgresql.Source", "version": 1,
             "field": "source"},
            prim("string", "op"), prim("int64", "ts_ms", True), prim("int64", "ts_us", True),
            prim("int64", "ts_ns", True),
            # 4. the transaction block, which the connector's envelope
            #    always has (null without transaction metadata)
            {"type": "struct", "fields": [prim("string", "id"), prim("int64", "total_order"),
                                          prim("int64", "data_collection_order")],
             "optional": True, "name": "event.block", "version": 1, "field": "transaction"},
        ],
        "optional": False,
        # The example names it after the database ("inventory"); the
        # connector's names are its topics': prefix.schema.table.
        "name": PREFIX + ".public.customers.Envelope",
        "version": 2,  # Envelope.SCHEMA_VERSION
    }


def without_times(e):
    """An envelope without its processing times (two runs differ in them)."""
    return {k: v for k, v in e.items() if k not in ("ts_ms", "ts_us", "ts_ns")}


class DocumentationEvents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        slots("sch_doc", "plain_doc")
        C.sql("INSERT INTO customers (first_name, last_name, email) "
              "VALUES ('Anne', 'Kretchmar', 'annek@noanswer.org')")
        C.sql("UPDATE customers SET first_name = 'Anne Marie' WHERE id = 1")
        C.sql("DELETE FROM customers WHERE id = 1")
        C.sql("TRUNCATE customers")
        C.sql("SELECT pg_logical_emit_message(true, 'foo', 'bar')")
        cls.events = stream("sch_doc", "--debezium-schemas", "--tx-events")
        cls.plain = stream("plain_doc", "--tx-events")

    def test_create_schema_is_the_documentations(self):
        create = self.events[1]
        self.assertEqual(list(create), ["schema", "payload"])
        self.assertEqual(create["payload"]["op"], "c")
        want = documented_envelope()
        got = create["schema"]
        # field by field first, for a readable failure
        for w, g in zip(want["fields"], got["fields"]):
            self.assertEqual(g, w, "envelope field %s" % w["field"])
        self.assertEqual(got, want)
        # the JSON converter's member order, at each level
        self.assertEqual(list(got), ["type", "fields", "optional", "name", "version"])
        self.assertEqual(list(got["fields"][0]), ["type", "fields", "optional", "name", "field"])
        self.assertEqual(list(got["fields"][0]["fields"][0]), ["type", "optional", "field"])

    def test_create_payload_is_the_documentations(self):
        after = self.events[1]["payload"]["after"]
        self.assertEqual(after, {"id": 1, "first_name": "Anne", "last_name": "Kretchmar",
                                 "email": "annek@noanswer.org"})

    def test_every_change_event_has_the_same_schema(self):
        # "A change event's value schema is the same in every change event
        # that the connector generates for a particular table."
        changes = [e for e in self.events if e["payload"].get("op") in ("c", "u", "d", "t")]
        self.assertEqual([e["payload"]["op"] for e in changes], ["c", "u", "d", "t"])
        for e in changes:
            self.assertEqual(e["schema"], changes[0]["schema"])

    def test_payloads_are_the_events_without_schemas(self):
        self.assertEqual(len(self.events), len(self.plain))
        for e, p in zip(self.events, self.plain):
            self.assertEqual(without_times(e["payload"]), without_times(p))

    def test_every_payload_is_what_its_schema_says(self):
        for e in self.events:
            p = e["payload"]
            if p.get("op") not in ("u", "d"):
                check(e["schema"], p)
                continue
            # before: the key alone, as the documentation's delete event
            before = dict(e["schema"]["fields"][0])
            check(before, p["before"], "$.before", partial=True)
            self.assertEqual(p["before"], {"id": 1} if p["op"] == "d" else None)
            check(dict(e["schema"], fields=e["schema"]["fields"][1:]),
                  {k: v for k, v in p.items() if k != "before"})

    def test_message_schema(self):
        m = [e for e in self.events if e["payload"].get("op") == "m"][0]
        s = m["schema"]
        self.assertEqual(s["name"], "io.debezium.connector.postgresql.MessageValue")
        self.assertEqual([f["field"] for f in s["fields"]],
                         ["source", "op", "ts_ms", "ts_us", "ts_ns", "message"])
        msg = s["fields"][-1]
        self.assertEqual(msg["name"], "io.debezium.connector.postgresql.Message")
        self.assertEqual(msg["fields"], [prim("string", "prefix", True),
                                         prim("bytes", "content", True)])

    def test_transaction_events(self):
        # The documentation's BEGIN/END fields, as the connector's
        # TransactionMetadataValue schema types them.
        tx = [e for e in self.events if "status" in e["payload"]]
        self.assertEqual([e["payload"]["status"] for e in tx], ["BEGIN", "END"] * 5)
        s = tx[0]["schema"]
        self.assertEqual(s["name"], "io.debezium.connector.common.TransactionMetadataValue")
        self.assertEqual(s["fields"][:3], [prim("string", "status"), prim("string", "id"),
                                           prim("int64", "event_count", True)])
        dc = s["fields"][3]
        self.assertEqual((dc["type"], dc["optional"], dc["field"]),
                         ("array", True, "data_collections"))
        self.assertEqual(dc["items"]["name"], "event.collection")
        self.assertEqual(dc["items"]["fields"], [prim("string", "data_collection"),
                                                 prim("int64", "event_count")])
        self.assertEqual(s["fields"][4], prim("int64", "ts_ms"))
        for e in tx:
            self.assertEqual(e["schema"], s)
        end = tx[1]["payload"]
        self.assertEqual(end["event_count"], 1)
        self.assertEqual(end["data_collections"],
                         [{"data_collection": "public.customers", "event_count": 1}])


# ---- the data type mapping tables ----

TYPES_TABLE = """CREATE TABLE mapped (
    id int PRIMARY KEY, b bool NOT NULL, b1 bit(1), b10 bit(10), vb varbit, vb8 varbit(8),
    i2 smallint, i4 integer, i8 bigint, o oid, f4 real, f8 double precision,
    ch char(3), vc varchar(10), bp bpchar, t text, tstz timestamptz, ttz timetz,
    iv interval, by bytea, j json, jb jsonb, x xml, u uuid, p point, ci circle NOT NULL, ln line,
    bx box, sg lseg, pa path, pc path, pg polygon,
    ip inet, cid cidr, mac macaddr, mac8 macaddr8, r4 int4range, r8 int8range,
    nr numrange, tsr tsrange, tstzr tstzrange, dr daterange, e mood,
    d date, tm3 time(3), tm6 time(6), tm time, ts3 timestamp(3), ts6 timestamp(6), ts timestamp,
    n52 numeric(5,2), nv numeric, m money, h hstore, lt ltree, tsv tsvector,
    dom posint, domen moodd,
    a_i2 int2[], a_i4 int4[], a_i8 int8[], a_t text[], a_vc varchar[], a_bool bool[],
    a_f4 float4[], a_f8 float8[], a_n52 numeric(5,2)[], a_nv numeric[], a_d date[],
    a_u uuid[], a_j json[], a_jb jsonb[], a_tm time[], a_ttz timetz[], a_ts3 timestamp(3)[],
    a_tstz timestamptz[], a_by bytea[], a_ip inet[], a_h hstore[])"""

ROW = """INSERT INTO mapped VALUES (1, true, '1', '1000000001', '0101', '00000001',
    -32768, 2147483647, -9223372036854775808, 4000000000, 1.5, 'NaN',
    'ab', 'short', 'bp', 'text', '2018-06-20 15:13:16.945104+02', '04:05:06.789+02',
    '1 year 2 mons 3 days 04:05:06.78', '\\x0102ff', '{"a": [1]}', '{"k": 1}', '<a>b</a>',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '(1.5,-2)', '<(1.5,-2),3>', '{1,-1,0.5}',
    '((0,0),(2,1.5))', '[(0,0),(1,2)]', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))',
    '((0,0),(0,1),(1,1))',
    '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', '[1,5)',
    '(1,5]', '[1.5,2.5]', '[2018-06-20 15:00,2018-06-21 15:00)',
    '[2018-06-20 15:00+00,2018-06-21 15:00+00)', '[2026-01-01,2026-02-01)', 'meh',
    '2026-11-24', '04:05:06.789', '04:05:06.789012', '04:05:06', '2018-06-20 15:13:16.945',
    '2018-06-20 15:13:16.945104', '2018-06-20 15:13:16', 123.45, 1.5, 1234.56, 'a=>1, b=>NULL',
    'Top.Science.Astronomy', 'a fat cat sat on a mat', 7, 'ok',
    '{1,NULL}', '{2}', '{3}', '{"a b",NULL}', '{x}', '{t,f}', '{1.5}', '{NaN,2}',
    '{1.5,NULL,-2}', '{1.5,-0.001,7}', '{2026-11-24}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
    ARRAY['{"x":1}'::json], ARRAY['[1]'::jsonb], '{04:05:06.789}', '{04:05:06+02}',
    '{"2018-06-20 15:13:16.945"}', '{"2018-06-20 15:13:16.945104+02"}', ARRAY['\\x01ff'::bytea],
    '{10.0.0.1}', ARRAY['a=>1'::hstore, NULL, E'"q\\\\"u"=>NULL'::hstore])"""


def named(t, name, **params):
    d = {"type": t, "name": name, "version": 1}
    if params:
        d["parameters"] = {k.replace("_", "."): v for k, v in params.items()}
    return d


def plain(t):
    return {"type": t}


def array(items):
    return {"type": "array", "items": dict(items, optional=True)}


ZONED_TS = named("string", "io.debezium.time.ZonedTimestamp")
VSD = {"type": "struct", "fields": [prim("int32", "scale"), prim("bytes", "value")],
       "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
       "doc": "Variable scaled decimal"}
DEC52 = named("bytes", "org.apache.kafka.connect.data.Decimal", scale="2",
              connect_decimal_precision="5")
POINT = {"type": "struct", "fields": [prim("double", "x"), prim("double", "y"),
                                      prim("bytes", "wkb", True), prim("int32", "srid", True)],
         "name": "io.debezium.data.geometry.Point", "version": 1, "doc": "Geometry (POINT)"}
# Circle and Line: optional whatever the column (their builders are)
CIRCLE = {"type": "struct",
          "fields": [{"type": "struct", "fields": POINT["fields"], "optional": False,
                      "name": POINT["name"], "version": 1, "doc": POINT["doc"],
                      "field": "center"}, prim("double", "radius")],
          "optional": True, "name": "io.debezium.data.geometry.Circle", "version": 1,
          "doc": "Geometry (CIRCLE)"}
LINE = {"type": "struct", "fields": [prim("double", "a"), prim("double", "b"),
                                     prim("double", "c")],
        "optional": True, "name": "io.debezium.data.geometry.Line", "version": 1,
        "doc": "Geometry (LINE)"}
GEOMETRY = {"type": "struct",
            "fields": [prim("bytes", "wkb"), prim("int32", "srid", True),
                       {"type": "map", "keys": {"type": "string", "optional": False},
                        "values": {"type": "string", "optional": False}, "optional": True,
                        "field": "extensions"}],
            "optional": True, "name": "io.debezium.data.geometry.Geometry", "version": 2,
            "doc": "Geometry"}
JSON = named("string", "io.debezium.data.Json")
ENUM = named("string", "io.debezium.data.Enum", allowed="sad,meh,ok,happy")

# Column -> its schema under the defaults, from the mapping tables.
MAPPING = {
    "id": plain("int32"), "b": plain("boolean"), "b1": plain("boolean"),
    "b10": named("bytes", "io.debezium.data.Bits", length="10"),
    "vb": named("bytes", "io.debezium.data.Bits", length="2147483647"),
    "vb8": named("bytes", "io.debezium.data.Bits", length="8"),
    "i2": plain("int16"), "i4": plain("int32"), "i8": plain("int64"), "o": plain("int64"),
    "f4": plain("float"), "f8": plain("double"),
    "ch": plain("string"), "vc": plain("string"), "bp": plain("string"), "t": plain("string"),
    "tstz": ZONED_TS, "ttz": named("string", "io.debezium.time.ZonedTime"),
    "iv": named("int64", "io.debezium.time.MicroDuration"), "by": plain("bytes"),
    "j": JSON, "jb": JSON, "x": named("string", "io.debezium.data.Xml"),
    "u": named("string", "io.debezium.data.Uuid"), "p": POINT, "ci": CIRCLE, "ln": LINE,
    "bx": GEOMETRY, "sg": GEOMETRY, "pa": GEOMETRY, "pc": GEOMETRY, "pg": GEOMETRY,
    "ip": plain("string"), "cid": plain("string"), "mac": plain("string"),
    "mac8": plain("string"), "r4": plain("string"), "r8": plain("string"),
    "nr": plain("string"), "tsr": plain("string"), "tstzr": plain("string"),
    "dr": plain("string"), "e": ENUM,
    "d": named("int32", "io.debezium.time.Date"), "tm3": named("int32", "io.debezium.time.Time"),
    "tm6": named("int64", "io.debezium.time.MicroTime"),
    "tm": named("int64", "io.debezium.time.MicroTime"),
    "ts3": named("int64", "io.debezium.time.Timestamp"),
    "ts6": named("int64", "io.debezium.time.MicroTimestamp"),
    "ts": named("int64", "io.debezium.time.MicroTimestamp"),
    "n52": DEC52, "nv": VSD,
    "m": named("bytes", "org.apache.kafka.connect.data.Decimal", scale="2"),
    "h": JSON, "lt": named("string", "io.debezium.data.Ltree"),
    "tsv": named("string", "io.debezium.data.Tsvector"),
    # a domain is its base type; NOT NULL on the domain is not the column's
    "dom": plain("int32"), "domen": ENUM,
    "a_i2": array(plain("int16")), "a_i4": array(plain("int32")), "a_i8": array(plain("int64")),
    "a_t": array(plain("string")), "a_vc": array(plain("string")),
    "a_bool": array(plain("boolean")), "a_f4": array(plain("float")),
    "a_f8": array(plain("double")), "a_n52": array(DEC52), "a_nv": array(VSD),
    "a_d": array(named("int32", "io.debezium.time.Date")),
    "a_u": array(named("string", "io.debezium.data.Uuid")), "a_j": array(JSON),
    "a_jb": array(JSON), "a_tm": array(named("int64", "io.debezium.time.MicroTime")),
    "a_ttz": array(named("string", "io.debezium.time.ZonedTime")),
    "a_ts3": array(named("int64", "io.debezium.time.Timestamp")), "a_tstz": array(ZONED_TS),
    "a_by": array(plain("bytes")), "a_ip": array(plain("string")), "a_h": array(JSON),
}

# What each option changes (the tables for decimal.handling.mode,
# time.precision.mode=connect and interval.handling.mode=string).
MODES = {
    ("--debezium-decimal", "string"): {
        "n52": plain("string"), "nv": plain("string"), "m": plain("string"),
        "a_n52": array(plain("string")), "a_nv": array(plain("string"))},
    ("--debezium-decimal", "double"): {
        "n52": plain("double"), "nv": plain("double"), "m": plain("double"),
        "a_n52": array(plain("double")), "a_nv": array(plain("double"))},
    ("--debezium-time-precision", "connect"): {
        "d": named("int32", "org.apache.kafka.connect.data.Date"),
        # Kafka Connect's Time is int32 (the table says INT64)
        **{c: named("int32", "org.apache.kafka.connect.data.Time") for c in ("tm3", "tm6", "tm")},
        **{c: named("int64", "org.apache.kafka.connect.data.Timestamp")
           for c in ("ts3", "ts6", "ts")},
        "a_d": array(named("int32", "org.apache.kafka.connect.data.Date")),
        "a_tm": array(named("int32", "org.apache.kafka.connect.data.Time")),
        "a_ts3": array(named("int64", "org.apache.kafka.connect.data.Timestamp"))},
    ("--debezium-interval", "string"): {"iv": named("string", "io.debezium.time.Interval")},
}

NOT_NULL = {"id", "b"}


def field_schema(col, spec):
    """The field's schema in the JSON converter's member order."""
    s = {"type": spec["type"]}
    if "fields" in spec:
        s["fields"] = spec["fields"]
    if "items" in spec:
        s["items"] = field_schema(None, spec["items"])
    s["optional"] = spec.get("optional", col not in NOT_NULL)
    for k in ("name", "version", "doc", "parameters"):
        if k in spec:
            s[k] = spec[k]
    if col is not None:
        s["field"] = col
    return s


class TypeMappings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.runs = {}
        names = {None: "sch_types"}
        for i, mode in enumerate(MODES):
            names[mode] = "sch_types_%d" % i
        slots(*names.values())
        C.sql(ROW)
        for mode, slot in names.items():
            args = ("--debezium-schemas",) + (mode or ())
            cls.runs[mode] = [e for e in stream(slot, *args)
                              if e["payload"].get("source", {}).get("table") == "mapped"]

    def after_schema(self, mode):
        e = self.runs[mode][0]
        return {f["field"]: f for f in e["schema"]["fields"][1]["fields"]}

    def test_every_column_of_the_mapping_tables(self):
        got = self.after_schema(None)
        self.assertEqual(list(got), [c for c in MAPPING])
        for col, spec in MAPPING.items():
            self.assertEqual(got[col], field_schema(col, spec), col)

    def test_each_option(self):
        for mode, changed in MODES.items():
            got = self.after_schema(mode)
            for col, spec in MAPPING.items():
                self.assertEqual(got[col], field_schema(col, changed.get(col, spec)),
                                 "%s %s" % (mode, col))

    def test_payloads_are_what_the_schemas_say(self):
        for mode, events in self.runs.items():
            self.assertEqual(len(events), 1, mode)
            for e in events:
                check(e["schema"], e["payload"])

    def test_array_values(self):
        after = self.runs[None][0]["payload"]["after"]
        # numeric[]: Decimals of the column's scale, or VariableScaleDecimals
        def unscaled(n):
            size = (n if n >= 0 else ~n).bit_length() // 8 + 1
            return base64.b64encode(n.to_bytes(size, "big", signed=True)).decode()
        self.assertEqual(after["a_n52"], [unscaled(150), None, unscaled(-200)])
        self.assertEqual(after["a_nv"], [{"scale": 1, "value": unscaled(15)},
                                         {"scale": 3, "value": unscaled(-1)},
                                         {"scale": 0, "value": unscaled(7)}])
        self.assertEqual(self.runs[("--debezium-decimal", "string")][0]["payload"]["after"]
                         ["a_nv"], ["1.5", "-0.001", "7"])
        self.assertEqual(self.runs[("--debezium-decimal", "double")][0]["payload"]["after"]
                         ["a_nv"], [1.5, -0.001, 7])
        # hstore[]: each element the JSON string hstore_to_json makes of it
        want = [json.loads(v) if v is not None else None for v in C.value(
            "SELECT array_agg(hstore_to_json(u.hs)::text ORDER BY u.k) FROM mapped, "
            "unnest(a_h) WITH ORDINALITY AS u(hs, k)")]
        self.assertEqual([json.loads(v) if v is not None else None for v in after["a_h"]], want)
        self.assertEqual(want[2], {'q"u': None})
        # circle and line: the server's coordinates; the center's wkb made
        # here with struct
        x, y, r = (float(v) for v in C.value(
            "SELECT (center(ci))[0] || ',' || (center(ci))[1] || ',' || radius(ci) "
            "FROM mapped").split(","))
        wkb = base64.b64encode(struct.pack("<BIdd", 1, 1, x, y)).decode()
        self.assertEqual(after["ci"], {"center": {"x": x, "y": y, "wkb": wkb, "srid": None},
                                       "radius": r})
        self.assertEqual(list(after["ci"]), ["center", "radius"])
        self.assertEqual(after["ln"], {"a": 1, "b": -1, "c": 0.5})
        # box, lseg, path, polygon: Geometry, the WKB made here with struct
        # from the points the server prints, as the connector's WkbWriter
        def points(text):
            nums = [float(v) for v in text.replace("(", " ").replace(")", " ")
                    .replace("[", " ").replace("]", " ").replace(",", " ").split()]
            return list(zip(nums[::2], nums[1::2]))

        def wkb(kind, pts):
            head = struct.pack("<BII", 1, 2, len(pts)) if kind == "line" else \
                struct.pack("<BIII", 1, 3, 1, len(pts))
            return base64.b64encode(head + b"".join(struct.pack("<dd", *p) for p in pts)).decode()
        texts = dict(zip(("bx", "sg", "pa", "pc", "pg"), C.sql(
            "SELECT bx::text, sg::text, pa::text, pc::text, pg::text FROM mapped")[0]))
        (x1, y1), (x2, y2) = points(texts["bx"])
        ring = points(texts["pg"])
        want = {
            "bx": (wkb("ring", [(x1, y1), (x1, y2), (x2, y2), (x2, y1), (x1, y1)]),
                   {"type": "box"}),
            "sg": (wkb("line", points(texts["sg"])), {"type": "lseg"}),
            "pa": (wkb("line", points(texts["pa"])), {"type": "path", "closed": "false"}),
            "pc": (wkb("line", points(texts["pc"])), {"type": "path", "closed": "true"}),
            "pg": (wkb("ring", ring + [ring[0]]), {"type": "polygon"}),
        }
        for col, (w, ext) in want.items():
            self.assertEqual(after[col], {"wkb": w, "srid": None, "extensions": ext}, col)
        # ltree and tsvector: their text, as the server prints it
        self.assertEqual((after["lt"], after["tsv"]),
                         tuple(C.sql("SELECT lt::text, tsv::text FROM mapped")[0]))


class SchemaChanges(unittest.TestCase):
    def test_schema_follows_the_relation(self):
        # A new Relation message (a column added) gives the next events a new
        # schema; a column made NOT NULL is required from then on.
        C.sql("CREATE TABLE evolving (id int PRIMARY KEY, a text)")
        slots("sch_evolve")
        C.sql("INSERT INTO evolving VALUES (1, 'x')")
        C.sql("ALTER TABLE evolving ADD COLUMN b int NOT NULL DEFAULT 0")
        C.sql("INSERT INTO evolving VALUES (2, 'y', 5)")
        events = [e for e in stream("sch_evolve", "--debezium-schemas")
                  if e["payload"]["source"]["table"] == "evolving"]
        self.assertEqual(len(events), 2)
        first, second = ([f for f in e["schema"]["fields"][1]["fields"]] for e in events)
        self.assertEqual(first, [prim("int32", "id"), prim("string", "a", True)])
        self.assertEqual(second, [prim("int32", "id"), prim("string", "a", True),
                                  prim("int32", "b")])
        for e in events:
            check(e["schema"], e["payload"])

    def test_filtered_columns(self):
        # An excluded column is not in the schema; a masked one is a string.
        C.sql("CREATE TABLE secretive (id int PRIMARY KEY, pw text NOT NULL, n int NOT NULL)")
        slots("sch_filter")
        C.sql("INSERT INTO secretive VALUES (1, 'hunter2', 42)")
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--debezium-schemas",
                     "--exclude-columns", "public.secretive.pw", "--mask-columns",
                     "public.secretive.n", slot="sch_filter", fmt="debezium",
                     env={"MASK_SECRET": "s3cret"})
        try:
            self.assertEqual(p.run(), 0, p.stderr())
            e = [e for e in p.events() if e["payload"]["source"]["table"] == "secretive"][0]
        finally:
            p.close()
        self.assertEqual(e["schema"]["fields"][1]["fields"],
                         [prim("int32", "id"), prim("string", "n")])
        check(e["schema"], e["payload"])


class Options(unittest.TestCase):
    def test_needs_debezium_format(self):
        p = PgStream(C, "--debezium-schemas", fmt="json")
        try:
            self.assertNotEqual(p.run(), 0)
            self.assertIn("--debezium-schemas needs --format debezium", p.stderr())
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main()
