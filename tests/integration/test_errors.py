"""Clear one-line errors and non-zero exits for what users get wrong, and
the lifecycle lines on stderr for what goes right."""

import os
import subprocess
import tempfile
import time
import unittest

from harness import BIN, Cluster, PgStream, free_port, lsn_str

C = None


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    C.sql("CREATE ROLE pwuser LOGIN REPLICATION PASSWORD 'sekret-pw-123'")
    C.hba_prepend("host all pwuser 127.0.0.1/32 scram-sha-256")


def tearDownModule():
    C.close()


def run(*args, env=None, timeout=60):
    e = dict(os.environ)
    for k in ("DATABASE_URL", "SLOT_NAME", "PUBLICATION_NAME", "FORMAT"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([BIN, "--env-file", "/dev/null", *args], capture_output=True,
                          text=True, env=e, timeout=timeout)


def one_error_line(test, proc, text, status=1):
    test.assertEqual(proc.returncode, status, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.startswith("pgstream: ")]
    test.assertEqual(len(lines), 1, proc.stderr)
    test.assertIn(text, lines[0])
    test.assertEqual(proc.stdout, "")


class Errors(unittest.TestCase):
    def test_help_and_version(self):
        h = run("--help")
        self.assertEqual(h.returncode, 0)
        self.assertIn("usage: pgstream", h.stdout)
        self.assertIn("--database-url", h.stdout)
        v = run("--version")
        self.assertEqual(v.returncode, 0)
        self.assertRegex(v.stdout, r"^pgstream \d+\.\d+\.\d+\n$")

    def test_bad_flags(self):
        one_error_line(self, run("--format", "xml"), "--format", status=2)
        one_error_line(self, run("--nope"), 'unknown option "--nope"', status=2)
        one_error_line(self, run("--end-lsn", "zz"), "--end-lsn", status=2)
        one_error_line(self, run("--slot", "Has-Dash"), "--slot", status=2)

    def test_unreachable_server(self):
        url = "postgresql://postgres@127.0.0.1:%d/postgres" % free_port()
        one_error_line(self, run("--database-url", url), "could not connect")

    def test_wrong_password_is_not_logged(self):
        url = C.url(user="pwuser", password="wrong-pw-456")
        p = run("--database-url", url)
        one_error_line(self, p, "password authentication failed")
        self.assertNotIn("wrong-pw-456", p.stderr)

    def test_right_password_is_not_logged(self):
        C.sql("CREATE PUBLICATION pub_pw FOR TABLE t")
        url = C.url(user="pwuser", password="sekret-pw-123")
        p = run("--database-url", url, "--slot", "s_pw", "--publication", "pub_pw",
                "--end-lsn", lsn_str(C.current_lsn()), "--log-level", "debug")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("sekret-pw-123", p.stderr)
        self.assertIn("user=pwuser", p.stderr)

    def test_missing_publication_suggests_sql(self):
        p = run("--database-url", C.url(), "--publication", "nopub", "--slot", "s_nopub")
        one_error_line(self, p, 'publication "nopub" does not exist')
        self.assertIn("CREATE PUBLICATION", p.stderr)
        self.assertIn("--create-publication", p.stderr)

    def test_create_publication(self):
        C.sql("CREATE TABLE t2 (id int PRIMARY KEY)")
        p = run("--database-url", C.url(), "--publication", "newpub", "--slot", "s_newpub",
                "--create-publication", "--tables", "t,public.t2",
                "--end-lsn", lsn_str(C.current_lsn()))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("publication created: newpub", p.stderr)
        tables = C.sql("SELECT tablename FROM pg_publication_tables WHERE pubname = 'newpub'"
                       " ORDER BY 1")
        self.assertEqual(tables, [("t",), ("t2",)])
        p = run("--database-url", C.url(), "--publication", "allpub", "--slot", "s_allpub",
                "--create-publication", "--end-lsn", lsn_str(C.current_lsn()))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(C.value("SELECT puballtables FROM pg_publication"
                                " WHERE pubname = 'allpub'"))

    def test_slot_of_another_plugin(self):
        C.sql("SELECT pg_create_logical_replication_slot('s_td', 'test_decoding')")
        C.sql("CREATE PUBLICATION pub_td FOR ALL TABLES")
        p = run("--database-url", C.url(), "--slot", "s_td", "--publication", "pub_td")
        one_error_line(self, p, 'created for plugin "test_decoding"')

    def test_slot_active_in_another_process(self):
        C.sql("CREATE PUBLICATION pub_act FOR ALL TABLES")
        first = PgStream(C, slot="s_act", pub="pub_act").start()
        try:
            first.wait_stderr("listening for changes...")
            p = run("--database-url", C.url(), "--slot", "s_act", "--publication", "pub_act")
            one_error_line(self, p, "is active in another process")
        finally:
            first.close()

    def test_lifecycle_lines(self):
        C.sql("CREATE PUBLICATION pub_life FOR ALL TABLES")
        end = lsn_str(C.current_lsn())
        p = run("--database-url", C.url(), "--slot", "s_life", "--publication", "pub_life",
                "--end-lsn", end)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr.splitlines(), [
            "connecting to postgres...", "connected!", "replication slot created: s_life",
            "starting replication...", "listening for changes..."])
        self.assertEqual(p.stdout, "")
        p = run("--database-url", C.url(), "--slot", "s_life", "--publication", "pub_life",
                "--end-lsn", end)
        self.assertIn("using existing replication slot: s_life", p.stderr)

    def test_settings_from_environment_and_dotenv(self):
        C.sql("CREATE PUBLICATION pub_env FOR ALL TABLES")
        with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as f:
            f.write("DATABASE_URL=%s\nSLOT_NAME=s_dotenv\nPUBLICATION_NAME=pub_env\n" % C.url())
        try:
            end = lsn_str(C.current_lsn())
            e = dict(os.environ, ENV_FILE=f.name)
            p = subprocess.run([BIN, "--end-lsn", end], capture_output=True, text=True,
                               env={k: v for k, v in e.items()
                                    if k not in ("DATABASE_URL", "SLOT_NAME")})
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("replication slot created: s_dotenv", p.stderr)
            p = run("--end-lsn", end, env={"DATABASE_URL": C.url(), "SLOT_NAME": "s_envvar",
                                           "PUBLICATION_NAME": "pub_env"})
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("replication slot created: s_envvar", p.stderr)
        finally:
            os.unlink(f.name)

    def test_keyword_conninfo(self):
        C.sql("CREATE PUBLICATION pub_kv FOR ALL TABLES")
        conninfo = "host=127.0.0.1 port=%d user=postgres dbname=postgres" % C.port
        p = run("--database-url", conninfo, "--slot", "s_kv", "--publication", "pub_kv",
                "--end-lsn", lsn_str(C.current_lsn()))
        self.assertEqual(p.returncode, 0, p.stderr)


