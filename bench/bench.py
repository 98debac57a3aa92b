#!/usr/bin/python3
"""bench.py — pgstream's benchmark (issue 5), driven by bench/run.sh.

Every contender reads the same WAL: the reference workload (bench/workload/)
runs once, after one replication slot per contender and repetition has been
created, and each contender then reads its own slot up to the same end LSN.

  L       pg_logical_slot_get_binary_changes() counted inside a backend: the
          server's decoding cost alone, no network, no client (the floor)
  a       pg_recvlogical, pgoutput proto 1, to /dev/null (the stock client)
  b       pg_recvlogical + wal2json format-version 2, to /dev/null
  c       pgstream --format json, stdout to /dev/null (over TCP to this
          host it holds its receive window under load, so that the
          server's sends coalesce: the read hold, on by default)
  d       pgstream --format json --output FILE (fsync before each ack)
  e       pgstream --format json --streaming (protocol v2: large transactions
          arrive while in progress and are spooled until commit), to /dev/null
  f       pgstream --format json --read-delay-us=0: reads the moment data
          arrives, as pg_recvlogical does (c pauses 300 us between reads)
  h       pgstream --format json --read-hold=false: c without the hold
          (still pausing 300 us between reads)
  g       pg_recvlogical, pgoutput proto 1 with binary=true (values in the
          types' binary send format): what binary transfer saves the server
  a-unix, c-unix   a and c over the Unix socket instead of TCP loopback
  k       pgstream --sink kafka (its defaults: acks=all, idempotence) to
          librdkafka's mock cluster (tests/tools/kafka_mock.c, 3 brokers) in
          a process of its own on this machine; pgstream exits only once the
          delivery reports have come, and kcat then reads every message back
          and counts the changes (it must see all of them)
  k2      k with --kafka-exactly-once: a Kafka transaction committed every
          100 ms with its checkpoint record; read back read_committed
  w       pgstream --sink webhook (its defaults: batches of 1000 events or
          1 MiB, one request at a time) to tests/integration/webhook_server.py
          --count (Python's http.server, in a process of its own), which
          counts the changes in every body it answers 200
  r       pgstream --sink redis to a redis-server of its own (appendonly
          yes, appendfsync everysec: Redis's default with AOF); XLEN of the
          stream must be every change
  j       pgstream --sink nats to a nats-server -js of its own (an R1 file
          stream); the stream's message count must be every change

For each run: wall time, the client's CPU (user+sys) and peak RSS from
/usr/bin/time (not wait4() from here: Linux carries ru_maxrss over from
before execve(), so a child of this Python process would report Python's
size), and the walsender's CPU from /proc/<pid>/stat, sampled while the
client runs because the walsender exits when the client disconnects.
Medians over the repetitions go to a table on stdout and, with every raw
figure, to bench/results/<timestamp>.json.

Then: commit-to-emit latency of pgstream at a fixed rate of single-row
transactions (pgbench --rate), the peak
RSS of pgstream for one 1-million-row transaction (and for a 1,000-row one,
for comparison), and with --profile a callgrind and a perf profile of
pgstream on the workload.

--smoke: small N, one repetition, a short latency run, and a hard check that
every contender saw exactly the changes the workload made (exit 1 if not).
Timings are printed but never checked.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PGCLUSTER = os.path.join(ROOT, "scripts", "pgcluster.sh")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# name -> (plugin, description).  Order is the order of the table and of
# each repetition (interleaved, so slow drift of the machine hits all alike).
CONTENDERS = {
    "L": ("pgoutput", "floor: get_binary_changes in a backend"),
    "a": ("pgoutput", "pg_recvlogical pgoutput v1 > /dev/null"),
    "a-unix": ("pgoutput", "  same over the Unix socket"),
    "b": ("wal2json", "pg_recvlogical wal2json v2 > /dev/null"),
    "c": ("pgoutput", "pgstream --format json > /dev/null"),
    "c-unix": ("pgoutput", "  same over the Unix socket"),
    "d": ("pgoutput", "pgstream --output FILE (fsync acks)"),
    "o": ("pgoutput", "pgstream --output FILE --rotate-bytes 64M"),
    "oz": ("pgoutput", "  same, --rotate-compress zstd"),
    "og": ("pgoutput", "  same, --rotate-compress gzip"),
    "e": ("pgoutput", "pgstream --streaming (proto v2) > /dev/null"),
    "f": ("pgoutput", "pgstream --read-delay-us=0 > /dev/null"),
    "g": ("pgoutput", "pg_recvlogical pgoutput binary > /dev/null"),
    "h": ("pgoutput", "pgstream --read-hold=false > /dev/null"),
    "k": ("pgoutput", "pgstream --sink kafka (mock, read back)"),
    "m": ("pgoutput", "pgstream --format debezium > /dev/null"),
    "s": ("pgoutput", "  same, --debezium-schemas"),
    "n": ("pgoutput", "pgstream, 1 column excluded, 1 masked > /dev/null"),
    "t": ("pgoutput", "pgstream --tx-events > /dev/null"),
    "p": ("pgoutput", "c with --metrics-addr, scraped every 1 s"),
    "q": ("pgoutput", "c with --metrics-addr, not scraped"),
    "k2": ("pgoutput", "  same, --kafka-exactly-once"),
    "w": ("pgoutput", "pgstream --sink webhook (receiver counts)"),
    "r": ("pgoutput", "pgstream --sink redis (XLEN read back)"),
    "j": ("pgoutput", "pgstream --sink nats (stream counted)"),
}

# The arguments each pgstream contender adds to the common ones.
PGSTREAM_ARGS = {"c": (), "e": ("--streaming",), "f": ("--read-delay-us=0",),
                 "h": ("--read-hold=false",), "m": ("--format", "debezium"),
                 "s": ("--format", "debezium", "--debezium-schemas"),
                 "n": ("--exclude-columns", "public.bench_orders.meta", "--mask-columns",
                       "public.bench_orders.email", "--mask-secret", "bench"),
                 "t": ("--tx-events",)}


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def pgbin(tool):
    """Tools of the highest installed PostgreSQL, as scripts/pgcluster.sh uses."""
    dirs = sorted((d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int)
    path = os.path.join("/usr/lib/postgresql", dirs[-1], "bin", tool)
    return path if os.path.exists(path) else shutil.which(tool)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_busy():
    """(busy, softirq) CPU seconds of the whole machine so far (/proc/stat).

    Growth of busy during a run minus the client's and the server process's
    CPU is what everything else took meanwhile: other load on a shared
    machine shows up in the results instead of silently skewing them.
    softirq (included in busy) is reported too, for information: on loopback
    it is the packets' receive path, mostly run inside our processes' send()
    and so already counted in their system time."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: all but idle and iowait
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK, v[6] / CLK_TCK


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def proc_cpu(pid):
    """(utime, stime) in seconds of a local process, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


# --------------------------------------------------------------------------
# The server


class Server:
    """A scratch cluster from scripts/pgcluster.sh, or DATABASE_URL."""

    def __init__(self, url=None):
        self.dir = None
        if url:
            self.tcp = url
            self.unix = None  # a remote server has no socket of ours
            return
        self.dir = tempfile.mkdtemp(prefix="pgstream-bench-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        conf = [
            "max_wal_senders = 40",
            "max_replication_slots = 80",
            "max_connections = 100",
            "shared_buffers = 256MB",
            "wal_sender_timeout = 0",  # a client slowed by valgrind is not dead
            "checkpoint_timeout = 30min",
            "autovacuum = off",  # no background WAL between runs
        ]
        # Recent PG 15 packages are said to load only listed output plugins;
        # add the setting only where this server knows it (15.18 does not).
        if self.knows_setting("output_plugin_libraries"):
            conf.append("output_plugin_libraries = 'pgoutput, wal2json'")
            self.plugin_setting = True
        else:
            self.plugin_setting = False
        subprocess.run(["bash", PGCLUSTER, "start", self.dir, str(self.port), *conf], check=True)
        self.tcp = "host=127.0.0.1 port=%d user=postgres dbname=postgres" % self.port
        self.unix = "host=%s port=%d user=postgres dbname=postgres" % (self.dir, self.port)

    @staticmethod
    def knows_setting(name):
        argv = [pgbin("postgres"), "--describe-config"]
        if os.getuid() == 0:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        out = subprocess.run(argv, capture_output=True, text=True, cwd="/").stdout
        return any(line.split("\t", 1)[0] == name for line in out.splitlines())

    def close(self):
        if self.dir:
            subprocess.run(["bash", PGCLUSTER, "stop", self.dir, "immediate"], check=False)
            shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self):
        conn = psycopg2.connect(self.tcp)
        conn.autocommit = True
        return conn

    def sql(self, query, args=None):
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(query, args)
            rows = cur.fetchall() if cur.description else []
        conn.close()
        return rows

    def value(self, query, args=None):
        return self.sql(query, args)[0][0]

    def psql(self, *args):
        env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
        subprocess.run([pgbin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.tcp, *args],
                       check=True, stdout=subprocess.DEVNULL, env=env)

    def create_slot(self, slot, plugin):
        self.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                 " WHERE slot_name = %s", (slot,))
        self.sql("SELECT pg_create_logical_replication_slot(%s, %s)", (slot, plugin))

    def drop_slot(self, slot):
        self.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                 " WHERE slot_name = %s", (slot,))


class WalsenderMonitor(threading.Thread):
    """Samples the CPU time of the walsender serving `slot` until stopped.

    The walsender exits when its client disconnects, so its /proc entry is
    read every few ms and the last value kept; what is lost is at most one
    interval at the very end (< 1% of any run here)."""

    def __init__(self, server, slot, interval=0.005):
        super().__init__(daemon=True)
        self.server, self.slot, self.interval = server, slot, interval
        self.pid = None
        self.last = None
        self.done = threading.Event()
        self.conn = server.connect()  # opened before the client starts

    def run(self):
        with self.conn.cursor() as cur:
            while not self.done.is_set() and self.pid is None:
                cur.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                            (self.slot,))
                row = cur.fetchone()
                if row and row[0]:
                    self.pid = row[0]
                else:
                    time.sleep(0.002)
        self.conn.close()
        while self.pid is not None:
            cpu = proc_cpu(self.pid)
            if cpu is None:
                break  # gone: the last sample stands
            self.last = cpu
            if self.done.wait(self.interval):
                cpu = proc_cpu(self.pid)  # one more after the client exited
                if cpu is not None:
                    self.last = cpu
                break

    def stop(self):
        self.done.set()
        self.join()
        return self.last  # None when the walsender was not local


# --------------------------------------------------------------------------
# Counting what a contender saw (smoke checks)


def count_pgoutput(path):
    """Count I/U/D messages in pg_recvlogical -f output of pgoutput v1.

    pg_recvlogical writes each message's bytes followed by '\\n'; binary
    data may hold '\\n' too, so the messages are walked by their layout
    (PostgreSQL's protocol-logicalrep-message-formats)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, n = 0, 0

    def cstr(p):
        return data.index(b"\0", p) + 1

    def u16(p):
        return int.from_bytes(data[p:p + 2], "big")

    def u32(p):
        return int.from_bytes(data[p:p + 4], "big")

    def tuple_end(p):
        natts, p = u16(p), p + 2
        for _ in range(natts):
            kind, p = data[p:p + 1], p + 1
            if kind in (b"t", b"b"):
                p += 4 + u32(p)
        return p

    while pos < len(data):
        t, p = data[pos:pos + 1], pos + 1
        if t == b"B":
            p += 20
        elif t == b"C":
            p += 25
        elif t == b"O":
            p = cstr(p + 8)
        elif t == b"R":
            p = cstr(cstr(p + 4)) + 1
            natts, p = u16(p), p + 2
            for _ in range(natts):
                p = cstr(p + 1) + 8
        elif t == b"Y":
            p = cstr(cstr(p + 4))
        elif t == b"I":
            p, n = tuple_end(p + 5), n + 1
        elif t == b"U":
            p += 4
            if data[p:p + 1] in (b"K", b"O"):
                p = tuple_end(p + 1)
            p, n = tuple_end(p + 1), n + 1
        elif t == b"D":
            p, n = tuple_end(p + 5), n + 1
        elif t == b"T":
            p += 5 + 4 * u32(p)
        elif t == b"M":
            p = cstr(p + 9)
            p += 4 + u32(p)
        else:
            raise ValueError("unknown pgoutput message %r at %d" % (t, pos))
        if data[p:p + 1] != b"\n":
            raise ValueError("pgoutput message at %d not followed by newline" % pos)
        pos = p + 1
    return n


def count_lines(path, needles):
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if any(s in line for s in needles):
                n += 1
    return n


WAL2JSON_CHANGES = (b'"action":"I"', b'"action":"U"', b'"action":"D"')
PGSTREAM_CHANGES = (b'"op":"insert"', b'"op":"update"', b'"op":"delete"')
DEBEZIUM_CHANGES = (b'"op":"c"', b'"op":"u"', b'"op":"d"')
TX_BOUNDARIES = (b'"op":"begin"', b'"op":"commit"')
# The rotating-file contenders' --rotate-compress.
ROTATE_COMPRESS = {"o": "none", "oz": "zstd", "og": "gzip"}


# --------------------------------------------------------------------------
# The webhook and Redis contenders' servers


def pid_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return None


class WebhookReceiver:
    """tests/integration/webhook_server.py --count in a process of its own
    (echo: also printing every body it answers, for the latency run)."""

    def __init__(self, echo=False):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "integration", "webhook_server.py"),
             "--count", "--port", str(self.port)] + (["--echo"] if echo else []),
            stdout=subprocess.PIPE)
        self.url = self.proc.stdout.readline().decode().split()[-1]
        if not self.url.startswith("http://"):
            die("webhook_server.py printed no URL")

    def cpu(self):
        return pid_cpu(self.proc.pid)

    def count(self):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/" % self.port, timeout=30) as f:
            return json.load(f)["changes"]

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class RedisServer:
    def __init__(self, tmp):
        self.port = free_port()
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--save", "", "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "log")])
        self.url = "redis://127.0.0.1:%d" % self.port
        for _ in range(300):
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        die("redis-server did not start")

    def cli(self, *args):
        p = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True)
        return p.stdout.strip()

    def cpu(self):
        return pid_cpu(self.proc.pid)

    def xlen(self, stream):
        return int(self.cli("XLEN", stream) or 0)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class NatsServer:
    """nats-server -js of the j contender, and tests/tools/nats_tool.c to
    count what a stream holds (NATS_TOOL, or compiled here as KafkaMock
    compiles its tool)."""

    def __init__(self, tmp):
        self.port = free_port()
        self.dir = os.path.join(tmp, "nats")
        os.makedirs(self.dir, exist_ok=True)
        self.tool = os.environ.get("NATS_TOOL")
        if not self.tool or not os.access(self.tool, os.X_OK):
            self.tool = os.path.join(tmp, "nats_tool")
            flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libnats"],
                                   capture_output=True, text=True, check=True).stdout.split()
            subprocess.run(["cc", "-O2", "-o", self.tool,
                            os.path.join(ROOT, "tests", "tools", "nats_tool.c"), *flags],
                           check=True)
        self.proc = subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.dir,
             "-l", os.path.join(self.dir, "log")])
        self.url = "nats://127.0.0.1:%d" % self.port
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        die("nats-server did not start")

    def cpu(self):
        return pid_cpu(self.proc.pid)

    def count(self, stream):
        p = subprocess.run([self.tool, self.url, "info", stream], capture_output=True,
                           text=True)
        return json.loads(p.stdout)["messages"] if p.returncode == 0 else 0

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


