"""Text from databases in every server encoding arrives as the same characters
in UTF-8 JSON.

One database per server encoding PostgreSQL supports (LC_COLLATE/LC_CTYPE 'C',
template0). Each gets a schema, a table and columns whose names hold non-ASCII
characters of that encoding, and changes whose values hold its whole
repertoire (single-byte encodings: every byte from 0x80 to 0xFF that is a
character; multi-byte ones: every character of a fixed sample of Unicode that
the encoding can represent, as the server itself decides): an INSERT, an
UPDATE's old row (REPLICA IDENTITY FULL), an unchanged-TOAST update, a text
array, a jsonb value, a DELETE and a transactional logical message (its prefix
is converted by the server; its content, which pgoutput sends unconverted, by
pgstream). Every string is compared character by character with what was
inserted, in the JSON and in the pretty format.

Also: a user's own client_encoding (URL, PGCLIENTENCODING, options, role and
database settings) cannot change the output; and in a SQL_ASCII database,
where the server stores bytes unconverted, valid UTF-8 passes unchanged while
bytes that are not UTF-8 become U+FFFD with one warning per column and a count
at exit, or, with --invalid-utf8=fail, stop pgstream before anything of that
transaction is acknowledged."""

import base64
import random
import unittest

import psycopg2

from harness import Cluster, PgStream, lsn_int, wait_slot_inactive

C = None

SINGLE_BYTE = ["LATIN1", "LATIN2", "LATIN3", "LATIN4", "LATIN5", "LATIN6", "LATIN7",
               "LATIN8", "LATIN9", "LATIN10", "ISO_8859_5", "ISO_8859_6", "ISO_8859_7",
               "ISO_8859_8", "WIN866", "WIN874", "WIN1250", "WIN1251", "WIN1252",
               "WIN1253", "WIN1254", "WIN1255", "WIN1256", "WIN1257", "WIN1258",
               "KOI8R", "KOI8U"]
MULTI_BYTE = ["UTF8", "EUC_JP", "EUC_JIS_2004", "EUC_CN", "EUC_KR", "EUC_TW"]

# The sample of Unicode tried in multi-byte encodings: Latin, Greek, Cyrillic,
# punctuation and symbols, kana, Hangul, CJK ideographs, full-width forms.
SAMPLE_RANGES = [(0xA1, 0x17F), (0x391, 0x3C9), (0x401, 0x451), (0x2010, 0x2030),
                 (0x2190, 0x2199), (0x2460, 0x2473), (0x25A0, 0x25CF), (0x3000, 0x30FF),
                 (0x3131, 0x318E), (0x4E00, 0x4FFF), (0x7E00, 0x7EFF), (0xAC00, 0xAD00),
                 (0xFF01, 0xFF5E)]
SAMPLE = "".join(chr(c) for lo, hi in SAMPLE_RANGES for c in range(lo, hi + 1))


def setUpModule():
    global C
    C = Cluster("max_replication_slots = 60", "max_wal_senders = 60")
    # Which characters an encoding holds, as the server decides: a character
    # is kept if the server converts it from UTF-8 to the encoding and back
    # to itself. (Not every one does: EUC_JP stores U+00A6 as a character it
    # gives back as U+FFE4, and some EUC_TW characters it accepts from UTF-8
    # it cannot convert back at all.)
    C.sql("""CREATE FUNCTION repertoire_of(enc name, sample text) RETURNS text
             LANGUAGE plpgsql AS $$
             DECLARE r text := ''; ch text; b int;
             BEGIN
               IF sample IS NULL THEN  -- single-byte: every byte that is a character
                 FOR b IN 128..255 LOOP
                   BEGIN
                     ch := convert_from(decode(to_hex(b), 'hex'), enc);
                     IF convert_to(ch, enc) = decode(to_hex(b), 'hex') THEN
                       r := r || ch;
                     END IF;
                   EXCEPTION WHEN others THEN NULL;
                   END;
                 END LOOP;
               ELSE
                 FOREACH ch IN ARRAY regexp_split_to_array(sample, '') LOOP
                   BEGIN
                     IF convert_from(convert_to(ch, enc), enc) = ch THEN
                       r := r || ch;
                     END IF;
                   EXCEPTION WHEN others THEN NULL;
                   END;
                 END LOOP;
               END IF;
               RETURN r;
             END $$""")


def tearDownModule():
    C.close()


