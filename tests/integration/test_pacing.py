"""Read pacing (--read-delay-us, src/pg/stream.c): pausing between reads
changes how often pgstream wakes up, never what it emits.

The same WAL is streamed twice, unpaced (--read-delay-us=0, one wakeup per
few messages as pg_recvlogical does) and with the default pause: the output
must be byte-identical, and the paced run must have needed far fewer
voluntary context switches (ru_nvcsw, each one a sleep on the socket or in
the pause) for the same events."""

import os
import re
import unittest

from harness import Cluster, PgStream, lsn_str

C = None
ROWS = 60000
SMALL_TXNS = 3000


def setUpModule():
    global C
    C = Cluster()
    C.sql("CREATE TABLE paced (id bigint PRIMARY KEY, name text, amount numeric)")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    for slot in ("unpaced", "paced", "paced_long", "segments", "hold", "unpaced_debug"):
        C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    # One large transaction (the walsender sends as fast as it decodes) and
    # many one-row transactions (Begin/change/Commit, small messages).
    C.sql("INSERT INTO paced SELECT g, 'name ' || g, g * 1.5"
          " FROM generate_series(1, %s) g", (ROWS,))
    conn = C.connect()  # autocommit, outside "with": one transaction per UPDATE
    with conn.cursor() as cur:
        for i in range(1, SMALL_TXNS + 1):
            cur.execute("UPDATE paced SET amount = amount + 1 WHERE id = %s", (i,))
    conn.close()


def tearDownModule():
    C.close()


def stream(slot, *args):
    """Stream slot to the end of the workload; return (exit status, output,
    voluntary context switches, stderr)."""
    p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), *args, slot=slot)
    p.start()
    # wait4 on our own child: its rusage, nothing else's.
    _, status, usage = os.wait4(p.proc.pid, 0)
    p.proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = p.stdout(), p.stderr()
    p.close()
    return p.proc.returncode, out, usage.ru_nvcsw, err


class Pacing(unittest.TestCase):
    def test_same_output_fewer_wakeups(self):
        rc0, out0, csw0, err0 = stream("unpaced", "--read-delay-us=0")
        self.assertEqual(rc0, 0, err0)
        rc1, out1, csw1, err1 = stream("paced")
        self.assertEqual(rc1, 0, err1)
        events = ROWS + SMALL_TXNS
        self.assertEqual(out0.count("\n"), events)
        self.assertEqual(out1, out0)
        print("voluntary context switches for %d events: unpaced %d, paced %d"
              % (events, csw0, csw1))
        # Under AddressSanitizer pgstream is several times slower than the
        # walsender, so even the unpaced run finds batches waiting: the
        # comparison means something only for the plain build.
        if os.environ.get("PGSTREAM_SANITIZED") != "1":
            self.assertLess(csw1 * 2, csw0)

    def test_long_pause_still_delivers(self):
        # The largest pause allowed (0.1 s) makes a slow reader, not a lossy
        # or stuck one: every event arrives, in the same order.
        rc, out, _, err = stream("paced_long", "--read-delay-us=100000")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("\n"), ROWS + SMALL_TXNS)

    def test_logs_tcp_segments(self):
        # At debug level the replication connection reports, when it closes,
        # how the server's bytes arrived: whether its sends coalesced.
        rc, out, _, err = stream("segments", "--log-level", "debug")
        self.assertEqual(rc, 0, err)
        m = re.search(r"connection received (\d+) bytes in (\d+) TCP segments,"
                      r" (\d+) bytes per segment", err)
        self.assertIsNotNone(m, err)
        received, segments, per_segment = (int(x) for x in m.groups())
        print("received %d bytes in %d segments, %d per segment"
              % (received, segments, per_segment))
        # Every event came as an XLogData frame (a 25-byte header and the
        # row), and as pgoutput, which is more compact than the JSON printed.
        self.assertGreater(received, 25 * (ROWS + SMALL_TXNS))
        self.assertLess(received, len(out))
        self.assertGreaterEqual(segments, 1)
        self.assertEqual(per_segment, received // segments)

    def test_hold_on_same_host_tcp(self):
        # The server is on this host and reached over TCP (127.0.0.1): the
        # receive buffer is fixed for the hold, the 60,000-row transaction
        # arrives fast enough to start it, the one-row transactions that
        # follow it slowly enough to end it - and all that changes nothing
        # in what is emitted (test_same_output_fewer_wakeups compares the
        # default, held run with an unpaced one byte for byte).
        rc, out, _, err = stream("hold", "--log-level", "debug")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("\n"), ROWS + SMALL_TXNS)
        self.assertIn("server on this host over TCP: receive buffer 64 kB", err)
        if os.environ.get("PGSTREAM_SANITIZED") != "1":
            # Under AddressSanitizer pgstream may read slower than the
            # 8 MB/s that starts the hold.
            self.assertIn("read hold on", err)

    def test_no_hold_when_unpaced(self):
        # --read-delay-us=0 reads as pg_recvlogical does: no pause, so no
        # hold and the receive buffer is left to Linux.
        rc, out, _, err = stream("unpaced_debug", "--read-delay-us=0", "--log-level", "debug")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("\n"), ROWS + SMALL_TXNS)
        self.assertNotIn("receive buffer", err)
        self.assertNotIn("read hold", err)


if __name__ == "__main__":
    unittest.main()