# The redis latency run's consumer: XREAD BLOCK from the stream's end,
# each entry's event field on a line of its own as Redis hands it out.
def file_confirmations(path, acks, state):
    """Commit-to-confirmation of each event in path: the time of the first
    acknowledgement (LSN, time) past its commit_lsn minus its commit_time.
    Events no acknowledgement covered are left out (state["unconfirmed"])."""
    import bisect
    lsns, out = [a for a, _ in acks], []
    state["unconfirmed"] = 0
    pat = re.compile(rb'"commit_lsn":"([0-9A-F]+)/([0-9A-F]+)".*?"commit_time":"([^"]+)"')
    with open(path, "rb") as f:
        for line in f:
            m = pat.search(line)
            if not m:
                continue
            state["lines"] += 1
            k = bisect.bisect_right(lsns, int(m.group(1), 16) << 32 | int(m.group(2), 16))
            if k == len(acks):
                state["unconfirmed"] += 1
                continue
            ct = datetime.datetime.fromisoformat(m.group(3).decode().replace("Z", "+00:00"))
            out.append(acks[k][1] - ct.timestamp())
    return out


SINK_CONFIRMATION = {"webhook": "the receiver answering 200",
                     "nats": "the stream delivering it to a consumer, once stored",
                     "redis": "XREAD handing it out, once added",
                     "kafka": "a consumer (kcat) reading it from the mock cluster, once"
                              " appended",
                     "file": "its fsync, just before the status update that acknowledges it"}

