#!/usr/bin/python3
"""make_corpus.py — regenerate the fuzz seed corpora under fuzz/corpus/ from
real PostgreSQL output.

Starts a scratch cluster (scripts/pgcluster.sh, as the integration tests do),
runs a workload that touches every pgoutput message type — all row ops under
each replica identity, many column types with awkward values, unchanged TOAST
values, TRUNCATE, logical messages, ALTER TABLE, savepoints, user-defined
types, a replication origin, streamed (large) transactions, two-phase
commits — and after each scenario consumes the slots with
pg_logical_slot_get_binary_changes(). Each call is a decoding session of its
own, so each scenario's messages (Relation messages included) make one
self-contained decoder seed.

  /usr/bin/python3 fuzz/make_corpus.py      (run as root or as a user who may run initdb)

Decoder seed layout (see fuzz_decoder.c): one byte selecting the protocol
version, then each message as Int16 length + bytes.
"""

import hashlib
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Cluster  # noqa: E402

CORPUS = os.path.join(ROOT, "fuzz", "corpus")

# slot name → (protocol version, extra pgoutput options, two-phase slot)
SLOTS = {
    "seed_v1": (1, [], False),
    # A tiny logical_decoding_work_mem (set in the cluster) makes any sizeable
    # transaction stream: STREAM START/STOP/COMMIT/ABORT, xids on changes.
    "seed_v2": (2, ["streaming", "on"], False),
    # Two-phase needs a slot created with two_phase = true.
    "seed_v3": (3, ["streaming", "on", "two_phase", "on"], True),
}

TYPES_TABLE = """CREATE TABLE types (
    id serial PRIMARY KEY, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8,
    num numeric, b bool, t text, vc varchar(20), c char(3), by bytea, j json, jb jsonb,
    u uuid, d date, ts timestamp, tstz timestamptz, iv interval, tm time, ip inet,
    mac macaddr, pt point, bx box, ia int4[], ta text[], fa float8[], ba bool[],
    ja jsonb[], na numeric[], m2 int[][], bits varbit, mon money, tsv tsvector,
    mood mood, dom posint, dom_arr posint[], comp pair)"""

TYPE_ROWS = [
    "(1, 2, 3, 4, 1.5, 2.25, 3.125, true, 'plain', 'v', 'abc', '\\x00ff', '{\"a\":[1,2]}',"
    " '{\"b\": null}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29',"
    " '2024-02-29 12:34:56.789', '2024-02-29 12:34:56+02', '1 year 2 mons -3 days 04:05:06',"
    " '23:59:59.999999', '192.168.0.1/24', '08:00:2b:01:02:03', '(1,2)', '(3,4),(1,2)',"
    " '{1,2,3}', '{a,\"b c\",NULL,\"d\\\\\\\"e\"}', '{1.5,NaN,Infinity}', '{t,f}',"
    " ARRAY['{\"x\":1}'::jsonb], '{1e10,-0.000001}', '{{1,2},{3,4}}', B'1011', 12.34,"
    " 'a fat cat', 'happy', 5, '{1,2}', '(1,\"x\")')",
    "(-32768, -2147483648, -9223372036854775808, 4294967295, '-Infinity', 'NaN', 'NaN',"
    " false, E'tab\\there \"quoted\" \\\\ back \\u00e9 \\U0001F600 \\x01', '', '', '', '[]',"
    " '[1, \"two\", {\"3\": [true, false, null]}]', NULL, '-infinity', 'infinity',"
    " 'epoch', '-178000000 years', '00:00', '::1', NULL, '(-1.5e300,2)', NULL, '{}',"
    " '{\"\",\"{}\",\"NULL\"}', '{}', '{NULL}', '{}', '{NaN}', '{{NULL,1}}', B'', -1,"
    " '', 'sad', 1, '{}', '(,)')",
]


def seed_name(data):
    return hashlib.sha1(data).hexdigest()[:16]


def write_seed(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, seed_name(data)), "wb") as f:
        f.write(data)


# Row changes kept from each run of consecutive ones. A streamed transaction
# takes hundreds of rows to pass logical_decoding_work_mem, but the fuzzer
# learns nothing from the 4th identical INSERT and runs far faster on small
# inputs; what is kept is still a real message sequence with every control
# message (STREAM START/STOP/COMMIT, BEGIN/COMMIT) in place.
CHANGES_PER_RUN = 3


def trim(msgs):
    out, run = [], 0
    for m in msgs:
        run = run + 1 if m[:1] in (b"I", b"U", b"D") else 0
        if run <= CHANGES_PER_RUN:
            out.append(m)
    return out


def capture(c, label):
    """Consume every slot; write one decoder seed per slot with changes."""
    for slot, (version, opts, _) in SLOTS.items():
        args = ["proto_version", str(version), "publication_names", "pub",
                "messages", "true", *opts]
        sql = ("SELECT data FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL"
               + ", %s" * len(args) + ")")
        rows = c.sql(sql, [slot, *args])
        if not rows:
            continue
        out = bytearray([version - 1])
        for msg in trim([bytes(m) for (m,) in rows]):
            assert len(msg) <= 0xFFFF, "message too large for a seed: %d" % len(msg)
            out += struct.pack(">H", len(msg)) + msg
        write_seed("decoder", bytes(out))
        kinds = "".join(sorted({chr(bytes(m)[0]) for (m,) in rows}))
        rows = trim([bytes(m) for (m,) in rows])
        print("%-14s %-8s %4d messages %6d bytes  %s" % (label, slot, len(rows), len(out), kinds))


