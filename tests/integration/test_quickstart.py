"""scripts/quickstart.sh against an existing database (DATABASE_URL) streams
it for DEMO_SECONDS and leaves nothing behind: no slot, and no publication
unless one was there before (then it is kept); without DATABASE_URL the
demo streams its own throwaway cluster's users table and stops by itself."""

import json
import os
import subprocess
import threading
import time
import unittest

from harness import BIN, ROOT, Cluster

SCRIPT = os.path.join(ROOT, "scripts", "quickstart.sh")
C = None


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE TABLE qs (id int PRIMARY KEY)")


def tearDownModule():
    C.close()


def quickstart(seconds, database_url=None, writes=()):
    env = dict(os.environ, PGSTREAM_BIN=BIN, DEMO_SECONDS=str(seconds))
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url

    def writer():
        # Once pgstream's temporary slot is there (under load it may take
        # longer than half the demo), so the writes are streamed.
        deadline = time.time() + seconds
        while writes and time.time() < deadline and not C.value(
                "SELECT count(*) FROM pg_replication_slots WHERE active"):
            time.sleep(0.05)
        for stmt in writes:
            C.sql(stmt)
    t = threading.Thread(target=writer)
    t.start()
    try:
        r = subprocess.run(["bash", SCRIPT, "--format", "json"], capture_output=True,
                           text=True, env=env, timeout=120)
    except subprocess.TimeoutExpired as e:
        # Where it hung: what the script and pgstream said until then.
        def text(b):
            return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")
        raise AssertionError("quickstart.sh still running after 120 s; stderr:\n%s\nstdout:\n%s"
                             % (text(e.stderr)[-3000:], text(e.stdout)[-1000:])) from None
    finally:
        t.join()
    return r


class Quickstart(unittest.TestCase):
    def test_existing_database_left_as_it_was(self):
        r = quickstart(6, C.url(), ["INSERT INTO qs VALUES (1)"])
        self.assertEqual(r.returncode, 0, r.stderr)
        events = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual([(e["table"], e["new"]) for e in events], [("qs", {"id": 1})])
        self.assertIn("creating publication pgstream_pub", r.stderr)
        self.assertEqual(C.value("SELECT count(*) FROM pg_replication_slots"), 0)
        self.assertEqual(C.value("SELECT count(*) FROM pg_publication"), 0)

    def test_existing_publication_is_kept(self):
        C.sql("CREATE PUBLICATION mine FOR TABLE qs")
        try:
            env_pub = dict(os.environ)
            os.environ["PUBLICATION_NAME"] = "mine"
            try:
                r = quickstart(6, C.url(), ["INSERT INTO qs VALUES (2)"])
            finally:
                os.environ.clear()
                os.environ.update(env_pub)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("creating publication", r.stderr)
            self.assertEqual(len(r.stdout.splitlines()), 1, r.stdout)
            self.assertEqual(C.value("SELECT count(*) FROM pg_replication_slots"), 0)
            self.assertEqual(C.value("SELECT pubname FROM pg_publication"), "mine")
        finally:
            C.sql("DROP PUBLICATION mine")

    def test_demo_stops_by_itself(self):
        r = quickstart(6)
        self.assertEqual(r.returncode, 0, r.stderr)
        dirs = [l.split(" in ", 1)[1].split(" ")[0] for l in r.stderr.splitlines()
                if l.startswith("starting a throwaway PostgreSQL in ")]
        self.assertEqual(len(dirs), 1, r.stderr)
        self.assertFalse(os.path.exists(dirs[0]))
        events = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertTrue(any(e["op"] == "insert" and e["table"] == "users" for e in events),
                        r.stdout[:500])


if __name__ == "__main__":
    unittest.main()