REDIS_FOLLOW = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
def call(*a):
    s.sendall(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in
              (y.encode() if isinstance(y, str) else y for y in a)))
    return read()
def read():
    line = f.readline()[:-2]
    t, rest = line[:1], line[1:]
    if t in (b"+", b"-"):
        return rest
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    n = int(rest)
    return None if n < 0 else [read() for _ in range(n)]
last = "$"
print("following", flush=True)
while True:
    r = call("XREAD", "BLOCK", "0", "COUNT", "1000", "STREAMS", sys.argv[2], last)
    for _, entries in r or []:
        for eid, fields in entries:
            d = dict(zip(fields[::2], fields[1::2]))
            sys.stdout.buffer.write(d[b"event"] + b"\n")
            last = eid.decode()
    sys.stdout.flush()
"""


# --------------------------------------------------------------------------
# The Kafka contender's brokers


class KafkaMock:
    """librdkafka's mock cluster (tests/tools/kafka_mock.c) in a process of
    its own, fed commands on its stdin. KAFKA_MOCK names a built binary (the
    test suite's); otherwise it is compiled here from the source, since the
    benchmark's Release build leaves the tests out."""

    def __init__(self, tmp):
        path = os.environ.get("KAFKA_MOCK")
        if not path or not os.access(path, os.X_OK):
            path = os.path.join(tmp, "kafka_mock")
            flags = subprocess.run(["pkg-config", "--cflags", "--libs", "rdkafka"],
                                   capture_output=True, text=True, check=True).stdout.split()
            subprocess.run(["cc", "-O2", "-o", path,
                            os.path.join(ROOT, "tests", "tools", "kafka_mock.c"), *flags],
                           check=True)
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.bootstrap = self.proc.stdout.readline().strip()
        if not self.bootstrap:
            die("kafka_mock printed no bootstrap servers")

    def create(self, topic, partitions):
        self.proc.stdin.write("create %s %d\n" % (topic, partitions))
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if reply != "ok":
            die("kafka_mock: create %s: %s" % (topic, reply))

    def cpu(self):
        c = proc_cpu(self.proc.pid)
        return sum(c) if c else None

    def count(self, topic):
        """(changes, tombstones) in topic: every message read back by kcat."""
        p = subprocess.Popen(["kcat", "-C", "-e", "-q", "-o", "beginning", "-b", self.bootstrap,
                              "-t", topic, "-f", "%S\n"], stdout=subprocess.PIPE)
        changes = tombstones = 0
        for line in p.stdout:
            if line == b"-1\n":
                tombstones += 1
            else:
                changes += 1
        if p.wait() != 0:
            die("kcat could not read %s back" % topic)
        return changes, tombstones

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# The mock keeps only the last 5 MB of each partition (rdkafka_mock.c), so
# the topic gets enough partitions to hold the whole run for the read-back
# (values of this workload are about 250 bytes; a margin of two).
def kafka_partitions(changes):
    return max(16, changes * 2 * 300 // (5 << 20) + 1)


# --------------------------------------------------------------------------
# Running one contender


class Bench:
    def __init__(self, args, server):
        self.args, self.server = args, server
        self.tmp = tempfile.mkdtemp(prefix="pgstream-bench-out-")  # on disk, not tmpfs
        self.pub = "bench_pub"
        self.end = None
        self.changes = None
        self.kafka = None  # started for the first k run
        self.hook = None   # the w receiver, started for the first w run
        self.redis = None  # the r server, started for the first r run
        self.nats = None  # the j server, started for the first j run

    def timed(self, argv, slot, stdout_path=None, env=None):
        """Run argv under /usr/bin/time while sampling the walsender of slot."""
        timefile = os.path.join(self.tmp, "time.out")
        errfile = os.path.join(self.tmp, "stderr.out")
        mon = WalsenderMonitor(self.server, slot)
        mon.start()
        out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        with open(errfile, "wb") as err:
            (busy0, si0), t0 = machine_busy(), time.perf_counter()
            rc = subprocess.call(["/usr/bin/time", "-o", timefile, "-f", "%U %S %M", "--", *argv],
                                 stdout=out, stderr=err, env=env)
            wall, (busy, si) = time.perf_counter() - t0, machine_busy()
            busy, si = busy - busy0, si - si0
        if stdout_path:
            out.close()
        ws = mon.stop()
        stderr = open(errfile, errors="replace").read()
        if rc != 0:
            die("%s exited %d:\n%s" % (argv[0], rc, stderr[-2000:]))
        with open(timefile) as f:
            user, sys_, rss = f.read().split()[-3:]
        cpu = float(user) + float(sys_)
        return {
            "wall_s": wall,
            "other_cpu_s": busy - cpu - (sum(ws) if ws else 0),
            "softirq_s": si,
            "client_cpu_s": cpu,
            "client_user_s": float(user),
            "client_sys_s": float(sys_),
            "client_rss_kb": int(rss),
            "ws_user_s": ws[0] if ws else None,
            "ws_sys_s": ws[1] if ws else None,
            "ws_cpu_s": sum(ws) if ws else None,
            "stderr": stderr,
        }

    def recvlogical(self, conninfo, slot, plugin, outfile, binary=False):
        opts = (["-o", "proto_version=1", "-o", "publication_names=" + self.pub]
                if plugin == "pgoutput" else ["-o", "format-version=2", "-o", "include-lsn=1"])
        if binary:
            opts += ["-o", "binary=true"]
        return [pgbin("pg_recvlogical"), "-d", conninfo, "-S", slot, "--start",
                "--endpos=" + self.end, "--no-loop", "-f", outfile, *opts]

    def pgstream(self, conninfo, slot, *extra):
        return [self.args.bin, "--database-url", conninfo, "--slot", slot,
                "--publication", self.pub, "--format", "json", "--end-lsn", self.end,
                "--log-level", "debug", *extra]

    def warmup(self, slot):
        """Read slot to the current WAL end inside a backend; set self.end.

        Every contender then stops at exactly the last commit: pgstream at
        the Commit whose end LSN reaches --end-lsn, pg_recvlogical at the
        message whose LSN equals --endpos. (An end taken from
        pg_current_wal_insert_lsn() after pg_switch_wal(), as anchors.sh
        does, can lie past the last record the walsender reads: the client
        then waits for unrelated WAL, up to 15 s, before it stops.)"""
        t0 = time.perf_counter()
        self.end = self.server.value(
            "SELECT max(lsn)::text FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL,"
            " 'proto_version', '1', 'publication_names', %s)"
            " WHERE get_byte(data, 0) = 67", (slot, self.pub))  # 'C'
        wall = time.perf_counter() - t0
        self.server.drop_slot(slot)
        if self.end is None:
            die("no commit decoded from slot %s" % slot)
        return {"wall_s": wall}

    def run_floor(self, slot):
        """(L): the backend's own CPU is the server cost; there is no client."""
        count_changes = self.args.smoke
        conn = self.server.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
            before = proc_cpu(pid)
            what = ("count(*) FILTER (WHERE get_byte(data, 0) IN (73, 85, 68))"  # I U D
                    if count_changes else "count(*)")
            (busy0, si0), t0 = machine_busy(), time.perf_counter()
            cur.execute("SELECT %s FROM pg_logical_slot_get_binary_changes(%%s, %%s, NULL,"
                        " 'proto_version', '1', 'publication_names', %%s)" % what,
                        (slot, self.end, self.pub))
            n = cur.fetchone()[0]
            wall, (busy, si) = time.perf_counter() - t0, machine_busy()
            busy, si = busy - busy0, si - si0
            after = proc_cpu(pid)
        conn.close()
        r = {"wall_s": wall, "client_cpu_s": None, "client_rss_kb": None,
             ("seen" if count_changes else "messages"): n}
        if before and after:
            r["ws_user_s"] = after[0] - before[0]
            r["ws_sys_s"] = after[1] - before[1]
            r["ws_cpu_s"] = r["ws_user_s"] + r["ws_sys_s"]
            r["other_cpu_s"] = busy - r["ws_cpu_s"]
            r["softirq_s"] = si
        return r

    def run(self, name, slot):
        if name == "L":
            return self.run_floor(slot)
        smoke = self.args.smoke
        unix = name.endswith("-unix")
        conninfo = self.server.unix if unix else self.server.tcp
        out = os.path.join(self.tmp, "out.%s" % name)
        base = name.split("-")[0]
        if base in ("a", "b", "g"):
            plugin = CONTENDERS[name][0]
            r = self.timed(self.recvlogical(conninfo, slot, plugin, out if smoke else "/dev/null",
                                            binary=base == "g"), slot)
            if smoke:
                r["seen"] = (count_pgoutput(out) if plugin == "pgoutput"
                             else count_lines(out, WAL2JSON_CHANGES))
        elif base in PGSTREAM_ARGS:
            r = self.timed(self.pgstream(conninfo, slot, *PGSTREAM_ARGS[base]), slot,
                           stdout_path=out if smoke else None)
            if smoke:
                r["seen"] = count_lines(out, DEBEZIUM_CHANGES if base in ("m", "s") else PGSTREAM_CHANGES)
        elif base in ("k", "k2"):
            r = self.run_kafka(slot, exactly_once=base == "k2")
        elif base in ("p", "q"):
            r = self.run_scraped(conninfo, slot, out if smoke else None, scrape=base == "p")
            if smoke:
                r["seen"] = count_lines(out, PGSTREAM_CHANGES)
        elif base == "w":
            r = self.run_webhook(slot)
        elif base == "r":
            r = self.run_redis(slot)
        elif base == "j":
            r = self.run_nats(slot)
        elif base in ROTATE_COMPRESS:
            r = self.run_rotate(slot, ROTATE_COMPRESS[base])
        else:  # d: to a file on disk, fsync before every acknowledgement
            r = self.timed(self.pgstream(conninfo, slot, "--output", out), slot)
            r["seen"] = count_lines(out, PGSTREAM_CHANGES)
        m = re.search(r"exiting after (\d+) events, peak RSS (-?\d+) kB", r.get("stderr", ""))
        if m:
            r["pgstream_events"], r["pgstream_vmhwm_kb"] = int(m.group(1)), int(m.group(2))
            if name == "t" and smoke:  # its begin and commit events are events too
                r["pgstream_events"] -= count_lines(out, TX_BOUNDARIES)
        m = re.search(r"connection received (\d+) bytes in (\d+) TCP segments", r.get("stderr", ""))
        if m:  # how the walsender's sends arrived: coalesced (kB) or one message each
            r["tcp_segment_bytes"] = int(m.group(1)) / int(m.group(2))
        r.pop("stderr", None)
        if os.path.exists(out):
            os.unlink(out)
        return r

    def run_rotate(self, slot, compress):
        """(o, oz, og): a series of files of --rotate-bytes each (64 MB; 256 kB
        under --smoke, so that it rotates too), fsynced before every
        acknowledgement, each closed file compressed by pgstream's background
        thread; a clean stop compresses the closed files before it exits, so
        the wall time and CPU include all of it but the last file's. Then
        every file is read back (decompressed with zstd -dc or gzip) and its
        changes counted."""
        d = tempfile.mkdtemp(prefix="rot.", dir=self.tmp)
        size = (256 << 10) if self.args.smoke else (64 << 20)
        try:
            r = self.timed(self.pgstream(self.server.tcp, slot, "--output",
                                         os.path.join(d, "changes.jsonl"), "--rotate-bytes",
                                         str(size), "--rotate-compress", compress), slot)
            names = sorted(os.listdir(d))
            r["files"] = len(names)
            r["files_compressed"] = sum(1 for f in names if f.endswith((".gz", ".zst")))
            r["disk_bytes"] = sum(os.path.getsize(os.path.join(d, f)) for f in names)
            r["seen"] = 0
            for f in names:
                path = os.path.join(d, f)
                cat = (["zstd", "-dcq", path] if f.endswith(".zst") else
                       ["gzip", "-dc", path] if f.endswith(".gz") else ["cat", path])
                with subprocess.Popen(cat, stdout=subprocess.PIPE) as pr:
                    r["seen"] += sum(1 for line in pr.stdout
                                     if any(x in line for x in PGSTREAM_CHANGES))
                if pr.returncode != 0:
                    die("%s could not read %s back" % (cat[0], path))
        finally:
            shutil.rmtree(d, ignore_errors=True)
        if r["seen"] != self.changes:
            log("o: the files hold %d changes, want %d" % (r["seen"], self.changes))
        return r

    def run_scraped(self, conninfo, slot, stdout_path, scrape=True):
        """(p, q): c with --metrics-addr; for p its /metrics and /healthz fetched every
        second from a thread of the driver while it runs (the HTTP side must
        not slow the stream: compare with c)."""
        import socket
        import threading
        import urllib.request
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            port = sk.getsockname()[1]
        done, scrapes = threading.Event(), []

        def scraper():
            while not done.wait(1.0):
                for path in ("/metrics", "/healthz"):
                    try:
                        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                                    timeout=2) as resp:
                            scrapes.append((path, resp.status, len(resp.read())))
                    except OSError as e:  # before it listens; 503 is an HTTPError too
                        scrapes.append((path, getattr(e, "code", None), 0))
        t = threading.Thread(target=scraper if scrape else done.wait)
        t.start()
        try:
            r = self.timed(self.pgstream(conninfo, slot, "--metrics-addr", "127.0.0.1:%d" % port),
                           slot, stdout_path=stdout_path)
        finally:
            done.set()
            t.join()
        r["scrapes"] = sum(1 for p, st, n in scrapes if p == "/metrics" and st == 200 and n)
        return r

    def run_kafka(self, slot, exactly_once=False):
        """(k): to the mock brokers, then everything read back and counted.

        pgstream's wall time ends only after librdkafka's flush at exit
        (the delivery reports of everything produced), so changes/s are
        changes delivered; the broker's own CPU is measured apart. (k2):
        with --kafka-exactly-once, where the exit waits for the last commit:
        changes/s are changes committed."""
        if self.kafka is None:
            self.kafka = KafkaMock(self.tmp)
        topic = slot + ".public.bench_orders"  # the prefix defaults to the slot
        self.kafka.create(topic, kafka_partitions(self.changes))
        extra = ()
        if exactly_once:
            self.kafka.create(slot + ".pgstream.offsets", 1)  # the mock cannot on request
            extra = ("--kafka-exactly-once",)
        b0 = self.kafka.cpu()
        r = self.timed(self.pgstream(self.server.tcp, slot, "--sink", "kafka",
                                     "--kafka-brokers", self.kafka.bootstrap, *extra), slot)
        b1 = self.kafka.cpu()
        r["broker_cpu_s"] = b1 - b0 if b0 is not None and b1 is not None else None
        if r["broker_cpu_s"] is not None:
            r["other_cpu_s"] -= r["broker_cpu_s"]
        t0 = time.perf_counter()
        r["seen"], r["tombstones"] = self.kafka.count(topic)
        r["readback_s"] = time.perf_counter() - t0
        r["tombstones_want"] = self.args.n // 4  # one per DELETE (the workload deletes N/4)
        if r["seen"] != self.changes or r["tombstones"] != r["tombstones_want"]:
            log("k: read back %d changes and %d tombstones, want %d and %d" % (
                r["seen"], r["tombstones"], self.changes, r["tombstones_want"]))
        return r

    def run_apart(self, slot, server, *args):
        """pgstream timed with a server of its own (w, r), whose CPU is
        measured apart."""
        b0 = server.cpu()
        r = self.timed(self.pgstream(self.server.tcp, slot, *args), slot)
        b1 = server.cpu()
        r["broker_cpu_s"] = b1 - b0 if b0 is not None and b1 is not None else None
        if r["broker_cpu_s"] is not None:
            r["other_cpu_s"] -= r["broker_cpu_s"]
        return r

    def run_webhook(self, slot):
        """(w): pgstream exits at --end-lsn only once every batch had its
        2xx (the shutdown drain), so changes/s are changes delivered."""
        if self.hook is None:
            self.hook = WebhookReceiver()
        before = self.hook.count()
        r = self.run_apart(slot, self.hook, "--sink", "webhook", "--webhook-url", self.hook.url)
        r["seen"] = self.hook.count() - before
        if r["seen"] != self.changes:
            log("w: the receiver counted %d changes, want %d" % (r["seen"], self.changes))
        return r

    def run_redis(self, slot):
        """(r): every change then counted back with XLEN."""
        if self.redis is None:
            self.redis = RedisServer(self.tmp)
        r = self.run_apart(slot, self.redis, "--sink", "redis", "--redis-url", self.redis.url)
        r["seen"] = self.redis.xlen(slot + ":public.bench_orders")  # prefix: the slot
        if r["seen"] != self.changes:
            log("r: XLEN %d, want %d" % (r["seen"], self.changes))
        return r

    def run_nats(self, slot):
        """(j): every change then counted in the stream (named after the
        slot: the prefix defaults to it)."""
        if self.nats is None:
            self.nats = NatsServer(self.tmp)
        r = self.run_apart(slot, self.nats, "--sink", "nats", "--nats-url", self.nats.url)
        r["seen"] = self.nats.count(slot)
        if r["seen"] != self.changes:
            log("j: the stream holds %d changes, want %d" % (r["seen"], self.changes))
        return r

    # ----------------------------------------------------------------------

    def throughput(self):
        a, s = self.args, self.server
        names = [n for n in CONTENDERS if (s.unix or not n.endswith("-unix")) and
                 (not a.only or n in a.only.split(","))]
        wl = a.workload
        s.psql("-f", os.path.join(wl, "schema.sql"))
        s.sql("DROP PUBLICATION IF EXISTS bench_pub")
        s.sql("CREATE PUBLICATION bench_pub FOR TABLE bench_orders")
        slots = {("warm", 0): "bench_warm"}
        for rep in range(a.reps):
            for n in names:
                slots[(n, rep)] = "bench_%s_%d" % (n.lower().replace("-", "_"), rep)
        if a.profile:
            slots[("callgrind", 0)] = "bench_prof_cg"
            slots[("perf", 0)] = "bench_prof_perf"
        for (n, _), slot in slots.items():
            s.create_slot(slot, CONTENDERS.get(n, ("pgoutput",))[0])
        log("%d slots created; running the workload, N=%d" % (len(slots), a.n))
        t0 = time.perf_counter()
        s.psql("-v", "n=%d" % a.n, "-f", os.path.join(wl, "workload.sql"))
        workload_s = time.perf_counter() - t0
        n = a.n
        self.changes = n + n // 2 + n // 4 + n // 4

        # The first reader of fresh WAL is much slower: the warm-up slot is
        # read first and not timed. It also yields the end LSN: the end of
        # the workload's last commit record (the lsn of a Commit message).
        warm = self.warmup("bench_warm")
        log("workload took %.1f s: %d changes, end LSN %s; warm-up read %.2f s" % (
            workload_s, self.changes, self.end, warm["wall_s"]))
        # The workload leaves hundreds of MB of WAL and table pages dirty:
        # written back while the first contenders run, they slowed those
        # that write to disk by up to a second. Out of the way first.
        t0 = time.perf_counter()
        s.sql("CHECKPOINT")
        os.sync()
        log("checkpoint and sync: %.1f s" % (time.perf_counter() - t0))

        runs = []
        for rep in range(a.reps):
            for name in names:
                slot = slots[(name, rep)]
                r = self.run(name, slot)
                r.update(contender=name, rep=rep, slot=slot)
                runs.append(r)
                s.drop_slot(slot)
                log("rep %d %-7s %7.2f s %9.0f changes/s  client %s s  server %s s"
                    "  other %s s  TCP segment %s B%s" % (
                        rep, name, r["wall_s"], self.changes / r["wall_s"],
                        fmt(r.get("client_cpu_s")), fmt(r.get("ws_cpu_s")),
                        fmt(r.get("other_cpu_s")), fmt(r.get("tcp_segment_bytes"), 0),
                        "  scrapes %d" % r["scrapes"] if "scrapes" in r else ""))
        profile = self.profile(slots) if a.profile else None
        return {"workload_s": workload_s, "end_lsn": self.end, "changes": self.changes,
                "warmup": warm, "runs": runs, "names": names, "profile": profile}

    def profile(self, slots):
        """callgrind (instructions) and perf (CPU time, kernel included)."""
        res = {}
        cg_out = os.path.join(self.tmp, "callgrind.out")
        self.timed(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg_out,
                    *self.pgstream(self.server.tcp, slots[("callgrind", 0)])], slots[("callgrind", 0)])
        ann = subprocess.run(["callgrind_annotate", "--inclusive=no", cg_out],
                             capture_output=True, text=True).stdout
        res["callgrind_self"] = parse_callgrind(ann)
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", cg_out],
                             capture_output=True, text=True).stdout
        res["callgrind_inclusive"] = parse_callgrind(ann)
        pdata = os.path.join(self.tmp, "perf.data")
        self.timed(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-o", pdata, "--",
                    *self.pgstream(self.server.tcp, slots[("perf", 0)])], slots[("perf", 0)])
        rep = subprocess.run(["perf", "report", "-i", pdata, "--stdio", "--no-children",
                              "--sort", "dso,sym", "--percent-limit", "0.5"],
                             capture_output=True, text=True).stdout
        res["perf_self"] = [l.strip() for l in rep.splitlines()
                            if l.strip() and not l.startswith("#")][:30]
        for slot in (slots[("callgrind", 0)], slots[("perf", 0)]):
            self.server.drop_slot(slot)
        return res

    def latency(self, extra=(), sink=None):
        """Commit-to-emit latency of pgstream (with the extra arguments) at a
        fixed transaction rate.

        pgbench --rate runs single-row INSERT transactions; pgstream streams
        them live to a pipe read here; latency = time the line is read here
        minus the commit_time pgstream printed (the server's commit
        timestamp; same host, same clock). With a sink, commit to
        confirmation: webhook, pgstream sends them with --sink webhook to
        webhook_server.py --count --echo, which prints each body as it
        answers it 200, and that is the pipe read here; nats, a JetStream
        consumer (tests/tools/nats_tool.c follow) prints each message as the
        stream delivers it, once stored; redis, an XREAD BLOCK loop prints
        each entry as Redis hands it out, once added; kafka, pgstream with its
        Kafka defaults sends them to the mock cluster and kcat consumes the
        topic live (fetch.wait.max.ms=1): the read follows the brokers'
        append by one fetch, as pgstream's delivery report follows it by the
        Produce reply; file, pgstream writes them to --output FILE, which is
        fsynced just before each status update (--lat-status-interval
        apart) and is read afterwards: an event's confirmation is the first
        "acknowledged LSN" line of pgstream's debug log, read live here, with
        an LSN past its commit_lsn (written before the acknowledgement
        itself is sent, right after the fsync)."""
        a, s = self.args, self.server
        hook = follower = acker = None
        acks, lat_out = [], None
        if sink == "webhook":
            hook = WebhookReceiver(echo=True)
            extra = tuple(extra) + ("--sink", "webhook", "--webhook-url", hook.url)
        elif sink == "nats":
            if self.nats is None:
                self.nats = NatsServer(self.tmp)
            extra = tuple(extra) + ("--sink", "nats", "--nats-url", self.nats.url,
                                    "--topic-prefix", "lat")
        elif sink == "redis":
            if self.redis is None:
                self.redis = RedisServer(self.tmp)
            extra = tuple(extra) + ("--sink", "redis", "--redis-url", self.redis.url,
                                    "--topic-prefix", "lat")
        elif sink == "kafka":
            if self.kafka is None:
                self.kafka = KafkaMock(self.tmp)
            self.kafka.create("lat.public.bench_lat", 4)
            extra = tuple(extra) + ("--sink", "kafka", "--kafka-brokers", self.kafka.bootstrap,
                                    "--topic-prefix", "lat")
        elif sink == "file":
            lat_out = os.path.join(self.tmp, "lat.jsonl")
            if os.path.exists(lat_out):
                os.unlink(lat_out)
            extra = tuple(extra) + ("--output", lat_out, "--status-interval",
                                    str(a.lat_status_interval))
        s.sql("DROP TABLE IF EXISTS bench_lat")
        s.sql("CREATE TABLE bench_lat(id bigserial PRIMARY KEY, t timestamptz NOT NULL)")
        s.sql("DROP PUBLICATION IF EXISTS bench_lat_pub")
        s.sql("CREATE PUBLICATION bench_lat_pub FOR TABLE bench_lat")
        s.create_slot("bench_lat", "pgoutput")
        script = os.path.join(self.tmp, "lat.sql")
        with open(script, "w") as f:
            f.write("INSERT INTO bench_lat(t) VALUES (clock_timestamp());\n")
        timefile = os.path.join(self.tmp, "lat.time")
        errfile = open(os.path.join(self.tmp, "lat.stderr"), "wb")
        p = subprocess.Popen(["/usr/bin/time", "-o", timefile, "-f", "%U %S %M", "--",
                              self.args.bin, "--database-url", s.tcp, "--slot", "bench_lat",
                              "--publication", "bench_lat_pub", "--format", "json",
                              "--log-level", "debug", *extra],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE if sink == "file" else errfile)
        lat, state = [], {"lines": 0}
        if sink == "file":
            ack = re.compile(rb"acknowledged ([0-9A-F]+)/([0-9A-F]+)")

            def ack_reader():  # the debug log, kept in errfile too
                for line in p.stderr:
                    now = time.time()
                    errfile.write(line)
                    m = ack.search(line)
                    if m:
                        acks.append((int(m.group(1), 16) << 32 | int(m.group(2), 16), now))
            acker = threading.Thread(target=ack_reader, daemon=True)
            acker.start()
        stamp = re.compile(rb'"commit_time":"([^"]+)"')
        source = hook.proc if hook else p

        def reader():
            fd, rest = source.stdout.fileno(), b""
            while True:
                chunk = os.read(fd, 1 << 16)
                now = time.time()
                if not chunk:
                    return
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    m = stamp.search(line)
                    if m:
                        ct = datetime.datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00"))
                        lat.append(now - ct.timestamp())
                    state["lines"] += 1

        deadline = time.time() + 30
        while s.value("SELECT active_pid IS NOT NULL FROM pg_replication_slots"
                      " WHERE slot_name = 'bench_lat'") is not True:
            if time.time() > deadline or p.poll() is not None:
                die("pgstream did not start streaming for the latency run")
            time.sleep(0.05)
        if sink == "nats":
            follower = subprocess.Popen([self.nats.tool, self.nats.url, "follow", "lat"],
                                        stdout=subprocess.PIPE)
        elif sink == "redis":
            follower = subprocess.Popen([sys.executable, "-c", REDIS_FOLLOW,
                                         str(self.redis.port), "lat:public.bench_lat"],
                                        stdout=subprocess.PIPE)
        elif sink == "kafka":  # (from the beginning: nothing to miss)
            follower = subprocess.Popen(["kcat", "-C", "-u", "-q", "-o", "beginning", "-b",
                                         self.kafka.bootstrap, "-t", "lat.public.bench_lat",
                                         "-f", "%s\n", "-X", "fetch.wait.max.ms=1"],
                                        stdout=subprocess.PIPE)
        if follower:
            source = follower
            if sink != "kafka" and not follower.stdout.readline().startswith(b"following"):
                die("the %s follower did not start" % sink)
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        time.sleep(0.5)
        pgb = subprocess.run([pgbin("pgbench"), "-n", "-c", str(a.lat_clients), "-j", "2",
                              "-R", str(a.lat_rate), "-T", str(a.lat_seconds), "-f", script,
                              s.unix or s.tcp],  # (pgbench's -d is --debug)
                             capture_output=True, text=True)
        if pgb.returncode != 0:
            die("pgbench failed:\n" + pgb.stderr[-2000:])
        expected = s.value("SELECT count(*) FROM bench_lat")
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None:
            if sink == "file":  # every line written, then one more status update
                if count_lines(lat_out, PGSTREAM_CHANGES) >= expected:
                    time.sleep(a.lat_status_interval + 0.5)
                    break
            elif state["lines"] >= expected:
                break
            time.sleep(0.05)
        # SIGTERM to pgstream itself (GNU time would die of it, not pass it on).
        with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
            for child in f.read().split():
                os.kill(int(child), signal.SIGTERM)
        p.wait()
        if hook:
            hook.close()
        if follower:
            follower.kill()
            follower.wait()
        th.join(timeout=10)
        if acker:
            acker.join(timeout=10)
            state["lines"] = 0
            lat.extend(file_confirmations(lat_out, acks, state))
            os.unlink(lat_out)
        errfile.close()
        s.drop_slot("bench_lat")
        with open(timefile) as f:
            user, sys_, rss = f.read().split()[-3:]
        tps = re.search(r"tps = ([\d.]+)", pgb.stdout)
        lag = re.search(r"schedule lag: avg ([\d.]+) \(max ([\d.]+)\) ms", pgb.stdout)
        lat_ms = sorted(x * 1000 for x in lat)
        return {
            "rate_target": a.lat_rate, "seconds": a.lat_seconds, "clients": a.lat_clients,
            "pgbench_tps": float(tps.group(1)) if tps else None,
            "pgbench_schedule_lag_ms": [float(lag.group(1)), float(lag.group(2))] if lag else None,
            "transactions": expected, "events": len(lat_ms), "args": list(extra), "sink": sink,
            "unconfirmed": state.get("unconfirmed"),
            "p50_ms": pct(lat_ms, 50), "p90_ms": pct(lat_ms, 90), "p99_ms": pct(lat_ms, 99),
            "p999_ms": pct(lat_ms, 99.9), "max_ms": lat_ms[-1] if lat_ms else None,
            "pgstream_cpu_s": float(user) + float(sys_), "pgstream_rss_kb": int(rss),
        }

    def bigtxn(self):
        """Peak RSS of pgstream over one small and one big transaction."""
        a, s = self.args, self.server
        s.sql("DROP TABLE IF EXISTS bench_big")
        s.sql("CREATE TABLE bench_big (LIKE bench_orders INCLUDING ALL)")
        s.sql("DROP PUBLICATION IF EXISTS bench_big_pub")
        s.sql("CREATE PUBLICATION bench_big_pub FOR TABLE bench_big")
        insert = ("INSERT INTO bench_big(id, customer, email, amount, qty, active, tags, meta)"
                  " SELECT g, 'customer ' || g, 'user' || g || '@example.com',"
                  " (g %% 10000) / 7.0, g %% 100, g %% 2 = 0, ARRAY['a', 'b' || g],"
                  " jsonb_build_object('k', g, 's', 'x') FROM generate_series(%s, %s) g")
        res = {}
        for label, lo, hi in (("small", 1, 1000), ("big", 1001, 1000 + a.big_rows)):
            s.create_slot("bench_big", "pgoutput")
            s.create_slot("bench_big_warm", "pgoutput")
            s.sql(insert, (lo, hi))
            saved, self.pub = self.pub, "bench_big_pub"
            self.warmup("bench_big_warm")
            r = self.timed(self.pgstream(s.tcp, "bench_big"), "bench_big")
            self.pub = saved
            s.drop_slot("bench_big")
            m = re.search(r"exiting after (\d+) events, peak RSS (-?\d+) kB", r["stderr"])
            res[label] = {"rows": hi - lo + 1, "wall_s": r["wall_s"], "cpu_s": r["client_cpu_s"],
                          "rss_kb": r["client_rss_kb"],
                          "events": int(m.group(1)) if m else None,
                          "vmhwm_kb": int(m.group(2)) if m else None}
            log("bigtxn %s: %d rows, peak RSS %d kB" % (label, hi - lo + 1, r["client_rss_kb"]))
        return res


