"""Nothing is lost across stops, kills and server restarts: every committed
change appears at least once, nothing from rolled-back transactions, and a
change appears again only if its transaction had not been acknowledged."""

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import (BIN, ROOT, Cluster, PgStream, Workload, check_idle_lags, check_stream,
                     confirmed_catch_up, lsn_str, wait_slot_inactive)

C = None


def setUpModule():
    global C
    C = Cluster("wal_sender_timeout = 10s")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


def finish(slot, table):
    """Stream whatever is left up to the current LSN."""
    p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), slot=slot)
    try:
        assert p.run(timeout=180) == 0, p.stderr()
        return p.events()
    finally:
        p.close()


class Resume(unittest.TestCase):
    def test_resume_after_sigterm(self):
        w = Workload(C, "ledger_term")
        p = PgStream(C, "--status-interval", "0.2", slot="s_term").start()
        p.wait_stderr("listening for changes...")
        w.write(40)
        p.wait_events(sum(len(t) for t in w.committed))
        self.assertEqual(p.stop(), 0, p.stderr())
        first = p.events()
        acked = wait_slot_inactive(C, "s_term")
        p.close()
        w.write(40)  # while pgstream is down
        rest = finish("s_term", w.table)
        checked, repeats = w.verify([first, rest], [acked])
        self.assertEqual(repeats, 0)  # a clean stop acknowledges everything it wrote
        self.assertGreater(checked, 0)

    def test_resume_after_kill_9_during_burst(self):
        w = Workload(C, "ledger_kill")
        runs, acks = [], []
        for round_ in range(3):
            p = PgStream(C, "--status-interval", "0.1", slot="s_kill").start()
            p.wait_stderr("listening for changes...")
            w.start(200, big_every=50, rollback_every=7)
            time.sleep(random.uniform(0.1, 1.5))
            p.kill()
            runs.append(p.events())
            # The walsender may still take status updates pgstream sent
            # before it died: the position the next run starts from is the
            # one left once the walsender has gone.
            acks.append(wait_slot_inactive(C, "s_kill"))
            p.close()
            w.join()
        runs.append(finish("s_kill", w.table))
        checked, repeats = w.verify(runs, acks)
        print("kill -9: %d rounds, %d events checked, %d repeats" % (3, checked, repeats))

    def test_idle_slot_is_acknowledged_to_wal_end(self):
        # WAL without events (DDL), at random moments against pgstream's
        # status timer: the slot's confirmed_flush_lsn must reach it within
        # two status intervals (harness.check_idle_lags), not at
        # wal_sender_timeout / 2 (5 s here) as without pgstream's keepalive
        # requests, nor only with the next event. An interval of 1 s keeps
        # the allowance for a loaded machine small against the claim.
        interval = 1.0
        p = PgStream(C, "--status-interval", "%g" % interval, slot="s_idle").start()
        try:
            p.wait_stderr("listening for changes...")
            lags = []
            for n in range(9):
                time.sleep(random.uniform(0, interval))
                C.sql("CREATE TABLE idle_unpublished_ddl_%d (id int)" % n)  # WAL, no events
                lags.append(confirmed_catch_up(C, "s_idle", C.current_lsn()))
            self.assertEqual(p.events(), [])
            print("idle slot: " + check_idle_lags(lags, interval), flush=True)
        finally:
            p.close()

    def test_slot_dropped_while_disconnected_is_an_error(self):
        p = PgStream(C, "--status-interval", "0.2", "--reconnect-max-delay", "1",
                     slot="s_dropped").start()
        try:
            p.wait_stderr("listening for changes...")
            deadline = time.time() + 30
            while time.time() < deadline:  # the walsender comes back: race it
                C.sql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                      " WHERE slot_name = 's_dropped' AND active_pid IS NOT NULL")
                try:
                    C.sql("SELECT pg_drop_replication_slot('s_dropped')")
                    break
                except Exception:
                    time.sleep(0.05)
            self.assertEqual(p.proc.wait(timeout=30), 1, p.stderr())
            self.assertIn('replication slot "s_dropped" no longer exists', p.stderr())
            # It did not quietly create a new slot that would skip changes.
            self.assertEqual(C.sql("SELECT 1 FROM pg_replication_slots"
                                   " WHERE slot_name = 's_dropped'"), [])
        finally:
            p.close()

    def test_postgres_restarted_under_it(self):
        w = Workload(C, "ledger_restart")
        p = PgStream(C, "--status-interval", "0.2", "--reconnect-max-delay", "2",
                     slot="s_restart").start()
        p.wait_stderr("listening for changes...")
        # Writes between restarts (a write cut by a restart would leave its
        # commit in doubt); pgstream is mid-stream when each restart hits.
        for mode in ("fast", "immediate"):
            w.write(100, big_every=20)
            C.restart(mode)
        w.write(100)
        p.wait_stderr("reconnecting in")
        total = sum(len(t) for t in w.committed)
        p.wait_for(lambda: len({e["new"]["id"] for e in p.events()}) >= total, 120,
                   "all %d rows" % total)
        self.assertEqual(p.stop(), 0, p.stderr())
        events = p.events()
        p.close()
        # One run, but restarts in the middle: repeats allowed, losses not;
        # nothing invented, each delivery of a transaction whole and in
        # order, new transactions in commit order (harness.check_stream).
        ids = {e["new"]["id"] for e in events}
        self.assertEqual(ids, {i for t in w.committed for i in t})
        check_stream(events, w)
        self.assertEqual(p.proc.returncode, 0)