def connect(db):
    # Not "with conn": psycopg2 opens a transaction block there even in
    # autocommit, and a slot cannot be created in one.
    conn = psycopg2.connect(C.url(db), client_encoding="UTF8")
    conn.autocommit = True
    return conn


def run_pgstream(*args, slot, db):
    """Run pgstream to its exit; (exit status, events, stderr)."""
    p = PgStream(C, *args, slot=slot, url=C.url(db))
    try:
        return p.run(), p.events(), p.stderr()
    finally:
        p.close()


def sql(db, query, args=None):
    conn = connect(db)
    try:
        conn.cursor().execute(query, args)
    finally:
        conn.close()


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return "at %d: got U+%04X, expected U+%04X" % (i, ord(x), ord(y))
    return "lengths %d and %d" % (len(a), len(b))


def letters(rep, n):
    """n characters of rep for identifiers: letters where there are enough."""
    alpha = [c for c in rep if c.isalpha()]
    pick = alpha if len(alpha) >= n else list(rep)
    return "".join(pick[:n])


class Scenario:
    """One database in encoding enc with its names, values and changes."""

    def __init__(self, enc):
        self.enc = enc
        self.db = "enc_" + enc.lower()
        self.slot = "s_" + enc.lower()  # never streamed: each run streams a copy
        self.runs = 0
        sample = None if enc in SINGLE_BYTE else SAMPLE
        self.rep = C.value("SELECT repertoire_of(%s, %s)", (enc, sample))
        assert len(self.rep) >= 60, (enc, len(self.rep))
        # A shuffled copy of the repertoire, long enough to be TOASTed
        # out of line (storage EXTERNAL: no compression).
        rnd = random.Random(enc)
        chars = list(self.rep) * (3000 // len(self.rep) + 1)
        rnd.shuffle(chars)
        self.big = "".join(chars[:3000])
        self.rep2 = self.rep[::-1]
        tag = letters(self.rep, 3)
        self.schema, self.table, self.col = "s" + tag, "t" + tag, "c" + tag
        self.key = "k" + letters(self.rep[3:], 2)
        self.tcol = "b" + tag  # the TOASTed column
        self.prefix = "p" + tag
        third = len(self.rep) // 3
        self.arr = [self.rep[:third], self.rep[third:2 * third], "a,b \"q\" {x}"]

    def create(self):
        C.sql("CREATE DATABASE %s ENCODING '%s' LC_COLLATE 'C' LC_CTYPE 'C' "
              "TEMPLATE template0" % (self.db, self.enc))
        conn = connect(self.db)
        try:
            cur = conn.cursor()
            cur.execute('CREATE SCHEMA "%s"' % self.schema)
            cur.execute('CREATE TABLE "%s"."%s" (id int PRIMARY KEY, "%s" text, arr text[],'
                        ' doc jsonb, big text, n int)' % (self.schema, self.table, self.col))
            cur.execute('ALTER TABLE "%s"."%s" REPLICA IDENTITY FULL'
                        % (self.schema, self.table))
            cur.execute('CREATE TABLE "%s"."%s_toast" (id int PRIMARY KEY, "%s" text, n int)'
                        % (self.schema, self.table, self.tcol))
            cur.execute('ALTER TABLE "%s"."%s_toast" ALTER COLUMN "%s" SET STORAGE EXTERNAL'
                        % (self.schema, self.table, self.tcol))
            cur.execute("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                        (self.slot,))
        finally:
            conn.close()

    def changes(self):
        t = '"%s"."%s"' % (self.schema, self.table)
        tt = '"%s"."%s_toast"' % (self.schema, self.table)
        conn = connect(self.db)  # autocommit: one transaction per statement
        try:
            cur = conn.cursor()
            cur.execute("INSERT INTO %s VALUES (1, %%s, %%s, jsonb_build_object(%%s, %%s::text),"
                        " %%s, 0)" % t, (self.rep, self.arr, self.key, self.rep, self.big))
            cur.execute('UPDATE %s SET "%s" = %%s, n = 1 WHERE id = 1' % (t, self.col),
                        (self.rep2,))
            cur.execute("INSERT INTO %s VALUES (1, %%s, 0)" % tt, (self.big,))
            cur.execute("UPDATE %s SET n = 1 WHERE id = 1" % tt)
            cur.execute("SELECT pg_logical_emit_message(true, %s, %s)", (self.prefix, self.rep))
            cur.execute("DELETE FROM %s WHERE id = 1" % t)
            cur.execute("SELECT pg_current_wal_insert_lsn()::text")
            return cur.fetchone()[0]
        finally:
            conn.close()

    def stream(self, *args, fmt="json", env=None, url=None):
        """Stream the changes once more, from a copy of the slot made before
        them."""
        self.runs += 1
        copy = "%s_%d" % (self.slot, self.runs)
        sql(self.db, "SELECT pg_copy_logical_replication_slot(%s, %s)", (self.slot, copy))
        p = PgStream(C, "--end-lsn", self.end, *args, slot=copy, fmt=fmt, env=env,
                     url=url or C.url(self.db))
        try:
            rc = p.run()
            assert rc == 0, "%s: %s" % (self.enc, p.stderr())
            return (p.events() if fmt == "json" else p.stdout()), p.stderr()
        finally:
            p.close()
            wait_slot_inactive(C, copy)
            C.sql("SELECT pg_drop_replication_slot(%s)", (copy,))


SCENARIOS = {}


def scenario(enc):
    if enc not in SCENARIOS:
        s = Scenario(enc)
        s.create()
        s.end = s.changes()
        SCENARIOS[enc] = s
    return SCENARIOS[enc]


class Encodings(unittest.TestCase):
    def same(self, got, want, what):
        self.assertIsInstance(got, str, what)
        if got != want:
            self.fail("%s differs %s" % (what, first_diff(got, want)))

    def check_events(self, s, ev):
        ops = [e["op"] for e in ev]
        self.assertEqual(ops, ["insert", "update", "insert", "update", "message", "delete"],
                         s.enc)
        ins, upd, tins, tupd, msg, dele = ev
        for e in (ins, upd, tins, tupd, dele):
            self.same(e["schema"], s.schema, s.enc + " schema name")
        for e in (ins, upd, dele):
            self.same(e["table"], s.table, s.enc + " table name")
        self.same(tins["table"], s.table + "_toast", s.enc + " table name")
        new = ins["new"]
        self.assertEqual(sorted(new), sorted(["id", s.col, "arr", "doc", "big", "n"]), s.enc)
        self.same(new[s.col], s.rep, s.enc + " text value")
        self.assertEqual(len(new["arr"]), 3, s.enc)
        for got, want in zip(new["arr"], s.arr):
            self.same(got, want, s.enc + " array element")
        self.assertEqual(list(new["doc"]), [s.key], s.enc + " jsonb key")
        self.same(new["doc"][s.key], s.rep, s.enc + " jsonb value")
        self.same(new["big"], s.big, s.enc + " long value")
        # The UPDATE's old row (REPLICA IDENTITY FULL) and new row.
        self.same(upd["old"][s.col], s.rep, s.enc + " old row")
        self.same(upd["new"][s.col], s.rep2, s.enc + " new row")
        self.same(dele["old"][s.col], s.rep2, s.enc + " deleted row")
        # Unchanged TOAST: the value left out, its column named.
        self.same(tins["new"][s.tcol], s.big, s.enc + " TOASTed value")
        self.assertEqual(tupd["new"], {"id": 1, "n": 1}, s.enc)
        self.assertEqual(len(tupd["unchanged_toast"]), 1, s.enc)
        self.same(tupd["unchanged_toast"][0], s.tcol, s.enc + " unchanged_toast name")
        # The logical message: prefix converted by the server, content by
        # pgstream.
        self.same(msg["prefix"], s.prefix, s.enc + " message prefix")
        if msg.get("content_encoding") == "base64":
            self.fail("%s message content sent as base64: %r" % (s.enc, msg["content"][:80]))
        self.assertNotIn("content_encoding", msg, s.enc)
        self.same(msg["content"], s.rep, s.enc + " message content")

    def test_every_server_encoding(self):
        checked = []
        for enc in SINGLE_BYTE + MULTI_BYTE:
            with self.subTest(encoding=enc):
                s = scenario(enc)
                ev, err = s.stream()
                self.check_events(s, ev)
                self.assertNotIn("warn", err, enc)
                checked.append("%s (%d characters)" % (enc, len(s.rep)))
        print("encodings checked: " + ", ".join(checked))

    def test_pretty_format(self):
        for enc in ["LATIN1", "WIN1252", "EUC_JP", "KOI8R"]:
            s = scenario(enc)
            out, _ = s.stream(fmt="pretty")
            self.assertIn("[INSERT] table=%s.%s " % (s.schema, s.table), out, enc)
            self.assertIn("[MESSAGE] prefix=%s " % s.prefix, out, enc)
            # Values are JSON strings in the pretty format too.
            want = '"%s": "%s"' % (s.col, s.rep.replace("\\", "\\\\").replace('"', '\\"'))
            self.assertTrue(want in out, "%s: %s not in the pretty output" % (enc, want[:60]))
            self.assertIn("content=", out, enc)

    def test_users_client_encoding_cannot_change_the_output(self):
        s = scenario("LATIN1")
        # Its own encoding, the default that broke text before pgstream
        # asked for UTF8.
        C.sql("ALTER DATABASE %s SET client_encoding = 'LATIN1'" % s.db)
        C.sql("CREATE ROLE enc_user LOGIN REPLICATION SUPERUSER")
        C.sql("ALTER ROLE enc_user SET client_encoding = 'SQL_ASCII'")
        try:
            ways = [
                ("URL", [], None, C.url(s.db) + "?client_encoding=LATIN1"),
                ("PGCLIENTENCODING", [], {"PGCLIENTENCODING": "LATIN1"}, None),
                ("options", [], None, C.url(s.db) + "?options=-c%20client_encoding%3DLATIN1"),
                ("role setting", [], None, C.url(s.db, user="enc_user")),
                ("conninfo", [], None,
                 "host=127.0.0.1 port=%d dbname=%s user=postgres client_encoding=LATIN2"
                 % (C.port, s.db)),
            ]
            for what, args, env, url in ways:
                with self.subTest(way=what):
                    ev, _ = s.stream(*args, env=env, url=url)
                    self.check_events(s, ev)
        finally:
            C.sql("ALTER DATABASE %s RESET client_encoding" % s.db)

    def test_mule_internal_is_refused_clearly(self):
        # The one server encoding PostgreSQL cannot convert to UTF8.
        C.sql("CREATE DATABASE enc_mule ENCODING 'MULE_INTERNAL' LC_COLLATE 'C' "
              "LC_CTYPE 'C' TEMPLATE template0")
        rc, _, err = run_pgstream(slot="s_mule", db="enc_mule")
        self.assertEqual(rc, 1, err)
        last = err.strip().splitlines()[-1]
        self.assertTrue(last.startswith("pgstream: could not connect"), err)
        self.assertIn("conversion between UTF8 and MULE_INTERNAL is not supported", last)


class SqlAscii(unittest.TestCase):
    """SQL_ASCII stores bytes unconverted: pgstream cannot know their
    encoding. Valid UTF-8 passes unchanged; other bytes become U+FFFD, warned
    about once per column and counted, or stop pgstream (--invalid-utf8=fail)."""

    @classmethod
    def setUpClass(cls):
        C.sql("CREATE DATABASE ascii_db ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
              "TEMPLATE template0")
        cls.db = "ascii_db"
        C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES", db=cls.db)
        # Names and values built from bytes, so no client conversion is
        # involved: convert_from(..., 'SQL_ASCII') stores them as they are.
        C.sql("""CREATE FUNCTION b(h text) RETURNS text LANGUAGE sql
                 AS $$ SELECT convert_from(decode(h, 'hex'), 'SQL_ASCII') $$""", db=cls.db)
        C.sql("""DO $$ BEGIN
                   EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, good text, bad text,'
                                  ' %I text, arr text[])', 't_' || b('c3a9'), 'c_' || b('e9'));
                   EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY)', 'n_' || b('ff'));
                   CREATE TABLE f (id int PRIMARY KEY, bad text);
                 END $$""", db=cls.db)

    def capture(self, slot, stmts, *args):
        C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,), db=self.db)
        for stmt in stmts:
            C.sql(stmt, db=self.db)
        end = C.value("SELECT pg_current_wal_insert_lsn()::text")
        return run_pgstream("--end-lsn", end, *args, slot=slot, db=self.db)

    # Statements in ASCII only (the test's own client connects to this
    # database as SQL_ASCII too): the non-ASCII names and values are built
    # from bytes. "t_" || c3a9 is the UTF-8 name t_é; its column c_ || e9 is
    # not UTF-8, nor is the table n_ || ff.
    T = "'t_' || b('c3a9')"

    def ins(self, values):
        return "DO $$ BEGIN EXECUTE format('INSERT INTO %%I VALUES (%s)', %s); END $$" % (
            values.replace("'", "''"), self.T)

    def rows(self):
        return [
            # good: UTF-8 "é✓"; bad: Latin-1 "é", "ab", a lone continuation byte
            self.ins("1, b('c3a9e29c93'), b('e9616280'), b('ff'), ARRAY[b('c3a9'), b('fe')]"),
            self.ins("2, 'x', b('e9'), b('c3a9'), NULL"),
            "DO $$ BEGIN EXECUTE format('INSERT INTO %I VALUES (1)', 'n_' || b('ff')); END $$",
            "SELECT pg_logical_emit_message(true, b('70e9'), decode('ff00e9', 'hex'))",
        ]

    def test_valid_utf8_unchanged_invalid_replaced_and_warned(self):
        rc, ev, err = self.capture("s_ascii", self.rows())
        self.assertEqual(rc, 0, err)
        r1, r2, n1, msg = ev
        self.assertEqual(r1["table"], "t_é")
        self.assertEqual(r1["new"]["good"], "é✓")  # valid UTF-8: unchanged
        self.assertEqual(r1["new"]["bad"], "\ufffdab\ufffd")
        self.assertEqual(r1["new"]["c_\ufffd"], "\ufffd")  # name and value
        self.assertEqual(r1["new"]["arr"], ["é", "\ufffd"])
        self.assertEqual(r2["new"]["bad"], "\ufffd")
        self.assertEqual(r2["new"]["c_\ufffd"], "é")
        self.assertEqual(n1["table"], "n_\ufffd")
        # The message: its prefix replaced (and warned), its content lossless.
        self.assertEqual(msg["prefix"], "p\ufffd")
        self.assertEqual(msg["content_encoding"], "base64")
        self.assertEqual(base64.b64decode(msg["content"]), b"\xff\x00\xe9")
        self.assertIn("database encoding SQL_ASCII", err)
        warnings = [l for l in err.splitlines() if l.startswith("warning: invalid UTF-8")]
        # One per place: column bad, column c_\xe9, column arr, the two
        # tables' names (t_é has a column c_\xe9), the message prefix.
        # Row 2's bad and c_ columns are counted, not warned again.
        self.assertEqual(len(warnings), 6, err)
        self.assertTrue(any("column public.t_\\xc3\\xa9.bad at " in l for l in warnings), err)
        self.assertTrue(any("column public.t_\\xc3\\xa9.c_\\xe9 at " in l for l in warnings),
                        err)
        self.assertTrue(any("the names of table public.n_\\xff (SQL_ASCII" in l
                            for l in warnings), err)
        self.assertTrue(any("a logical message's prefix" in l for l in warnings), err)
        # Values: bad, c_, arr (row 1), bad (row 2); names: t_é, n_\xff;
        # the prefix.
        self.assertIn("replaced invalid UTF-8 with U+FFFD in 7 values of 6 columns", err)

    def test_fail_policy_stops_before_acknowledging(self):
        C.sql("SELECT pg_create_logical_replication_slot('s_fail', 'pgoutput')", db=self.db)
        C.sql("INSERT INTO f VALUES (10, 'ok')", db=self.db)
        before = C.value("SELECT pg_current_wal_insert_lsn()::text")
        C.sql("INSERT INTO f VALUES (11, b('e9'))", db=self.db)
        end = C.value("SELECT pg_current_wal_insert_lsn()::text")
        rc, ev, err = run_pgstream("--end-lsn", end, "--invalid-utf8", "fail",
                                   "--status-interval", "0.1", slot="s_fail", db=self.db)
        self.assertEqual(rc, 1, err)
        last = err.strip().splitlines()[-1]
        self.assertRegex(last, r"^pgstream: could not encode column public\.f\.bad "
                               r"at [0-9A-F]+/[0-9A-F]+: not valid UTF-8 \(a SQL_ASCII")
        self.assertEqual([e["new"]["id"] for e in ev], [10])
        # The failed transaction is not acknowledged: a restart sees it again
        # (and perhaps row 10 too, if its acknowledgement had not gone out).
        self.assertLessEqual(wait_slot_inactive(C, "s_fail"), lsn_int(before))
        rc, ev, err = run_pgstream("--end-lsn", end, slot="s_fail", db=self.db)
        self.assertEqual(rc, 0, err)
        self.assertEqual([e["new"]["id"] for e in ev][-1:], [11])
        self.assertLessEqual({e["new"]["id"] for e in ev}, {10, 11})
        self.assertEqual(ev[-1]["new"]["bad"], "\ufffd")


if __name__ == "__main__":
    unittest.main()