def pct(sorted_xs, p):
    if not sorted_xs:
        return None
    k = min(len(sorted_xs) - 1, max(0, int(round(p / 100.0 * len(sorted_xs) + 0.5)) - 1))
    return sorted_xs[k]


def parse_callgrind(text):
    """Top functions of callgrind_annotate output: [(percent, function)]."""
    total, rows = None, []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*100\.0%\)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(\S.*)$", line)
        if m and total:
            rows.append([float(m.group(2)), m.group(3).strip()])
    return {"total_instructions": total, "top": rows[:25]}


def fmt(x, digits=2):
    return "-" if x is None else "%.*f" % (digits, x)


# --------------------------------------------------------------------------
# Report


def machine(server):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    git = (os.environ.get("PGSTREAM_REV") or  # for a copy that is not a git checkout
           subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip() or "unknown")
    w2j = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "postgresql-15-wal2json"],
                         capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "postgres": server.value("SELECT version()"),
        "wal2json": w2j or None,
        "pgstream_git": git,
        "output_plugin_libraries_set": getattr(server, "plugin_setting", None),
    }


def summarize(tp):
    changes = tp["changes"]
    summary = {}
    for name in tp["names"]:
        rs = [r for r in tp["runs"] if r["contender"] == name]
        wall = median([r["wall_s"] for r in rs])
        per_m = 1e6 / changes
        summary[name] = {
            "wall_s": wall,
            "changes_per_s": changes / wall,
            "client_cpu_s_per_M": median([r["client_cpu_s"] * per_m if r.get("client_cpu_s")
                                          is not None else None for r in rs]),
            "ws_cpu_s_per_M": median([r["ws_cpu_s"] * per_m if r.get("ws_cpu_s") is not None
                                      else None for r in rs]),
            "ws_user_s_per_M": median([r["ws_user_s"] * per_m if r.get("ws_user_s") is not None
                                       else None for r in rs]),
            "ws_sys_s_per_M": median([r["ws_sys_s"] * per_m if r.get("ws_sys_s") is not None
                                      else None for r in rs]),
            "client_rss_kb": median([r.get("client_rss_kb") for r in rs]),
            "other_cpu_s": median([r.get("other_cpu_s") for r in rs]),
            "softirq_s_per_M": median([r["softirq_s"] * per_m if r.get("softirq_s") is not None
                                       else None for r in rs]),
            "tcp_segment_bytes": median([r.get("tcp_segment_bytes") for r in rs]),
            "broker_cpu_s_per_M": median([r["broker_cpu_s"] * per_m if r.get("broker_cpu_s")
                                          is not None else None for r in rs]),
            "reps": len(rs),
        }
        if any("disk_bytes" in r for r in rs):
            summary[name].update(files=median([r.get("files") for r in rs]),
                                 files_compressed=median([r.get("files_compressed") for r in rs]),
                                 disk_bytes=median([r.get("disk_bytes") for r in rs]))
    for name, m in summary.items():
        for ref in ("a", "b", "c", "k", "L"):
            if ref in summary:
                m["rate_vs_" + ref] = m["changes_per_s"] / summary[ref]["changes_per_s"]
        for ref in ("a", "b"):
            if ref in summary and m["ws_cpu_s_per_M"] and summary[ref]["ws_cpu_s_per_M"]:
                m["ws_cpu_vs_" + ref] = m["ws_cpu_s_per_M"] / summary[ref]["ws_cpu_s_per_M"]
    return summary


