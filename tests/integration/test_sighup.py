"""SIGHUP reopens the --output file, as logrotate's postrotate expects:
the file is moved away while a writer keeps committing, pgstream gets
SIGHUP and starts a new file; after several rotations every committed row
is in exactly one file, in order, each file ends with a whole event, and
pgstream exits 0 at SIGTERM (SIGHUP used to kill it, exit 129). With the
stdout sink, SIGHUP changes nothing and kills nothing."""

import json
import os
import signal
import time
import unittest

from harness import Cluster, PgStream, Workload

C = None


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


def read_events(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"" or data.endswith(b"\n"), "%s ends inside an event" % path
    return [json.loads(l) for l in data.decode().splitlines()]


def lines(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


class Sighup(unittest.TestCase):
    def test_rotation_loses_nothing(self):
        w = Workload(C, table="rot")
        p = PgStream(C, "--status-interval", "1", slot="s_rot")
        out = os.path.join(p.workdir, "events.jsonl")
        p.argv += ["--output", out]
        rotated = []
        try:
            p.start()
            p.wait_stderr("listening for changes")
            w.start(3000, sizes=(1, 5, 20), pause=0.002)
            for i in range(4):
                p.wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0,
                           what="events in the new file")
                time.sleep(0.3)
                moved = "%s.%d" % (out, i + 1)
                os.rename(out, moved)  # what logrotate does, then postrotate:
                rotated.append(moved)
                p.signal(signal.SIGHUP)
                p.wait_for(lambda: os.path.exists(out), what="the reopened file")
                self.assertIsNone(p.proc.poll(), p.stderr())
            w.join()
            want = sum(len(tx) for tx in w.committed)
            p.wait_for(lambda: sum(lines(f) for f in rotated + [out]) >= want,
                       what="%d events" % want)
            self.assertEqual(p.stop(), 0, p.stderr())
            self.assertEqual(p.stderr().count("reopened %s (SIGHUP)" % out), 4, p.stderr())
            events = []
            for path in rotated + [out]:
                got = read_events(path)
                self.assertTrue(got, "%s is empty" % path)
                events += got
            checked, repeats = w.verify([events])
            self.assertEqual((checked, repeats), (want, 0))
        finally:
            w.stop()
            p.close()

    def test_stdout_is_unaffected(self):
        C.sql("CREATE TABLE hup (id int PRIMARY KEY)")
        p = PgStream(C, slot="s_hup")
        try:
            p.start()
            p.wait_stderr("listening for changes")
            p.signal(signal.SIGHUP)
            p.wait_stderr("SIGHUP: nothing to reopen (events go to stdout)")
            C.sql("INSERT INTO hup VALUES (1)")
            self.assertEqual(p.wait_events(1)[0]["new"], {"id": 1})
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main()
