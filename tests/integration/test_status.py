"""pgstream status against a live slot (JSON for scripts, a screen for
people): the slot's state, confirmed LSN, lag and retained WAL as
pg_replication_slots has them, the publication's tables with a warning for
one without a replica identity; pgstream drop-slot: refused while the slot
is in use or without a terminal or --yes, asks on a terminal, drops."""

import json
import os
import pty
import re
import subprocess
import unittest

from harness import BIN, Cluster, PgStream, lsn_int

C = None


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE TABLE st_key (id int PRIMARY KEY)")
    C.sql("CREATE TABLE st_nokey (v text)")
    C.sql("CREATE TABLE st_full (v text)")
    C.sql("ALTER TABLE st_full REPLICA IDENTITY FULL")
    C.sql("CREATE PUBLICATION pgstream_pub FOR TABLE st_key, st_nokey, st_full")


def tearDownModule():
    C.close()


def pgstream(*args, stdin=subprocess.DEVNULL, url=None):
    return subprocess.run([BIN, *args, "--database-url", url or C.url(), "--env-file", "/dev/null"],
                          capture_output=True, text=True, stdin=stdin, timeout=60)


class Status(unittest.TestCase):
    def test_status_json_against_a_live_slot(self):
        p = PgStream(C, "--status-interval", "1", slot="s_live")
        try:
            p.start()
            p.wait_stderr("listening for changes")
            C.sql("INSERT INTO st_key VALUES (1)")
            p.wait_events(1)
            want = C.current_lsn()
            p.wait_for(lambda: C.slot_confirmed("s_live") >= want, what="acknowledgement")
            # The slot may move between the two reads (pgstream acknowledges
            # keepalives, and other WAL comes): read them until they agree.
            for _ in range(20):
                r = pgstream("status", "--json", "--slot", "s_live")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "")
                st = json.loads(r.stdout)
                row = C.sql("SELECT active_pid, confirmed_flush_lsn::text, restart_lsn::text, "
                            "wal_status, pg_current_wal_lsn()::text FROM pg_replication_slots "
                            "WHERE slot_name = 's_live'")[0]
                slot = st["slot"]
                if (slot["confirmed_flush_lsn"], slot["restart_lsn"]) == (row[1], row[2]):
                    break
            self.assertEqual((slot["name"], slot["exists"], slot["active"], slot["active_pid"],
                              slot["plugin"], slot["temporary"], slot["database"]),
                             ("s_live", True, True, row[0], "pgoutput", False, "postgres"))
            self.assertEqual(slot["confirmed_flush_lsn"], row[1])
            self.assertEqual(slot["restart_lsn"], row[2])
            self.assertEqual(slot["wal_status"], row[3])
            self.assertEqual(slot["lag_bytes"],
                             lsn_int(st["wal_lsn"]) - lsn_int(slot["confirmed_flush_lsn"]))
            self.assertEqual(slot["wal_retained_bytes"],
                             lsn_int(st["wal_lsn"]) - lsn_int(slot["restart_lsn"]))
            self.assertGreaterEqual(lsn_int(row[4]), lsn_int(st["wal_lsn"]))
            self.assertEqual(st["database"], "postgres")
            pub = st["publication"]
            self.assertEqual((pub["name"], pub["exists"], pub["all_tables"]),
                             ("pgstream_pub", True, False))
            tables = {t["table"]: t for t in pub["tables"]}
            self.assertEqual(sorted(tables), ["st_full", "st_key", "st_nokey"])
            self.assertEqual(tables["st_key"]["replica_identity"], "default")
            self.assertIsNone(tables["st_key"]["warning"])
            self.assertEqual(tables["st_full"]["replica_identity"], "full")
            self.assertIsNone(tables["st_full"]["warning"])
            self.assertIn("no primary key", tables["st_nokey"]["warning"])
            # The screen says the same for a person.
            r = pgstream("status", "--slot", "s_live")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"slot +s_live: active, pid %d, plugin pgoutput" % row[0])
            shown = re.search(r"confirmed    ([0-9A-F]+/[0-9A-F]+)\n", r.stdout)
            self.assertIsNotNone(shown, r.stdout)
            self.assertGreaterEqual(lsn_int(shown.group(1)), lsn_int(slot["confirmed_flush_lsn"]))
            self.assertIn("publication  pgstream_pub: 3 tables\n", r.stdout)
            self.assertIn("warning: public.st_nokey: no primary key", r.stdout)
            self.assertNotIn("warning: public.st_key", r.stdout)
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()

    def test_status_without_slot_or_publication(self):
        r = pgstream("status", "--json", "--slot", "s_none", "--publication", "nopub")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = json.loads(r.stdout)
        self.assertEqual(st["slot"], {"name": "s_none", "exists": False})
        self.assertEqual(st["publication"], {"name": "nopub", "exists": False})
        r = pgstream("status", "--json", url="postgresql://127.0.0.1:1/x")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("pgstream: could not connect"), r.stderr)
        r = pgstream("--json")
        self.assertEqual((r.returncode, r.stderr),
                         (2, "pgstream: invalid options: --json goes with pgstream status\n"))

    def test_drop_slot(self):
        C.sql("SELECT pg_create_logical_replication_slot('s_drop', 'pgoutput')")
        p = PgStream(C, slot="s_drop")
        try:
            p.start()
            p.wait_stderr("listening for changes")
            r = pgstream("drop-slot", "--yes", "--slot", "s_drop")
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, r'^pgstream: could not drop replication slot "s_drop": '
                             r"it is in use \(pid \d+\); stop the pgstream reading it first\n$")
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()
        p.wait_for(lambda: not C.value("SELECT active FROM pg_replication_slots "
                                       "WHERE slot_name = 's_drop'"), what="inactive slot")
        # No terminal, no --yes: refused, nothing dropped.
        r = pgstream("drop-slot", "--slot", "s_drop")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, 'pgstream: could not drop replication slot "s_drop": not '
                         "on a terminal to confirm; add --yes\n")
        self.assertEqual(C.value("SELECT count(*) FROM pg_replication_slots"), 1)
        # On a terminal: asked; "n" keeps it, "y" drops it.
        for answer, rc, left in ((b"n\n", 1, 1), (b"y\n", 0, 0)):
            master, slave = pty.openpty()
            try:
                proc = subprocess.Popen([BIN, "drop-slot", "--slot", "s_drop", "--database-url",
                                         C.url(), "--env-file", "/dev/null"], stdin=slave,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                os.write(master, answer)
                out, err = proc.communicate(timeout=30)
            finally:
                os.close(master)
                os.close(slave)
            self.assertEqual(proc.returncode, rc, err)
            self.assertIn(b'Drop replication slot "s_drop" of database postgres', err)
            self.assertEqual(C.value("SELECT count(*) FROM pg_replication_slots"), left)
        self.assertIn(b"replication slot s_drop dropped", err)
        r = pgstream("drop-slot", "--yes", "--slot", "s_drop")
        self.assertEqual((r.returncode, r.stderr), (1, 'pgstream: could not drop replication '
                                                       'slot "s_drop": it does not exist\n'))


if __name__ == "__main__":
    unittest.main()