def print_report(res):
    mc, tp = res["machine"], res["throughput"]
    print()
    print("machine: %s, %d cores, %.1f GB RAM, Linux %s" % (mc["cpu"], mc["cores"],
                                                            mc["memory_gb"], mc["kernel"]))
    print("server:  %s" % mc["postgres"])
    print("         wal2json %s; output_plugin_libraries %s" % (
        mc["wal2json"], "set" if mc["output_plugin_libraries_set"] else
        "not a setting of this server (not needed)"))
    print("pgstream %s (Release); N=%d -> %d changes, %d repetition(s), medians" % (
        mc["pgstream_git"], res["config"]["n"], tp["changes"], res["config"]["reps"]))
    print()
    hdr = ("%-7s %-40s %11s %8s %9s %9s %9s %8s %7s %7s %7s %7s %7s %7s %7s %7s"
           % ("", "contender", "changes/s", "wall s", "client", "server", "srv u/s", "RSS MB",
              "x(a)", "x(b)", "x(L)", "srv/a", "srv/b", "softirq", "other", "TCP seg"))
    print(hdr)
    print("%-7s %-40s %11s %8s %9s %9s %9s %8s %39s %7s %7s" % (
        "", "", "", "", "CPU s/M", "CPU s/M", "s/M", "client", "s/M", "CPU s", "bytes"))
    print("-" * len(hdr))
    for name, m in res["summary"].items():
        us = ("%.2f/%.2f" % (m["ws_user_s_per_M"], m["ws_sys_s_per_M"])
              if m["ws_user_s_per_M"] is not None else "-")
        print("%-7s %-40s %11.0f %8.2f %9s %9s %9s %8s %7s %7s %7s %7s %7s %7s %7s %7s" % (
            name, CONTENDERS[name][1], m["changes_per_s"], m["wall_s"],
            fmt(m["client_cpu_s_per_M"]), fmt(m["ws_cpu_s_per_M"]), us,
            fmt(m["client_rss_kb"] / 1024 if m["client_rss_kb"] else None, 1),
            fmt(m.get("rate_vs_a")), fmt(m.get("rate_vs_b")), fmt(m.get("rate_vs_L")),
            fmt(m.get("ws_cpu_vs_a")), fmt(m.get("ws_cpu_vs_b")), fmt(m.get("softirq_s_per_M")),
            fmt(m.get("other_cpu_s")), fmt(m.get("tcp_segment_bytes"), 0)))
    print("server CPU = the walsender's user+sys (for L: the backend running the query);"
          " x(a) = rate / rate of a; srv/a = server CPU / that of a;\nsoftirq = the machine's"
          " softirq time (loopback packet processing, mostly inside the processes' system time);\nother = CPU the"
          " rest of the machine used during the run (other load; near 0 on a quiet machine);\nTCP seg ="
          " pgstream's received bytes per TCP segment (its debug log): a few hundred means one message"
          " per segment, kilobytes that the walsender's sends coalesced.")
    k, c = res["summary"].get("k"), res["summary"].get("c")
    if k:
        print()
        print("kafka (k): %.0f changes/s delivered (every one then read back), %.2f x c's rate in this run;"
              " pgstream CPU %s s/M (c: %s), broker (mock) CPU %s s/M, pgstream peak RSS %s MB" % (
                  k["changes_per_s"], k.get("rate_vs_c") or 0, fmt(k["client_cpu_s_per_M"]),
                  fmt(c["client_cpu_s_per_M"]) if c else "-", fmt(k.get("broker_cpu_s_per_M")),
                  fmt(k["client_rss_kb"] / 1024 if k["client_rss_kb"] else None, 1)))
    k2 = res["summary"].get("k2")
    if k2:
        print("kafka exactly once (k2): %.0f changes/s committed, %.2f x k's rate in this run;"
              " pgstream CPU %s s/M, broker (mock) CPU %s s/M, pgstream peak RSS %s MB" % (
                  k2["changes_per_s"], k2.get("rate_vs_k") or 0, fmt(k2["client_cpu_s_per_M"]),
                  fmt(k2.get("broker_cpu_s_per_M")),
                  fmt(k2["client_rss_kb"] / 1024 if k2["client_rss_kb"] else None, 1)))
    for name, what in (("w", "webhook"), ("r", "redis"), ("j", "nats")):
        m = res["summary"].get(name)
        if m:
            print()
            print("%s (%s): %.0f changes/s delivered (every one then counted back), %.2f x c's"
                  " rate in this run; pgstream CPU %s s/M (c: %s), %s CPU %s s/M, pgstream peak"
                  " RSS %s MB" % (
                      what, name, m["changes_per_s"], m.get("rate_vs_c") or 0,
                      fmt(m["client_cpu_s_per_M"]), fmt(c["client_cpu_s_per_M"]) if c else "-",
                      {"w": "receiver", "r": "redis-server", "j": "nats-server"}[name],
                      fmt(m.get("broker_cpu_s_per_M")),
                      fmt(m["client_rss_kb"] / 1024 if m["client_rss_kb"] else None, 1)))
    o = res["summary"].get("o")
    for name in ("o", "oz", "og"):
        m = res["summary"].get(name)
        if m and m.get("disk_bytes") is not None:
            if name == "o":
                print()
            print("rotating files (%s, --rotate-compress %s): %.0f changes/s delivered (every"
                  " one then read back), %.2f x c's rate; pgstream CPU %s s/M (compression"
                  " included), peak RSS %s MB; %d files (%d compressed), %.1f MB on disk%s" % (
                      name, ROTATE_COMPRESS[name], m["changes_per_s"], m.get("rate_vs_c") or 0,
                      fmt(m["client_cpu_s_per_M"]),
                      fmt(m["client_rss_kb"] / 1024 if m["client_rss_kb"] else None, 1),
                      m["files"], m["files_compressed"], m["disk_bytes"] / 1e6,
                      ", %.2f of o's" % (m["disk_bytes"] / o["disk_bytes"])
                      if o and name != "o" and o.get("disk_bytes") else ""))
    la = res.get("latency")
    if la:
        print()
        print("latency, pgstream%s commit-to-emit at %d tx/s target (pgbench %.0f tps, %d clients),"
              " %d s, %d events:" % ("".join(" " + x for x in la.get("args", [])),
                                     la["rate_target"], la["pgbench_tps"] or 0, la["clients"],
                                     la["seconds"], la["events"]))
        print("  p50 %s ms  p90 %s ms  p99 %s ms  p99.9 %s ms  max %s ms;"
              " pgstream CPU %.2f s, peak RSS %.1f MB" % (
                  fmt(la["p50_ms"]), fmt(la["p90_ms"]), fmt(la["p99_ms"]), fmt(la["p999_ms"]),
                  fmt(la["max_ms"]), la["pgstream_cpu_s"], la["pgstream_rss_kb"] / 1024))
    for lw in res.get("latency_sinks") or []:
        print()
        what = SINK_CONFIRMATION[lw["sink"]]
        if lw["sink"] == "file":
            iv = lw["args"][lw["args"].index("--status-interval") + 1]
            what = "%s, every %s s; %s events written after the last left out" % (
                what, iv, lw.get("unconfirmed"))
        print("latency, pgstream %s commit-to-confirmation (%s) at %d tx/s target"
              " (pgbench %.0f tps), %d s, %d events:" % (
                  "--output FILE" if lw["sink"] == "file" else "--sink " + lw["sink"], what,
                  lw["rate_target"], lw["pgbench_tps"] or 0, lw["seconds"], lw["events"]))
        print("  p50 %s ms  p90 %s ms  p99 %s ms  p99.9 %s ms  max %s ms;"
              " pgstream CPU %.2f s, peak RSS %.1f MB" % (
                  fmt(lw["p50_ms"]), fmt(lw["p90_ms"]), fmt(lw["p99_ms"]), fmt(lw["p999_ms"]),
                  fmt(lw["max_ms"]), lw["pgstream_cpu_s"], lw["pgstream_rss_kb"] / 1024))
    if res.get("bigtxn"):
        b = res["bigtxn"]
        print()
        print("peak RSS of pgstream: %d-row transaction %.1f MB, %d-row transaction %.1f MB"
              " (%.1f s, %.2f s CPU)" % (
                  b["small"]["rows"], b["small"]["rss_kb"] / 1024, b["big"]["rows"],
                  b["big"]["rss_kb"] / 1024, b["big"]["wall_s"], b["big"]["cpu_s"]))
    prof = tp.get("profile")
    if prof:
        cg = prof["callgrind_self"]
        print()
        print("callgrind, pgstream self cost (%s instructions in all):" %
              format(cg["total_instructions"] or 0, ","))
        for p, fn in cg["top"][:20]:
            print("  %5.1f%%  %s" % (p, fn))
        print("perf cpu-clock, pgstream self time (user and kernel):")
        for l in prof["perf_self"][:20]:
            print("  " + l)


