"""harness.py — scratch PostgreSQL clusters and pgstream processes for the
integration tests. Nothing is mocked: each test module starts a real cluster
with scripts/pgcluster.sh and runs the real binary against it."""

import atexit
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
PGVERSIONS = os.path.join(ROOT, "scripts", "pgversions.sh")


def pg_bin(version):
    """The bin directory of PostgreSQL `version` (a major: 13, 14, 16, 17,
    18) from scripts/pgversions.sh, fetched into its cache if need be.
    Raises unittest.SkipTest with the reason when it cannot be fetched (no
    network, no npm): the version's tests show as skipped, never passed."""
    import unittest
    r = subprocess.run(["bash", PGVERSIONS, "bin", str(version)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise unittest.SkipTest((r.stderr.strip().splitlines() or ["pgversions.sh failed"])[-1])
    return r.stdout.strip()


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
    """A throwaway cluster in a temporary directory, removed at close().
    version=None is Debian's server (15); version=13, 14, 16, 17 or 18 one
    of scripts/pgversions.sh's builds (unittest.SkipTest when it cannot be
    fetched)."""

    def __init__(self, *conf, version=None):
        self.env = dict(os.environ)
        if version is not None:
            self.env["PGSTREAM_PG_BIN"] = pg_bin(version)
        self.dir = tempfile.mkdtemp(prefix="pgstream-it-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        subprocess.run([PGCLUSTER, "start", self.dir, str(self.port), *conf], check=True,
                       env=self.env)

    def url(self, db="postgres", user="postgres", password=None):
        auth = user if password is None else "%s:%s" % (user, password)
        return "postgresql://%s@127.0.0.1:%d/%s" % (auth, self.port, db)

    def connect(self, db="postgres"):
        conn = psycopg2.connect(self.url(db))
        conn.autocommit = True
        return conn

    def sql(self, query, args=None, db="postgres"):
        """Run one statement in its own transaction; return rows (or []).

        On an autocommit connection and not inside psycopg2's `with conn`,
        which opens a transaction block even then: so CREATE DATABASE,
        ALTER SYSTEM and the like run here too."""
        conn = self.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

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
        subprocess.run([PGCLUSTER, "stop", self.dir, mode], check=True, env=self.env)

    def restart(self, mode="fast"):
        subprocess.run([PGCLUSTER, "restart", self.dir, mode], check=True, env=self.env)

    def close(self):
        subprocess.run([PGCLUSTER, "stop", self.dir, "immediate"],
                       stderr=subprocess.DEVNULL, check=False, env=self.env)
        shutil.rmtree(self.dir, ignore_errors=True)


class Standby(Cluster):
    """A hot standby of `primary`, streaming from it through the physical
    slot `slot` with hot_standby_feedback, plus extra postgresql.conf lines.
    The builds have no pg_basebackup, so it starts from a cold copy of the
    primary's data directory: the primary is stopped for the copy and
    started again. The copy leaves out pg_replslot (a standby's slots are
    its own, or synchronized) and postgresql.auto.conf (ALTER SYSTEM on
    the primary stays the primary's)."""

    def __init__(self, primary, *conf, slot="standby_slot"):
        self.env = dict(primary.env)
        self.dir = tempfile.mkdtemp(prefix="pgstream-it-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        if not primary.sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)):
            primary.sql("SELECT pg_create_physical_replication_slot(%s)", (slot,))
        primary.stop()
        data = os.path.join(self.dir, "data")
        shutil.copytree(os.path.join(primary.dir, "data"), data, symlinks=True,
                        ignore=lambda d, names: [n for n in names if n == "postmaster.pid"])
        for name in os.listdir(os.path.join(data, "pg_replslot")):
            shutil.rmtree(os.path.join(data, "pg_replslot", name))
        open(os.path.join(data, "postgresql.auto.conf"), "w").close()
        open(os.path.join(data, "standby.signal"), "w").close()
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            for line in ("port = %d" % self.port, "unix_socket_directories = '%s'" % self.dir,
                         "primary_conninfo = 'host=127.0.0.1 port=%d user=postgres"
                         " dbname=postgres application_name=standby'" % primary.port,
                         "primary_slot_name = '%s'" % slot, "hot_standby_feedback = on",
                         *conf):
                f.write(line + "\n")
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", "postgres:", self.dir], check=True)
        subprocess.run([PGCLUSTER, "start", primary.dir, str(primary.port)], check=True,
                       env=primary.env)
        subprocess.run([PGCLUSTER, "start", self.dir, str(self.port)], check=True, env=self.env)

    def promote(self):
        subprocess.run([PGCLUSTER, "promote", self.dir], check=True, env=self.env)

    def wait_replayed(self, primary, timeout=30):
        """Until this standby has replayed the primary's WAL as it is now."""
        target = primary.current_lsn()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if lsn_int(self.value("SELECT pg_last_wal_replay_lsn()::text")) >= target:
                return
            time.sleep(0.05)
        raise AssertionError("standby did not replay up to %s" % lsn_str(target))


# Every PgStream started and not yet closed: killed when the test module
# exits, so a test that fails before its close() leaves no pgstream behind
# (one left by a failed run had gone on reconnecting for half an hour).
_RUNNING = set()


@atexit.register
def _kill_leftovers():
    for p in list(_RUNNING):
        p.close()


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
        _RUNNING.add(self)
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
        _RUNNING.discard(self)
        shutil.rmtree(self.workdir, ignore_errors=True)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_status_kb(pid, field):
    """A kB field of /proc/PID/status (VmHWM, VmRSS...), or None once the
    process has exited (a zombie has no memory fields)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_measuring_rss(p, timeout=600, every=0.01):
    """Start PgStream p, wait for it to exit and measure its peak RSS from
    outside: VmHWM (the kernel's high-water mark of the process's resident
    memory since its exec) from /proc/PID/status, sampled every `every`
    seconds while it runs. The last sample is at most `every` before the
    process exits, so only its exit can escape the measure. Not getrusage
    of the child: its ru_maxrss starts from the RSS of the forking Python
    process. Returns (exit status, peak kB, number of samples)."""
    p.start()
    pid = p.proc.pid
    deadline = time.time() + timeout
    peak, samples = 0, 0
    while p.proc.poll() is None:
        hwm = proc_status_kb(pid, "VmHWM")
        if hwm is not None:
            peak = max(peak, hwm)
            samples += 1
        if time.time() > deadline:
            p.kill()
            raise AssertionError("pgstream did not exit in %d s" % timeout)
        time.sleep(every)
    return p.proc.returncode, peak, samples


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

    def stop(self):
        """Ask the background writer to finish its transaction and stop;
        wait for it (a no-op if it was never started)."""
        self.stop_flag.set()
        if self.thread:
            self.thread.join()

    def verify(self, runs, acked_at_kill=()):
        """Check the union of the events of several pgstream runs against
        what committed. runs: list of event lists, in run order.
        acked_at_kill[i]: the slot's confirmed_flush_lsn once run i had
        ended and its walsender had gone (wait_slot_inactive): the position
        run i + 1 starts from.

        The bound on repeats: an event in run r may repeat a row emitted
        by an earlier run only if its transaction's commit_lsn is at or
        above A(r) = max(acked_at_kill[:r]), the latest acknowledgement
        that preceded the restart that repeated it. Why that bound, not an
        earlier one: the server decodes run r from the slot's
        confirmed_flush_lsn at run r's start, A(r), and skips every
        transaction whose commit record starts before it (commit_lsn <
        A(r)); pgstream acknowledges a transaction by its end LSN, after
        the commit record, so a transaction it acknowledged at any time
        before run r has commit_lsn < A(r) and must not come again. One at
        exactly A(r) (its commit record starts where the acknowledged WAL
        ends) was not acknowledged and may. The acknowledgement after the
        run that first (or last) emitted the row is no bound: it can be
        lower than A(r), and would let a row that a later run acknowledged
        repeat unnoticed. Reading A(r) before the walsender has gone is no
        bound either: the server may still take status updates pgstream
        sent before it died, so the slot can move on after the read.

        Also checked: every committed row present, none from a rolled-back
        transaction, none invented, none twice within one run, and within
        each run transactions in commit order and rows in order.
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
                    assert r > 0 and r - 1 < len(acked_at_kill), \
                        "row %d repeated in run %d, with no acknowledgement given for the " \
                        "restart before it" % (rid, r)
                    limit = max(acked_at_kill[:r])
                    assert lsn_int(e["commit_lsn"]) >= limit, \
                        "row %d repeated in run %d (first emitted in run %d) although its " \
                        "transaction (commit %s) was acknowledged before the restart (%s)" \
                        % (rid, r, seen[rid][0], e["commit_lsn"], lsn_str(limit))
                else:
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


# ---- fault injection (test_faults_*.py) ------------------------------------


class FaultStats:
    """Counts faults injected per kind and events checked; report() prints
    the one line the suite promises, e.g. "faults: kill9=20 ... events checked: N"."""

    def __init__(self):
        self.faults = {}
        self.checked = 0

    def fault(self, kind, n=1):
        self.faults[kind] = self.faults.get(kind, 0) + n

    def report(self, name=""):
        kinds = " ".join("%s=%d" % kv for kv in sorted(self.faults.items()))
        print("%sfaults: %s events checked: %d" % (name and name + " ", kinds or "none",
                                                    self.checked), flush=True)


class ResilientWorkload(Workload):
    """A Workload that keeps writing while the server restarts under it. A
    transaction that fails before COMMIT is rolled back; one whose COMMIT was
    cut has an unknown outcome and goes to in_doubt until resolve() looks at
    the table (rows are only ever inserted, so a transaction committed iff its
    rows are there, and then all of them)."""

    def __init__(self, cluster, table="ledger"):
        super().__init__(cluster, table)
        self.in_doubt = []
        self.errors = 0

    def write(self, txns, sizes=(1, 1, 3, 10, 50), big_every=0, big_size=2000, pause=0.0,
              rollback_every=0):
        import random
        conn = None
        n = 0
        while n < txns and not self.stop_flag.is_set():
            if conn is None:
                try:
                    conn = psycopg2.connect(self.cluster.url(), connect_timeout=3)
                except psycopg2.Error:
                    time.sleep(0.1)
                    continue
            size = big_size if big_every and n % big_every == big_every - 1 \
                else random.choice(sizes)
            ids = list(range(self.next_id, self.next_id + size))
            self.next_id += size
            stage = "insert"
            try:
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO %s SELECT g, %%s, 'p' || g"
                                " FROM generate_series(%%s, %%s) g" % self.table,
                                (n, ids[0], ids[-1]))
                if rollback_every and n % rollback_every == rollback_every - 1:
                    conn.rollback()
                    self.rolled_back.append(ids)
                else:
                    stage = "commit"
                    conn.commit()
                    self.committed.append(ids)
            except psycopg2.Error:
                self.errors += 1
                (self.in_doubt if stage == "commit" else self.rolled_back).append(ids)
                try:
                    conn.close()
                except psycopg2.Error:
                    pass
                conn = None
                time.sleep(0.05)
            n += 1
            if pause:
                time.sleep(pause)
        if conn is not None:
            conn.close()

    def resolve(self):
        """Settle in-doubt transactions from the table's contents (each must
        be there whole or not at all) and check the table holds exactly the
        committed rows. Returns (in doubt committed, in doubt not committed)."""
        present = {r[0] for r in self.cluster.sql("SELECT id FROM %s" % self.table)}
        yes = no = 0
        for ids in self.in_doubt:
            n = sum(1 for i in ids if i in present)
            assert n in (0, len(ids)), "transaction %d..%d partly committed" % (ids[0], ids[-1])
            if n:
                self.committed.append(ids)
                yes += 1
            else:
                self.rolled_back.append(ids)
                no += 1
        self.in_doubt = []
        self.committed.sort(key=lambda ids: ids[0])  # ids are handed out in commit order
        want = {i for tx in self.committed for i in tx}
        assert present == want, "table holds %d rows, %d committed" % (len(present), len(want))
        return yes, no

    def total(self):
        return sum(len(t) for t in self.committed)


def check_stream(events, w, marks=(), table=None, complete=True):
    """Check one stream of events against what committed in Workload w. The
    stream may span reconnects and restarts (runs concatenated in order), so
    it may rewind and repeat. marks: [(event index, ack LSN)], the slot's
    confirmed_flush_lsn read right after a fault injected once `event index`
    events had been emitted; events from there on may repeat a transaction
    only if it was not acknowledged (commit_lsn >= that LSN).

    Checked: every committed row present (when complete), nothing from a
    rolled-back transaction, nothing invented (ids and values), each delivery
    of a transaction starts at its first row and keeps its order, a delivery
    cut short is followed by a rewind, new transactions arrive in commit
    order, every delivery of a transaction has the same commit_lsn and xid.
    Returns (events checked, repeated events)."""
    table = table or w.table
    where = {}
    for t, ids in enumerate(w.committed):
        for k, i in enumerate(ids):
            where[i] = (t, k)
    rolled = {i for tx in w.rolled_back for i in tx}
    doubt = {i for tx in getattr(w, "in_doubt", []) for i in tx}
    marks = sorted(marks)
    mi, limit = -1, 0
    seen = set()
    envelope = {}
    checked = repeats = 0
    cur_t, next_k, cur_commit = None, 0, 0
    max_new_t, max_new_commit = -1, 0
    for n, e in enumerate(events):
        while mi + 1 < len(marks) and marks[mi + 1][0] <= n:
            mi += 1
            limit = max(limit, marks[mi][1])
        if e.get("table") != table:
            continue
        assert e["op"] == "insert", "unexpected %s on %s" % (e["op"], table)
        checked += 1
        rid = e["new"]["id"]
        assert rid not in rolled, "row %d from a rolled-back transaction" % rid
        assert rid not in doubt, "row %d of an unresolved in-doubt transaction" % rid
        assert rid in where, "row %d never committed" % rid
        assert e["new"].get("pad") == "p%d" % rid, "row %d has invented values %r" % (
            rid, e["new"])
        t, k = where[rid]
        commit = lsn_int(e["commit_lsn"])
        env = (e["commit_lsn"], e["xid"], e["commit_time"])
        assert envelope.setdefault(t, env) == env, \
            "row %d: transaction delivered with envelope %r, earlier %r" % (rid, env, envelope[t])
        if t == cur_t and k == next_k:
            next_k += 1
        else:
            assert k == 0, "row %d: delivery of its transaction starts at row %d" % (rid, k)
            if cur_t is not None and next_k < len(w.committed[cur_t]):
                assert commit <= cur_commit, \
                    "transaction at %s cut short (%d of %d rows) without a rewind" % (
                        lsn_str(cur_commit), next_k, len(w.committed[cur_t]))
            cur_t, next_k, cur_commit = t, 1, commit
        if rid in seen:
            repeats += 1
            assert commit >= limit, \
                "row %d repeated although its transaction (commit %s) was acknowledged " \
                "(%s)" % (rid, e["commit_lsn"], lsn_str(limit))
        elif k == 0:
            assert t > max_new_t and commit >= max_new_commit, \
                "transaction of row %d (commit %s) out of commit order" % (rid, e["commit_lsn"])
            max_new_t, max_new_commit = t, commit
        else:
            assert t == max_new_t, "row %d out of order" % rid
        seen.add(rid)
    if complete:
        missing = set(where) - seen
        assert not missing, "%d committed rows never emitted, e.g. %s" % (
            len(missing), sorted(missing)[:5])
    return checked, repeats


def parse_lines(data):
    """Complete JSON lines of bytes (a line cut by a kill has no newline)."""
    lines = data.split(b"\n")[:-1]
    return [json.loads(line) for line in lines]


def slot_info(cluster, slot):
    """(active_pid or None, confirmed_flush_lsn as int, wal_status) or None."""
    rows = cluster.sql("SELECT active_pid, confirmed_flush_lsn::text, wal_status"
                       " FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    if not rows:
        return None
    pid, lsn, status = rows[0]
    return pid, lsn_int(lsn) if lsn else 0, status


def wait_slot_inactive(cluster, slot, timeout=30):
    """Wait for the slot's walsender to go; return its confirmed_flush_lsn."""
    deadline = time.time() + timeout
    while True:
        info = slot_info(cluster, slot)
        if info is None or info[0] is None:
            return info[1] if info else 0
        if time.time() > deadline:
            raise AssertionError("slot %s still active (pid %s)" % (slot, info[0]))
        time.sleep(0.02)


def confirmed_catch_up(cluster, slot, target, timeout=30):
    """Seconds from now until the slot's confirmed_flush_lsn reaches target
    (an int LSN), polled every 10 ms over one connection so that the
    polling adds little to what is measured."""
    conn = cluster.connect()
    try:
        t0 = time.monotonic()
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots"
                            " WHERE slot_name = %s", (slot,))
                row = cur.fetchone()
                elapsed = time.monotonic() - t0
                if row and row[0] and lsn_int(row[0]) >= target:
                    return elapsed
                if elapsed > timeout:
                    raise AssertionError("slot %s: confirmed_flush_lsn %s has not reached %s in"
                                         " %.1f s" % (slot, row and row[0], lsn_str(target),
                                                      timeout))
                time.sleep(0.01)
    finally:
        conn.close()


# An idle slot's confirmed_flush_lsn follows the server within two status
# intervals (README, Guarantees): after a WAL position, the next status
# update asks for a keepalive, whose WAL end is past it, and the one after
# acknowledges that. PostgreSQL 15 does better on its own: its walsender
# sends a keepalive as soon as it has read WAL past what pgstream last
# reported, so pgstream acknowledges at its next status update, within one
# interval. check_idle_lags asserts both, each with an allowance for what a
# loaded 2-core machine running ASan variants side by side adds (a process
# not scheduled for a while): every sample within two intervals +
# IDLE_SAMPLE_ALLOWANCE, and their median within one interval +
# IDLE_MEDIAN_ALLOWANCE, which a pgstream a keepalive later than now (one
# to two intervals) fails almost every run. Measured here, ASan under load
# included: medians 0.45-0.55 of an interval, nothing over one interval.
IDLE_SAMPLE_ALLOWANCE = 1.5
IDLE_MEDIAN_ALLOWANCE = 0.3


def check_idle_lags(lags, interval):
    """Assert the idle-slot claims (above) on catch-up times
    (confirmed_catch_up, from the moment the WAL position was written,
    at moments random against pgstream's status timer). Returns a
    one-line summary to print."""
    import statistics
    median = statistics.median(lags)
    summary = "caught up in %s s (median %.2f, max %.2f; status interval %.2f s)" % (
        " ".join("%.2f" % x for x in lags), median, max(lags), interval)
    assert max(lags) <= 2 * interval + IDLE_SAMPLE_ALLOWANCE, \
        "idle slot: a catch-up took over two status intervals + %.2f s: %s" % (
            IDLE_SAMPLE_ALLOWANCE, summary)
    assert median <= interval + IDLE_MEDIAN_ALLOWANCE, \
        "idle slot: median catch-up over one status interval + %.2f s: %s" % (
            IDLE_MEDIAN_ALLOWANCE, summary)
    return summary


def walsender_pids(cluster, slot):
    return [r[0] for r in cluster.sql(
        "SELECT a.pid FROM pg_stat_activity a JOIN pg_replication_slots s"
        " ON s.active_pid = a.pid WHERE a.backend_type = 'walsender' AND s.slot_name = %s",
        (slot,))]


def product_bug(why):
    """Skip a test that checks correct behaviour the product does not have
    yet; PGSTREAM_KNOWN_BUGS=1 runs it anyway (to see it fail, or pass once
    fixed)."""
    import unittest
    return unittest.skipUnless(os.environ.get("PGSTREAM_KNOWN_BUGS") == "1",
                               "product bug: " + why)


# ---- running a test module: skipped checks show as skipped -------------------

# The exit status of a test module in which some test was skipped and none
# failed. tests/integration/CMakeLists.txt gives every integration test
# SKIP_RETURN_CODE 77, so ctest's summary lists such a module under "The
# following tests did not run: ... (Skipped)" instead of counting it as
# passed. (77 is what automake and meson use for "skipped".)
SKIP_EXIT = 77

import sys as _sys  # noqa: E402
import unittest as _unittest  # noqa: E402


class TestProgram(_unittest.TestProgram):
    """unittest.main, except that the exit status tells a module whose
    checks all ran (0) from one where some were skipped (SKIP_EXIT, and a
    line naming each skipped test and why), one where some failed (1), and
    one where none ran at all (1: a selection that matches nothing must not
    pass). Also takes --exclude PATTERN (repeatable; matched as -k is: a
    substring of module.Class.test, or an fnmatch pattern), so that
    CMakeLists.txt can give a test that may be skipped its own ctest entry
    (-k PATTERN) and run the rest of the module without it.

    Importing harness makes unittest.main this class, so the test modules'
    own `unittest.main()` gets it without a change; harness.main is the
    same for new code."""

    def parseArgs(self, argv):
        self.exclude_patterns = []
        rest = [argv[0]]
        it = iter(argv[1:])
        for arg in it:
            if arg == "--exclude":
                pattern = next(it, None)
                if pattern is None:
                    raise SystemExit("--exclude needs a pattern")
                self.exclude_patterns.append(pattern)
            elif arg.startswith("--exclude="):
                self.exclude_patterns.append(arg.split("=", 1)[1])
            else:
                rest.append(arg)
        super().parseArgs(rest)

    def createTests(self, *args, **kwargs):
        super().createTests(*args, **kwargs)
        patterns = getattr(self, "exclude_patterns", [])
        if patterns:
            import fnmatch
            globs = [p if "*" in p else "*%s*" % p for p in patterns]
            keep = _unittest.TestSuite()
            for t in _flatten(self.test):
                if not any(fnmatch.fnmatchcase(t.id(), g) for g in globs):
                    keep.addTest(t)
            self.test = keep

    def runTests(self):
        want_exit, self.exit = self.exit, False
        if self.testRunner is None:
            self.testRunner = _TimedRunner
        super().runTests()
        _TimedResult.report()
        self.exit = want_exit
        r = self.result
        if not r.wasSuccessful():
            status = 1
        elif r.testsRun == 0 and not r.skipped:
            print("no test ran (selection matched nothing): that is a failure", file=_sys.stderr)
            status = 1
        elif r.skipped:
            # A skip raised in setUpModule (test_versions: no server for
            # that version) skips the whole module: no test ran, one skip.
            for test, why in r.skipped:
                print("SKIPPED %s: %s" % (test.id(), why), file=_sys.stderr)
            if r.testsRun == 0:
                print("whole module skipped, none failed: exit %d (ctest: Skipped)"
                      % SKIP_EXIT, file=_sys.stderr)
            else:
                print("%d of %d tests skipped, none failed: exit %d (ctest: Skipped)"
                      % (len(r.skipped), r.testsRun, SKIP_EXIT), file=_sys.stderr)
            status = SKIP_EXIT
        else:
            status = 0
        if want_exit:
            _sys.stdout.flush()
            _sys.exit(status)


class _TimedResult(_unittest.TextTestResult):
    """Records how long each test took, so that a slow or slowing test
    shows in the output (ctest prints it for a failed entry)."""

    times = []

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        _TimedResult.times.append((time.monotonic() - self._t0, test.id()))

    @classmethod
    def report(cls):
        slow = sorted((t for t in cls.times if t[0] >= 2), reverse=True)
        if slow:
            print("slowest tests: " + ", ".join("%s %.1f s" % (name.split(".", 1)[-1], t)
                                                for t, name in slow[:12]), file=_sys.stderr)


class _TimedRunner(_unittest.TextTestRunner):
    resultclass = _TimedResult


def _flatten(suite):
    for t in suite:
        if isinstance(t, _unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


main = TestProgram
_unittest.main = TestProgram


# ---- net.core.rmem_max -------------------------------------------------------

RMEM_MAX = "/proc/sys/net/core/rmem_max"
# Shared by every test process on the host whatever its TMPDIR (the raise is
# the host's); used only by root, the only one who can raise.
_RMEM_STATE = "/tmp/pgstream-tests-rmem-max"


def _read_int(path):
    with open(path) as f:
        return int(f.read().split()[0])


def _write_int(path, value):
    with open(path, "w") as f:
        f.write("%d\n" % value)


def _rmem_locked(fn):
    """Run fn(live holder pids, path of the saved original) under the
    state directory's lock, pruning holders that died without restoring."""
    import fcntl
    os.makedirs(_RMEM_STATE, exist_ok=True)
    with open(os.path.join(_RMEM_STATE, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        holders = []
        for name in os.listdir(_RMEM_STATE):
            if name.startswith("holder."):
                pid = int(name.split(".", 1)[1])
                try:
                    os.kill(pid, 0)
                    holders.append(pid)
                except ProcessLookupError:
                    os.unlink(os.path.join(_RMEM_STATE, name))
        return fn(holders, os.path.join(_RMEM_STATE, "orig"))


def raise_rmem_max(minimum, path=RMEM_MAX):
    """Make net.core.rmem_max at least `minimum` bytes for as long as this
    process needs it, if it is not already: possible as root (CI runs as
    root), not otherwise. Returns whether rmem_max is now at least
    `minimum`; a test that needs it skips (visibly, see TestProgram) when
    not.

    The setting is the whole host's (not per network namespace: a new one
    sees it read-only), and the plain and ASan variants of a module may run
    at once, so a raise is shared: the first process to raise records the
    original value, every process that relies on a raise registers its pid,
    and restore_rmem_max() (at exit at the latest) puts the original back
    once no live process relies on it. A holder killed before restoring is
    pruned by the next process that takes the lock. `path` is for trying
    the bookkeeping on a scratch file."""
    try:
        current = _read_int(path)
    except OSError:
        return False
    if os.geteuid() != 0:
        return current >= minimum

    def act(holders, orig):
        current = _read_int(path)
        if current < minimum:
            created = not os.path.exists(orig)
            if created:
                _write_int(orig, current)
            try:
                _write_int(path, minimum)
            except OSError:  # read-only /proc/sys (a container)
                if created:
                    os.unlink(orig)
                return False
        if os.path.exists(orig):
            open(os.path.join(_RMEM_STATE, "holder.%d" % os.getpid()), "w").close()
            import atexit
            atexit.register(restore_rmem_max, path)
        return _read_int(path) >= minimum
    return _rmem_locked(act)


def restore_rmem_max(path=RMEM_MAX):
    """Undo this process's raise_rmem_max(): the original value comes back
    once no other live process relies on the raise. A no-op otherwise."""
    if os.geteuid() != 0 or not os.path.isdir(_RMEM_STATE):
        return

    def act(holders, orig):
        me = os.path.join(_RMEM_STATE, "holder.%d" % os.getpid())
        if not os.path.exists(me):
            return
        os.unlink(me)
        if not [h for h in holders if h != os.getpid()] and os.path.exists(orig):
            _write_int(path, _read_int(orig))
            os.unlink(orig)
    _rmem_locked(act)


def assert_refused(test, proc, mention, status=2):
    """proc (a finished subprocess.run with text output) was refused the way
    bad configuration must be: exit status, exactly one line on stderr,
    "pgstream: " and mention in it, nothing on stdout. Returns the line."""
    lines = proc.stderr.splitlines()
    test.assertEqual(proc.returncode, status, proc.stderr)
    test.assertEqual(len(lines), 1, proc.stderr)
    test.assertTrue(lines[0].startswith("pgstream: "), lines[0])
    test.assertIn(mention, lines[0])
    test.assertEqual(proc.stdout, "")
    return lines[0]
