"""harness.py — scratch PostgreSQL clusters and pgstream processes for the
integration tests. Nothing is mocked: each test module starts a real cluster
with scripts/pgcluster.sh and runs the real binary against it."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PGSTREAM_BIN") or os.path.join(ROOT, "build", "pgstream")
PGCLUSTER = os.path.join(ROOT, "scripts", "pgcluster.sh")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_str(value):
    return "%X/%X" % (value >> 32, value & 0xFFFFFFFF)


class Cluster:
    """A throwaway cluster in a temporary directory, removed at close()."""

    def __init__(self, *conf):
        self.dir = tempfile.mkdtemp(prefix="pgstream-it-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        subprocess.run([PGCLUSTER, "start", self.dir, str(self.port), *conf], check=True)

    def url(self, db="postgres", user="postgres", password=None):
        auth = user if password is None else "%s:%s" % (user, password)
        return "postgresql://%s@127.0.0.1:%d/%s" % (auth, self.port, db)

    def connect(self, db="postgres"):
        conn = psycopg2.connect(self.url(db))
        conn.autocommit = True
        return conn

    def sql(self, query, args=None, db="postgres"):
        """Run one statement in its own transaction; return rows (or [])."""
        with self.connect(db) as conn, conn.cursor() as cur:
            cur.execute(query, args)
            rows = cur.fetchall() if cur.description else []
        conn.close()
        return rows

    def value(self, query, args=None, db="postgres"):
        return self.sql(query, args, db)[0][0]

    def current_lsn(self):
        return lsn_int(self.value("SELECT pg_current_wal_insert_lsn()::text"))

    def slot_confirmed(self, slot):
        rows = self.sql("SELECT confirmed_flush_lsn::text FROM pg_replication_slots"
                        " WHERE slot_name = %s", (slot,))
        return lsn_int(rows[0][0]) if rows and rows[0][0] else 0

    def hba_prepend(self, line):
        """Put an authentication rule first and reload."""
        path = os.path.join(self.dir, "data", "pg_hba.conf")
        with open(path) as f:
            rules = f.read()
        with open(path, "w") as f:
            f.write(line + "\n" + rules)
        self.sql("SELECT pg_reload_conf()")

    def stop(self, mode="fast"):
        subprocess.run([PGCLUSTER, "stop", self.dir, mode], check=True)

    def restart(self, mode="fast"):
        subprocess.run([PGCLUSTER, "restart", self.dir, mode], check=True)

    def close(self):
        subprocess.run([PGCLUSTER, "stop", self.dir, "immediate"],
                       stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class PgStream:
    """One pgstream process; stdout and stderr go to files so tests can read
    what it emitted even after a kill -9."""

    def __init__(self, cluster, *args, slot="pgstream_slot", pub="pgstream_pub",
                 fmt="json", url=None, env=None, out=None):
        self.cluster = cluster
        self.workdir = tempfile.mkdtemp(prefix="pgstream-run-")
        self.out_path = out or os.path.join(self.workdir, "stdout")
        self.err_path = os.path.join(self.workdir, "stderr")
        self.argv = [BIN, "--database-url", url or cluster.url(), "--slot", slot,
                     "--publication", pub, "--format", fmt, "--env-file", "/dev/null",
                     *args]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self):
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, env=self.env)
        return self

    def run(self, timeout=120):
        """Run to exit (use with --end-lsn); return the exit status."""
        self.start()
        return self.proc.wait(timeout=timeout)

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def events(self):
        """Every complete JSON line emitted so far; each must parse."""
        text = self.stdout()
        lines = text.split("\n")[:-1]  # a line cut by kill -9 has no newline
        return [json.loads(line) for line in lines]

    def wait_for(self, predicate, timeout=60, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            if self.proc and self.proc.poll() is not None:
                raise AssertionError("pgstream exited (%s) while waiting for %s:\n%s"
                                     % (self.proc.returncode, what, self.stderr()))
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s; stderr:\n%s" % (what, self.stderr()))

    def wait_events(self, n, timeout=60):
        self.wait_for(lambda: len(self.events()) >= n, timeout, "%d events" % n)
        return self.events()

    def wait_stderr(self, text, timeout=60):
        self.wait_for(lambda: text in self.stderr(), timeout, repr(text))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Workload:
    """Writes numbered rows into table `ledger` in transactions of varying
    size from a background thread, and remembers what committed. Row ids are
    unique, so every change can be traced to its transaction."""

    def __init__(self, cluster, table="ledger"):
        import threading
        self.cluster = cluster
        self.table = table
        self.committed = []  # list of lists of ids, one per committed transaction
        self.rolled_back = []
        self.stop_flag = threading.Event()
        self.thread = None
        self.next_id = 1
        cluster.sql("CREATE TABLE IF NOT EXISTS %s (id bigint PRIMARY KEY, tx int, pad text)"
                    % table)

    def write(self, txns, sizes=(1, 1, 3, 10, 50), big_every=0, big_size=5000, pause=0.0,
              rollback_every=0):
        import random
        conn = self.cluster.connect()
        conn.autocommit = False
        cur = conn.cursor()
        for n in range(txns):
            if self.stop_flag.is_set():
                break
            size = big_size if big_every and n % big_every == big_every - 1 \
                else random.choice(sizes)
            ids = list(range(self.next_id, self.next_id + size))
            self.next_id += size
            cur.execute("INSERT INTO %s SELECT g, %%s, 'p' || g FROM generate_series(%%s, %%s) g"
                        % self.table, (n, ids[0], ids[-1]))
            if rollback_every and n % rollback_every == rollback_every - 1:
                conn.rollback()
                self.rolled_back.append(ids)
            else:
                conn.commit()
                self.committed.append(ids)
            if pause:
                time.sleep(pause)
        conn.close()

    def start(self, *args, **kwargs):
        import threading
        self.thread = threading.Thread(target=self.write, args=args, kwargs=kwargs)
        self.thread.start()
        return self

    def join(self):
        self.thread.join()

    def verify(self, runs, acked_at_kill=()):
        """Check the union of the events of several pgstream runs against
        what committed. runs: list of event lists, in run order.
        acked_at_kill[i]: the slot's confirmed_flush_lsn right after run i
        ended; an event of run i may appear again in a later run only if
        its transaction was not acknowledged (commit_lsn >= that LSN).
        Returns (events checked, repeats)."""
        committed = {i for tx in self.committed for i in tx}
        rolled = {i for tx in self.rolled_back for i in tx}
        seen = {}
        repeats = 0
        checked = 0
        for r, events in enumerate(runs):
            in_run = set()
            for e in events:
                if e.get("table") != self.table or e["op"] != "insert":
                    continue
                checked += 1
                rid = e["new"]["id"]
                assert rid not in rolled, "row %d from a rolled-back transaction" % rid
                assert rid in committed, "row %d never committed" % rid
                assert rid not in in_run, "row %d twice within one run" % rid
                in_run.add(rid)
                if rid in seen:
                    repeats += 1
                    prev_run, prev_commit = seen[rid]
                    limit = acked_at_kill[prev_run] if prev_run < len(acked_at_kill) else 0
                    assert lsn_int(e["commit_lsn"]) >= limit, \
                        "row %d repeated although its transaction (commit %s) was " \
                        "acknowledged (%s)" % (rid, e["commit_lsn"], lsn_str(limit))
                seen[rid] = (r, e["commit_lsn"])
        missing = committed - set(seen)
        assert not missing, "%d committed rows never emitted, e.g. %s" % (
            len(missing), sorted(missing)[:5])
        # Order within each run: ids of one transaction appear in order and
        # transactions in commit order.
        for events in runs:
            ids = [e["new"]["id"] for e in events
                   if e.get("table") == self.table and e["op"] == "insert"]
            commits = [lsn_int(e["commit_lsn"]) for e in events
                       if e.get("table") == self.table and e["op"] == "insert"]
            assert commits == sorted(commits), "transactions out of commit order"
            assert ids == sorted(ids), "rows out of order within a run"
        return checked, repeats