def smoke_check(res):
    """Every contender must have seen exactly the workload's changes."""
    want, bad = res["throughput"]["changes"], []
    for r in res["throughput"]["runs"]:
        for key in ("seen", "pgstream_events"):
            if key in r and r[key] != want:
                bad.append("%s rep %d: %s = %d, want %d" % (r["contender"], r["rep"], key,
                                                             r[key], want))
        if "tombstones" in r and r["tombstones"] != r["tombstones_want"]:
            bad.append("%s rep %d: %d tombstones, want %d" % (r["contender"], r["rep"],
                                                              r["tombstones"], r["tombstones_want"]))
        if "seen" not in r:
            bad.append("%s rep %d: not counted" % (r["contender"], r["rep"]))
    la = res.get("latency")
    if la and la["events"] != la["transactions"]:
        bad.append("latency: %d events for %d transactions" % (la["events"], la["transactions"]))
    b = res.get("bigtxn")
    if b:
        for label in ("small", "big"):
            if b[label]["events"] != b[label]["rows"]:
                bad.append("bigtxn %s: %s events for %d rows" % (label, b[label]["events"],
                                                                 b[label]["rows"]))
    return bad


def main():
    ap = argparse.ArgumentParser(description="pgstream benchmark (see bench/README.md)")
    ap.add_argument("n", nargs="?", type=int, default=400000, help="workload size N")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--smoke", action="store_true",
                    help="N=2000, 1 rep, short latency and big-txn runs; check counts")
    ap.add_argument("--bin", default=os.environ.get("PGSTREAM_BIN"), help="pgstream binary")
    ap.add_argument("--workload", default=os.environ.get("PGSTREAM_WORKLOAD",
                                                         os.path.join(HERE, "workload")),
                    help="folder with schema.sql and workload.sql")
    ap.add_argument("--lat-rate", type=int, default=5000)
    ap.add_argument("--lat-seconds", type=int, default=10)
    ap.add_argument("--lat-clients", type=int, default=4)
    ap.add_argument("--lat-status-interval", type=float, default=1.0,
                    help="--status-interval of --sink-latency file (its fsync cadence)")
    ap.add_argument("--big-rows", type=int, default=1000000)
    ap.add_argument("--only", "--contenders", dest="only", metavar="C,C",
                    help="run only these contenders, comma-separated (e.g. c,k,k2)")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-bigtxn", action="store_true")
    ap.add_argument("--profile", action="store_true", help="callgrind + perf on pgstream")
    ap.add_argument("--sink-latency", metavar="S,S",
                    help="also commit-to-confirmation latency through these sinks"
                    " (webhook, nats, redis, kafka, file)")
    ap.add_argument("--webhook-latency", action="store_true",
                    help="also commit-to-confirmation latency through --sink webhook")
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--report", metavar="JSON", help="print the table of an earlier run and exit")
    a = ap.parse_args()
    if a.report:
        with open(a.report) as f:
            res = json.load(f)
        res["summary"] = summarize(res["throughput"])
        print_report(res)
        return
    if a.smoke:
        a.n, a.reps, a.lat_seconds, a.big_rows = 2000, 1, 2, 20000
    if not a.bin or not os.access(a.bin, os.X_OK):
        die("no pgstream binary (--bin or PGSTREAM_BIN)")
    if not os.path.exists(os.path.join(a.workload, "workload.sql")):
        die("no workload at %s (--workload or PGSTREAM_WORKLOAD)" % a.workload)

    server = Server(os.environ.get("DATABASE_URL"))
    bench = Bench(a, server)
    try:
        res = {"config": vars(a), "machine": machine(server)}
        res["started"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        res["throughput"] = bench.throughput()
        res["summary"] = summarize(res["throughput"])
        res["latency"] = None if a.no_latency else bench.latency()
        sinks = [x for x in (a.sink_latency or "").split(",") if x]
        if a.webhook_latency and "webhook" not in sinks:
            sinks.insert(0, "webhook")
        for x in sinks:
            if x not in SINK_CONFIRMATION:
                die("--sink-latency: no sink %r (%s)" % (x, ", ".join(SINK_CONFIRMATION)))
        res["latency_sinks"] = [bench.latency(sink=x) for x in sinks]
        res["bigtxn"] = None if a.no_bigtxn else bench.bigtxn()
    finally:
        if bench.kafka:
            bench.kafka.close()
        for srv in (bench.hook, bench.redis, bench.nats):
            if srv:
                srv.close()
        server.close()
        shutil.rmtree(bench.tmp, ignore_errors=True)

    print_report(res)
    os.makedirs(a.results, exist_ok=True)
    path = os.path.join(a.results, time.strftime("%Y%m%d-%H%M%S") +
                        ("-smoke" if a.smoke else "") + ".json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print("\nresults: %s" % path)
    if a.smoke:
        bad = smoke_check(res)
        for b in bad:
            print("SMOKE FAIL: " + b)
        if bad:
            sys.exit(1)
        print("smoke: every contender saw all %d changes" % res["throughput"]["changes"])


if __name__ == "__main__":
    main()