class StopSignal(unittest.TestCase):
    def test_sigterm_just_before_the_wait(self):
        """A SIGTERM that lands after the loop looked at its stop flag and
        before its poll() stops pgstream at once (the handler wakes the poll
        through a pipe), not when the poll times out: gdb holds pgstream on
        the line of stream_wait's poll() on an idle stream and delivers the
        signal there. Before the pipe, the stop waited for the server's next
        keepalive (seconds)."""
        src = os.path.join(ROOT, "src", "pg", "stream.c")
        with open(src) as f:
            line = next(i for i, l in enumerate(f, 1) if "n = poll(fds, 1 + nothers" in l)
        work = tempfile.mkdtemp(prefix="pgstream-gdb-")
        stamp = os.path.join(work, "signalled")
        script = os.path.join(work, "script.gdb")
        with open(script, "w") as f:
            f.write("set pagination off\nset confirm off\n"
                    "handle SIGTERM nostop noprint pass\n"
                    "break stream.c:%d\nrun\ndelete\n"
                    "shell date +%%s.%%N > %s\nsignal SIGTERM\n" % (line, stamp))
        env = dict(os.environ)
        if "ASAN_OPTIONS" in env:  # LeakSanitizer cannot run under ptrace
            env["ASAN_OPTIONS"] += ":detect_leaks=0"
        argv = ["gdb", "-batch", "-nx", "-x", script, "--args", BIN, "--database-url", C.url(),
                "--slot", "s_gdb", "--publication", "pgstream_pub", "--env-file", "/dev/null",
                "--status-interval", "30", "--wal-receiver-timeout", "120"]
        try:
            with open(os.path.join(work, "out"), "w") as out:
                r = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   timeout=120)
            ended = time.time()
            with open(os.path.join(work, "out")) as f:
                log = f.read()
            self.assertEqual(r.returncode, 0, log)
            self.assertIn("exited normally", log)  # status 0: a clean stop
            with open(stamp) as f:
                took = ended - float(f.read())
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # The server's keepalive comes every wal_sender_timeout / 2 (5 s).
        self.assertLess(took, 2.5, log)
        print("SIGTERM just before poll(): stopped in %.2f s" % took)
        C.sql("SELECT pg_drop_replication_slot('s_gdb')")


if __name__ == "__main__":
    unittest.main()
