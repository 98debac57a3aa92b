"""--origin any|none, pgoutput's origin option (PostgreSQL 16+): a change
made in a session with a replication origin set up (as another replication
tool applies what it copied) and one without. --origin none streams only
the second, --origin any and no option (nothing sent, the server's any)
both. Before 16 --origin is refused before the slot is made, one line and
exit 1, and without it both changes come. On 15 here; on 13, 14, 16, 17
and 18 through test_versions.py (its cluster set as this module's C)."""

import unittest

from harness import Cluster, PgStream, lsn_str

C = None

SLOTS = ("s_or_plain", "s_or_none", "s_or_any")


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


class Origin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.version = int(C.value("SHOW server_version_num")) // 10000
        C.sql("CREATE TABLE t_origin (id int PRIMARY KEY, how text)")
        for slot in SLOTS:
            C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        conn = C.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_replication_origin_create('other_replicator')")
                cur.execute("SELECT pg_replication_origin_session_setup('other_replicator')")
                cur.execute("INSERT INTO t_origin VALUES (1, 'applied by a replicator')")
        finally:
            conn.close()
        C.sql("INSERT INTO t_origin VALUES (2, 'written here')")
        cls.end = lsn_str(C.current_lsn())

    @classmethod
    def tearDownClass(cls):
        # test_versions.py shares its cluster: leave nothing behind.
        for slot in SLOTS:
            C.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                  " WHERE slot_name = %s", (slot,))
        C.sql("SELECT pg_replication_origin_drop('other_replicator')")
        C.sql("DROP TABLE t_origin")

    def ids(self, slot, *args):
        p = PgStream(C, "--end-lsn", self.end, "--log-level", "debug", *args, slot=slot)
        try:
            self.assertEqual(p.run(), 0, p.stderr())
            self.assertIn(", origin %s\n" % (args[1] if args else "not sent"), p.stderr())
            return [e["new"]["id"] for e in p.events() if e.get("table") == "t_origin"]
        finally:
            p.close()

    def test_the_server_marked_the_change(self):
        # Else the tests below test nothing: the origin's progress moved at
        # the first change's commit, whose record carries the origin.
        self.assertEqual(C.value("SELECT local_lsn <> '0/0' FROM pg_replication_origin_status"
                                 " WHERE external_id = 'other_replicator'"), True)

    def test_without_the_option_every_change(self):
        self.assertEqual(self.ids("s_or_plain"), [1, 2])

    def test_origin_none_and_any(self):
        if self.version < 16:
            for value in ("none", "any"):
                p = PgStream(C, "--origin", value, slot="s_or_new")
                try:
                    self.assertEqual(p.run(), 1, p.stderr())
                    self.assertEqual(
                        p.stderr().strip().splitlines()[-1],
                        "pgstream: could not use --origin: it needs PostgreSQL 16 or newer")
                    self.assertEqual(p.events(), [])
                finally:
                    p.close()
            self.assertEqual(C.sql("SELECT 1 FROM pg_replication_slots"
                                   " WHERE slot_name = 's_or_new'"), [])
            return
        self.assertEqual(self.ids("s_or_none", "--origin", "none"), [2])
        self.assertEqual(self.ids("s_or_any", "--origin", "any"), [1, 2])


if __name__ == "__main__":
    unittest.main()