class ReplicaIdentity(unittest.TestCase):
    """Tables whose UPDATEs and DELETEs the server refuses while published
    (no primary key under REPLICA IDENTITY DEFAULT, or NOTHING): named with
    the remedy at every start, and --create-publication refuses to publish
    them unless --allow-no-replica-identity."""

    def setUp(self):
        C.sql("CREATE TABLE ri_nokey (v text)")
        C.sql("CREATE TABLE ri_nothing (id int PRIMARY KEY)")
        C.sql("ALTER TABLE ri_nothing REPLICA IDENTITY NOTHING")
        C.sql("CREATE TABLE ri_full (v text)")
        C.sql("ALTER TABLE ri_full REPLICA IDENTITY FULL")

    def tearDown(self):
        # Dropped, so that other tests' FOR ALL TABLES publications are
        # created as before.
        for pub in ("pub_ri", "pub_ri_ins", "pub_ri_new"):
            C.sql("DROP PUBLICATION IF EXISTS " + pub)
        for t in ("ri_nokey", "ri_nothing", "ri_full"):
            C.sql("DROP TABLE " + t)

    def start(self, pub, *args):
        return run("--database-url", C.url(), "--publication", pub, "--slot", "s_" + pub,
                   *args, "--end-lsn", lsn_str(C.current_lsn()))

    def test_warned_at_every_start(self):
        C.sql("CREATE PUBLICATION pub_ri FOR TABLE t, ri_nokey, ri_nothing, ri_full")
        p = self.start("pub_ri")
        self.assertEqual(p.returncode, 0, p.stderr)
        warned = [l for l in p.stderr.splitlines() if "no replica identity" in l]
        self.assertEqual(len(warned), 1, p.stderr)
        self.assertIn("2 tables have no replica identity: public.ri_nokey (no primary key),"
                      " public.ri_nothing (REPLICA IDENTITY NOTHING)", warned[0])
        self.assertIn("REPLICA IDENTITY FULL", warned[0])
        self.assertNotIn("ri_full", warned[0])
        self.assertNotIn("public.t ", warned[0])
        # Each start, not just the first: the slot exists now.
        C.sql("ALTER TABLE ri_nothing REPLICA IDENTITY DEFAULT")
        p = self.start("pub_ri")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("using existing replication slot", p.stderr)
        self.assertIn("1 table has no replica identity: public.ri_nokey (no primary key)",
                      p.stderr)
        C.sql("ALTER TABLE ri_nokey REPLICA IDENTITY FULL")
        p = self.start("pub_ri")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("replica identity", p.stderr)
        # A publication of INSERTs only: the server refuses nothing.
        C.sql("CREATE PUBLICATION pub_ri_ins FOR TABLE ri_nokey WITH (publish = 'insert')")
        C.sql("ALTER TABLE ri_nokey REPLICA IDENTITY DEFAULT")
        p = self.start("pub_ri_ins")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("replica identity", p.stderr)

    def test_create_publication_refused(self):
        p = self.start("pub_ri_new", "--create-publication", "--tables",
                       "t,ri_nokey,ri_nothing,ri_full")
        one_error_line(self, p, "could not create publication pub_ri_new: the server would"
                       " refuse UPDATE and DELETE on 2 tables without a replica identity")
        self.assertIn("--allow-no-replica-identity): public.ri_nokey (no primary key),"
                      " public.ri_nothing (REPLICA IDENTITY NOTHING)", p.stderr)
        self.assertEqual(C.sql("SELECT 1 FROM pg_publication WHERE pubname = 'pub_ri_new'"),
                         [])
        self.assertEqual(C.sql("SELECT 1 FROM pg_replication_slots"
                               " WHERE slot_name = 's_pub_ri_new'"), [])
        # FOR ALL TABLES: the server's own list of the tables it would hold.
        p = self.start("pub_ri_new", "--create-publication")
        one_error_line(self, p, "public.ri_nokey (no primary key)")
        self.assertEqual(C.sql("SELECT 1 FROM pg_publication WHERE pubname = 'pub_ri_new'"),
                         [])
        p = self.start("pub_ri_new", "--create-publication", "--tables", "t,ri_full")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("publication created: pub_ri_new", p.stderr)
        self.assertNotIn("replica identity", p.stderr)
        C.sql("DROP PUBLICATION pub_ri_new")
        p = self.start("pub_ri_new", "--create-publication", "--tables", "t,ri_nokey",
                       "--allow-no-replica-identity")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("publication created: pub_ri_new", p.stderr)
        self.assertIn("warning: publication pub_ri_new: 1 table has no replica identity:"
                      " public.ri_nokey (no primary key)", p.stderr)
        p = run("--database-url", C.url(), "--allow-no-replica-identity")
        one_error_line(self, p, "--allow-no-replica-identity needs --create-publication", 2)


class WalLevel(unittest.TestCase):
    def test_wal_level_not_logical(self):
        c = Cluster("wal_level = replica")
        try:
            p = run("--database-url", c.url())
            one_error_line(self, p, 'wal_level is "replica"')
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main()
