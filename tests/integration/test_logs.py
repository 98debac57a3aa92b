"""--log-format json: every stderr line of a whole lifecycle (connect, slot
created, streaming at debug level, a server restart and the reconnect, a
stop; a failed start; the final error of a run that ends in one) is one
JSON object with time, level, msg and fields, and no line, in either
format, holds the password."""

import json
import re
import subprocess
import time
import unittest

from harness import PGCLUSTER, Cluster, PgStream, lsn_str, wait_slot_inactive

C = None
PASSWORD = "S3cret-pw-7f3a"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE ROLE cdc LOGIN REPLICATION PASSWORD %s", (PASSWORD,))
    C.sql("CREATE TABLE lg (id int PRIMARY KEY, secret text)")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    C.hba_prepend("host all cdc 127.0.0.1/32 scram-sha-256")


def tearDownModule():
    C.close()


class JsonLogs(unittest.TestCase):
    def parse(self, text, slot):
        """Every line as an object; the checks every line must pass."""
        self.assertNotIn(PASSWORD, text)
        self.assertTrue(text.endswith("\n"), text[-200:])
        out = []
        for line in text.splitlines():
            obj = json.loads(line)  # fails the test on any line that is not JSON
            self.assertEqual(list(obj), ["time", "level", "msg", "fields"], line)
            self.assertRegex(obj["time"], TIME)
            self.assertIn(obj["level"], ("debug", "info", "warn", "error"))
            self.assertIsInstance(obj["msg"], str)
            self.assertEqual(obj["fields"], {"slot": slot})
            out.append(obj)
        return out

    def test_lifecycle_is_json_lines_without_the_password(self):
        url = C.url(user="cdc", password=PASSWORD)
        p = PgStream(C, "--log-format", "json", "--log-level", "debug", "--status-interval", "1",
                     "--reconnect-max-delay", "1", slot="s_json", url=url)
        try:
            p.start()
            p.wait_stderr("listening for changes")
            C.sql("INSERT INTO lg VALUES (1, 'row data " + "x" * 50 + "')")
            p.wait_events(1)
            C.restart()
            p.wait_stderr("reconnecting in")
            C.sql("INSERT INTO lg VALUES (2, 'more')")
            p.wait_events(2)
            self.assertEqual(p.stop(), 0, p.stderr())
            lines = self.parse(p.stderr(), "s_json")
            msgs = [l["msg"] for l in lines]
            for want in ("connecting to postgres...", "replication slot created: s_json",
                         "listening for changes..."):
                self.assertIn(want, msgs)
            self.assertTrue(any(m.startswith("reconnecting in ") for m in msgs), msgs)
            self.assertTrue(any(m.startswith("acknowledged ") and l["level"] == "debug"
                                for m, l in zip(msgs, lines)), msgs)
            # Row data never reaches the log, even at debug level.
            self.assertNotIn("row data", p.stderr())
        finally:
            p.close()

    def test_errors_are_json_lines_too(self):
        # A wrong password: the start fails, the final line is an error object.
        bad = C.url(user="cdc", password=PASSWORD + "x")
        p = PgStream(C, "--log-format", "json", "--log-level", "debug", slot="s_bad", url=bad)
        try:
            self.assertEqual(p.run(), 1, p.stderr())
            lines = self.parse(p.stderr(), "s_bad")
            self.assertEqual(lines[-1]["level"], "error")
            self.assertIn("password authentication failed", lines[-1]["msg"])
            self.assertNotIn(PASSWORD + "x", p.stderr())
        finally:
            p.close()
        # A slot dropped under a running pgstream: an error after streaming.
        p = PgStream(C, "--log-format", "json", "--reconnect-max-delay", "1", slot="s_drop",
                     url=C.url(user="cdc", password=PASSWORD))
        try:
            p.start()
            p.wait_stderr("listening for changes")
            # pgstream reconnects after 1 s: a drop that finds the slot
            # taken again ends its walsender again first.
            deadline = time.time() + 30
            while time.time() < deadline:
                C.sql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                      "WHERE slot_name = 's_drop' AND active_pid IS NOT NULL")
                try:
                    C.sql("SELECT pg_drop_replication_slot('s_drop')")
                    break
                except Exception:
                    time.sleep(0.05)
            self.assertEqual(p.proc.wait(timeout=60), 1, p.stderr())
            lines = self.parse(p.stderr(), "s_drop")
            self.assertEqual(lines[-1]["level"], "error")
            self.assertIn("s_drop", lines[-1]["msg"])
        finally:
            p.close()

    def test_text_format_at_debug_has_no_password(self):
        p = PgStream(C, "--log-level", "debug", "--end-lsn", "0/1", slot="s_text",
                     url=C.url(user="cdc", password=PASSWORD))
        try:
            p.run()
            self.assertIn("connecting to postgres...", p.stderr())
            self.assertNotIn(PASSWORD, p.stderr())
            with self.assertRaises(ValueError):
                json.loads(p.stderr().splitlines()[0])
        finally:
            p.close()

    def test_waiting_for_a_busy_slot_is_two_lines(self):
        """While another walsender holds the slot, one line says pgstream
        waits and one that it got it: not a connecting/connected pair per
        try (there are about 20 tries in 5 s)."""
        a = PgStream(C, slot="s_busy")
        b = PgStream(C, slot="s_busy")
        try:
            a.start()
            a.wait_stderr("listening for changes")
            b.start()
            b.wait_stderr("waiting up to 5 s for it to be released")
            time.sleep(0.5)  # a few tries (a's stop takes the rest of the 5 s under load)
            self.assertEqual(a.stop(), 0, a.stderr())
            b.wait_stderr("listening for changes")
            err = b.stderr()
            self.assertEqual(err.count("connecting to postgres..."), 1, err)
            self.assertEqual(err.count("connected!"), 1, err)
            self.assertEqual(err.count("is active in another process"), 1, err)
            self.assertEqual(err.count("replication slot s_busy was released"), 1, err)
            self.assertEqual(b.stop(), 0, b.stderr())
        finally:
            a.close()
            b.close()

    def test_tables_ignored_for_an_existing_publication_says_so(self):
        C.sql("CREATE PUBLICATION pub_some FOR TABLE lg")
        try:
            p = PgStream(C, "--create-publication", "--tables", "other", "--end-lsn", "0/1",
                         slot="s_tables", pub="pub_some")
            try:
                p.run()
                self.assertIn("warning: publication pub_some exists: --tables is ignored",
                              p.stderr())
            finally:
                p.close()
            self.assertEqual(C.value("SELECT count(*) FROM pg_publication_tables "
                                     "WHERE pubname = 'pub_some'"), 1)
        finally:
            C.sql("DROP PUBLICATION pub_some")

    def test_two_databases_one_slot_name(self):
        """Slot names are per server: the second pgstream, on another
        database with the same --slot, is refused with the remedy."""
        C.sql("CREATE DATABASE shop")
        C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES", db="shop")
        a = PgStream(C, slot="s_shared")
        b = PgStream(C, slot="s_shared", url=C.url("shop"))
        try:
            a.start()
            a.wait_stderr("listening for changes")
            self.assertEqual(b.run(), 1, b.stderr())
            self.assertEqual(b.stderr().splitlines()[-1],
                             'pgstream: replication slot "s_shared" belongs to database '
                             '"postgres", not "shop" (slot names are per server: give each '
                             "pgstream its own --slot, e.g. --slot pgstream_shop)")
            self.assertEqual(a.stop(), 0, a.stderr())
        finally:
            a.close()
            b.close()

    def test_start_lsn_against_the_slot_is_said(self):
        def confirmed():
            # (final only once the last run's walsender is gone)
            return wait_slot_inactive(C, "s_start")

        def run(start, end):
            p = PgStream(C, "--start-lsn", lsn_str(start), "--end-lsn", lsn_str(end),
                         slot="s_start")
            try:
                self.assertEqual(p.run(), 0, p.stderr())
                return p.stderr(), [e["new"]["id"] for e in p.events()]
            finally:
                p.close()
        C.sql("SELECT pg_create_logical_replication_slot('s_start', 'pgoutput')")
        at = confirmed()
        C.sql("INSERT INTO lg VALUES (100, 'a')")
        ahead = C.current_lsn()
        C.sql("INSERT INTO lg VALUES (101, 'b')")
        end = C.current_lsn()
        # Ahead of the slot: said, and the change before it skipped.
        err, ids = run(ahead, end)
        self.assertIn("warning: --start-lsn %s is ahead of the slot's confirmed position %s: "
                      "changes committed between them are skipped" % (lsn_str(ahead),
                                                                      lsn_str(at)), err)
        self.assertEqual(ids, [101])
        at = confirmed()
        self.assertGreaterEqual(at, end)
        # Behind it: the server starts at the slot; said.
        err, _ = run(1, end)
        self.assertIn("warning: --start-lsn 0/1 is before the slot's confirmed position %s: "
                      "the server starts at %s" % (lsn_str(at), lsn_str(at)), err)
        at = confirmed()
        err, _ = run(at, max(at, end))
        self.assertIn("--start-lsn %s is the slot's confirmed position" % lsn_str(at), err)
        self.assertNotIn("warning", err)

    def test_bad_log_format_is_refused(self):
        p = PgStream(C, "--log-format", "xml", slot="s_never")
        try:
            self.assertEqual(p.run(), 2)
            self.assertEqual(p.stderr(), 'pgstream: invalid value for --log-format: "xml" '
                             "(expected text or json)\n")
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main()