def scenarios(c):
    """(label, [statements]) run one after the other; each list is run in
    one session so savepoints, origins and PREPARE behave as written."""
    big = "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, %d) g"
    return [
        ("types", [TYPES_TABLE] + ["INSERT INTO types (i2, i4, i8, o, f4, f8, num, b, t,"
                                   " vc, c, by, j, jb, u, d, ts, tstz, iv, tm, ip, mac, pt,"
                                   " bx, ia, ta, fa, ba, ja, na, m2, bits, mon, tsv, mood,"
                                   " dom, dom_arr, comp) VALUES " + r for r in TYPE_ROWS]),
        ("update-default", ["UPDATE types SET t = 'changed', i4 = i4 + 1",
                            "UPDATE types SET id = id + 100 WHERE id = 1",
                            "DELETE FROM types WHERE id = 2"]),
        ("identity-full", ["CREATE TABLE full_t (k int, v text, n numeric)",
                           "ALTER TABLE full_t REPLICA IDENTITY FULL",
                           "INSERT INTO full_t VALUES (1, 'a', 1.0), (2, NULL, NULL)",
                           "UPDATE full_t SET v = 'b' WHERE k = 1",
                           "DELETE FROM full_t"]),
        ("identity-index", ["CREATE TABLE idx_t (a int NOT NULL, b int NOT NULL, v text)",
                            "CREATE UNIQUE INDEX idx_t_ab ON idx_t (a, b)",
                            "ALTER TABLE idx_t REPLICA IDENTITY USING INDEX idx_t_ab",
                            "INSERT INTO idx_t VALUES (1, 1, 'x')",
                            "UPDATE idx_t SET b = 2, v = 'y'",
                            "DELETE FROM idx_t"]),
        ("toast", ["CREATE TABLE toasty (id int PRIMARY KEY, small text, big text)",
                   "ALTER TABLE toasty ALTER big SET STORAGE EXTERNAL",
                   "INSERT INTO toasty SELECT 1, 's', string_agg(md5(g::text), '')"
                   " FROM generate_series(1, 120) g",
                   "UPDATE toasty SET small = 't'",
                   "DELETE FROM toasty"]),
        ("truncate", ["CREATE TABLE parent (id int PRIMARY KEY)",
                      "CREATE TABLE child (id serial, p int REFERENCES parent)",
                      "INSERT INTO parent VALUES (1)", "INSERT INTO child (p) VALUES (1)",
                      "TRUNCATE parent, child RESTART IDENTITY",
                      "INSERT INTO parent VALUES (2)", "TRUNCATE parent CASCADE",
                      "TRUNCATE full_t"]),
        ("messages", ["SELECT pg_logical_emit_message(true, 'app', 'hello')",
                      "SELECT pg_logical_emit_message(false, 'nontx', 'outside')",
                      "SELECT pg_logical_emit_message(true, '', '\\xff00fe'::bytea)",
                      "BEGIN",
                      "INSERT INTO full_t VALUES (9, 'in tx', 0)",
                      "SELECT pg_logical_emit_message(true, 'pre\u00e9fix', '')",
                      "COMMIT"]),
        ("alter", ["ALTER TABLE full_t ADD COLUMN extra jsonb DEFAULT '{}'",
                   "INSERT INTO full_t VALUES (3, 'c', 3)",
                   "ALTER TABLE full_t DROP COLUMN n",
                   "ALTER TABLE full_t ALTER k TYPE bigint",
                   "ALTER TABLE full_t RENAME v TO vv",
                   "ALTER TABLE full_t RENAME TO full_renamed",
                   "UPDATE full_renamed SET vv = 'd'",
                   "CREATE SCHEMA other",
                   "CREATE TABLE other.\"Odd \"\"Name\" (\"col one\" text)",
                   "INSERT INTO other.\"Odd \"\"Name\" VALUES ('x')"]),
        ("savepoints", ["BEGIN", "INSERT INTO full_renamed VALUES (10, 'kept')",
                        "SAVEPOINT a", "INSERT INTO full_renamed VALUES (11, 'undone')",
                        "ROLLBACK TO a", "SAVEPOINT b",
                        "INSERT INTO full_renamed VALUES (12, 'sub kept')",
                        "RELEASE b", "COMMIT",
                        "BEGIN", "INSERT INTO full_renamed VALUES (13, 'rolled back')",
                        "ROLLBACK"]),
        ("origin", ["SELECT pg_replication_origin_create('upstream')",
                    "SELECT pg_replication_origin_session_setup('upstream')",
                    "BEGIN",
                    "SELECT pg_replication_origin_xact_setup('0/ABCDEF', now())",
                    "INSERT INTO full_renamed VALUES (20, 'from origin')",
                    "COMMIT",
                    "SELECT pg_replication_origin_session_reset()"]),
        ("streamed", ["CREATE TABLE big (id int PRIMARY KEY, pad text)",
                      big % 400,
                      "BEGIN", big.replace("g, ", "g + 5000, ") % 400,
                      "SAVEPOINT s", big.replace("g, ", "g + 9000, ") % 200,
                      "ROLLBACK TO s", "COMMIT",
                      "BEGIN", big.replace("g, ", "g + 20000, ") % 400, "ROLLBACK"]),
        ("two-phase", ["BEGIN", "INSERT INTO full_renamed VALUES (30, 'prepared')",
                       "PREPARE TRANSACTION 'gid one'", "COMMIT PREPARED 'gid one'",
                       "BEGIN", "INSERT INTO full_renamed VALUES (31, 'rolled back')",
                       "PREPARE TRANSACTION 'gid two'", "ROLLBACK PREPARED 'gid two'"]),
        ("streamed-2pc", ["BEGIN", big.replace("g, ", "g + 40000, ") % 400,
                          "PREPARE TRANSACTION 'big gid'", "COMMIT PREPARED 'big gid'"]),
    ]


def decoder_corpus():
    c = Cluster("logical_decoding_work_mem = 64kB", "max_prepared_transactions = 10")
    try:
        c.sql("CREATE TYPE mood AS ENUM ('sad', 'happy')")
        c.sql("CREATE DOMAIN posint AS int CHECK (VALUE > 0)")
        c.sql("CREATE TYPE pair AS (a int, b text)")
        c.sql("CREATE PUBLICATION pub FOR ALL TABLES")
        for slot, (_, _, two_phase) in SLOTS.items():
            c.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput', false, %s)",
                  (slot, two_phase))
        for label, stmts in scenarios(c):
            conn = c.connect()
            cur = conn.cursor()
            for s in stmts:
                cur.execute(s)
            conn.close()
            capture(c, label)
        return value_texts(c)
    finally:
        c.close()


# valtype kinds as fuzz_json_value.c selects them (byte % 5).
VK = {"string": 0, "bool": 1, "number": 2, "json": 3, "array": 4}
SCALAR_KIND = {"bool": "bool", "int2": "number", "int4": "number", "int8": "number",
               "oid": "number", "float4": "number", "float8": "number",
               "numeric": "number", "json": "json", "jsonb": "json"}


def value_texts(c):
    """The text output of every column of the types table, with the kind
    the encoder renders it as."""
    cols = c.sql("SELECT a.attname, t.typname, e.typname, t.typdelim"
                 " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
                 " LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'"
                 " WHERE a.attrelid = 'types'::regclass AND a.attnum > 0"
                 " AND NOT a.attisdropped")
    seeds = []
    for name, typ, elem, delim in cols:
        for (text,) in c.sql('SELECT "%s"::text FROM types' % name):
            if text is None:
                continue
            if elem:
                head = [VK["array"], VK[SCALAR_KIND.get(elem, "string")]]
            else:
                head = [VK[SCALAR_KIND.get(typ, "string")], 0]
            head.append(1 if delim == ";" else 0)
            seeds.append(bytes(head) + text.encode())
    return seeds


def config_corpus():
    """Hand-made: argv words, environment assignments, .env text."""
    def seed(argv, env, dotenv):
        head = bytes([len(argv) | len(env) << 4])
        pieces = b"".join(w.encode() + b"\0" for w in argv + env)
        return head + pieces + dotenv.encode()
    return [
        seed(["--slot", "s1", "--format=json"], [], ""),
        seed(["--database-url", "postgres://u:p@h:5432/db", "--start-lsn", "0/16B3748",
              "--end-lsn=1/0"], [], ""),
        seed(["--fsync=false", "--output", "/tmp/x", "--status-interval", "0.5"],
             ["LOG_LEVEL=debug"], "SLOT_NAME=from_env\n"),
        seed([], ["DATABASE_URL=host=localhost", "SLOT_NAME=bad-Name"], ""),
        seed([], [], "# comment\nexport DATABASE_URL='postgres://x'\n"
                     "PUBLICATION_NAME=\"pub\"\nUNKNOWN=1\n  FORMAT = pretty  \n"),
        seed(["--create-publication", "--tables", "a,b"], [], "TEMPORARY_SLOT=yes\n"),
        seed(["--temporary-slot", "--start-lsn", "0/1"], [], ""),
        seed(["--help"], [], ""), seed(["-h", "--version"], [], ""),
        seed(["--reconnect-max-delay", "86400.0004"], [], "not a key value line\n"),
        seed(["--nope"], [], ""), seed(["stray"], [], ""), seed(["--slot"], [], ""),
    ]


def main():
    for (target, seeds) in (("json_value", decoder_corpus()), ("config", config_corpus())):
        for s in seeds:
            write_seed(target, s)
        print("%s: %d seeds" % (target, len(seeds)))


if __name__ == "__main__":
    main()
