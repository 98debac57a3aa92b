"""The version matrix: the core suite's checks against PostgreSQL 13, 14,
16, 17 and 18 (scripts/pgversions.sh's builds; Debian's 15 runs the whole
suite). PGSTREAM_PG_VERSION=N (or --pg-version N) picks the server; ctest
has one entry per version (integration/test_versions/pgN). A version whose
server cannot be fetched skips every test, with the reason: ctest shows the
entry as Skipped, never Passed.

The checks are the core modules' own test classes, run against this
module's cluster: every operation under each replica identity, unchanged
TOAST, ALTER TABLE mid-stream, TRUNCATE (test_ops), partitioned tables
with and without publish_via_partition_root (test_partitions), row filters
and column lists (15+, test_filter), --origin (16+; refused before,
test_origin), prepared transactions emitted at COMMIT PREPARED
(test_twophase), the value rules
(test_values), resume after SIGTERM and kill -9 and the idle-slot
acknowledgement (test_resume), streaming against the server's own decoding
(test_streaming, 16+; on 14, which has no pg_walinspect, streamed against
unstreamed byte for byte and the tables' contents); plus the reference
workload's event count, the protocol version pgstream chose (logged at
debug level), and what differs by version: logical messages and
--streaming from 14 on, --streaming refused on 13 and messages not asked
for there; heartbeats on every version (test_heartbeat's run)."""

import json
import os
import subprocess
import sys
import time
import unittest

import harness
from harness import Cluster, PgStream, lsn_str, wait_slot_inactive

import test_failover
import test_filter
import test_heartbeat
import test_ops
import test_origin
import test_partitions
import test_resume
import test_snapshot
import test_streaming
import test_twophase
import test_values


def _version():
    argv = sys.argv
    if "--pg-version" in argv:
        i = argv.index("--pg-version")
        v = argv[i + 1]
        del argv[i:i + 2]
        return int(v)
    v = os.environ.get("PGSTREAM_PG_VERSION")
    if not v:
        raise SystemExit("test_versions: set PGSTREAM_PG_VERSION (13, 14, 16, 17, 18)"
                         " or pass --pg-version N")
    return int(v)


VERSION = _version()
C = None


def setUpModule():
    global C
    # wal_sender_timeout as test_resume has it, the decoding budget as
    # test_streaming has it; slots are many (each test makes its own);
    # prepared transactions for test_twophase.
    C = Cluster("wal_sender_timeout = 10s", "logical_decoding_work_mem = '64kB'",
                "max_replication_slots = 60", "max_prepared_transactions = 4",
                version=VERSION)
    got = C.value("SHOW server_version_num")
    assert int(got) // 10000 == VERSION, "asked for %d, server is %s" % (VERSION, got)
    print("PostgreSQL %s" % C.value("SHOW server_version"), flush=True)
    for mod in (test_filter, test_heartbeat, test_ops, test_origin, test_partitions, test_resume,
                test_snapshot, test_streaming, test_twophase, test_values):
        mod.C = C
    test_failover.VERSION = VERSION
    test_snapshot.BIG_ROWS = 100000
    test_snapshot.CUT_ROWS = 100000
    C.sql(test_values.VALS_TABLE)
    C.sql("CREATE TABLE big (id int PRIMARY KEY, v text, n int)")
    C.sql("CREATE TABLE small (id int PRIMARY KEY)")
    if VERSION >= 15:
        C.sql("CREATE EXTENSION pg_walinspect")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
    C.sql("CREATE DATABASE hb_elsewhere")
    C.sql("CREATE TABLE hb_other (id serial PRIMARY KEY)", db="hb_elsewhere")


def tearDownModule():
    if C:
        C.close()


# Subclasses, so that unittest runs this module's fixtures (one cluster of
# the version under test), not the originals' (Debian's 15).
class Operations(test_ops.Operations):
    if VERSION < 14:
        def test_logical_messages(self):
            """Before 14 pgoutput has no 'messages' option: pgstream must not
            ask for it (the server would refuse START_REPLICATION), and a
            message emitted there reaches no one."""
            C.sql("CREATE TABLE t_msg13 (id int PRIMARY KEY)")
            C.sql("SELECT pg_create_logical_replication_slot('s_msg13', 'pgoutput')")
            C.sql("SELECT pg_logical_emit_message(true, 'app', 'hello')")
            C.sql("INSERT INTO t_msg13 VALUES (1)")
            p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--log-level", "debug",
                         slot="s_msg13")
            try:
                self.assertEqual(p.run(), 0, p.stderr())
                self.assertEqual([e["op"] for e in p.events()], ["insert"])
                self.assertIn("proto_version 1, messages off, streaming off", p.stderr())
            finally:
                p.close()


class Origin(test_origin.Origin):
    # --origin none and any from 16; refused before.
    pass


class Partitions(test_partitions.Partitions):
    pass


class Values(test_values.Values):
    if VERSION < 14:
        # numeric has no Infinity before 14: row 3's numeric is NaN there.
        ROW3_N = "'-Infinity', '-Infinity', '-Infinity', '\"just a string\"'"

        @classmethod
        def setUpClass(cls):
            rows = test_values.VALS_ROWS
            assert rows.count(cls.ROW3_N) == 1, "test_values.VALS_ROWS changed: update here"
            test_values.VALS_ROWS = rows.replace(
                cls.ROW3_N, cls.ROW3_N.replace("'-Infinity', '\"", "'NaN', '\""))
            try:
                super().setUpClass()
            finally:
                test_values.VALS_ROWS = rows

        def test_floats(self):
            self.assertIn('"f4":1.5,"f8":-0,', self.raw[1])
            self.assertIn('"f4":"NaN","f8":"Infinity","n":"NaN"', self.raw[2])
            self.assertIn('"f4":"-Infinity","f8":"-Infinity","n":"NaN"', self.raw[3])
            self.assertIn('"f4":1e-40,"f8":1.7976931348623157e+308', self.raw[4])


class TwoPhase(test_twophase.TwoPhase):
    if VERSION < 14:
        test_streamed_prepared_transaction = None  # no --streaming
    if VERSION < 15:
        test_two_phase_slot_refused = None  # no two_phase slots, or (14) no effect

    if VERSION == 14:
        def test_two_phase_slot_streams_on_14(self):
            """14's pgoutput has no two-phase decoding: a slot made with
            two_phase is used, and a prepared transaction still comes at
            its COMMIT PREPARED."""
            C.sql("SELECT pg_create_logical_replication_slot('s_2pc_tp14', 'pgoutput',"
                  " false, true)")
            try:
                xid = test_twophase.prepare("tp14", 20001)
                C.sql("INSERT INTO t_2pc VALUES (30000, 'after the prepare')")
                C.sql("COMMIT PREPARED 'tp14'")
                evs = test_twophase.run_to("s_2pc_tp14", C.current_lsn())
                self.assertEqual([e["new"]["id"] for e in evs],
                                 [30000] + list(range(20001, 20001 + test_twophase.BIG)))
                self.assertEqual({e["xid"] for e in evs[1:]}, {xid})
            finally:
                C.sql("SELECT pg_drop_replication_slot('s_2pc_tp14')")


class UserTypes(test_values.UserTypes):
    pass


class Resume(test_resume.Resume):
    # Covered on 15 by test_resume; not part of the matrix.
    test_slot_dropped_while_disconnected_is_an_error = None
    test_postgres_restarted_under_it = None


class Snapshot(test_snapshot.InitialSnapshot):
    pass


class SnapshotInterrupted(test_snapshot.Interrupted):
    # kill -9 and SIGTERM in the matrix; the sink and connection faults on 15.
    test_sink_failure_during_snapshot = None
    test_lost_connection_during_snapshot = None


if VERSION >= 14:
    class SnapshotOnDemand(test_snapshot.OnDemand):
        pass
else:
    class SnapshotOnDemand(unittest.TestCase):
        def test_refused_before_14(self):
            p = subprocess.run([harness.BIN, "snapshot", "--database-url", C.url(),
                                "--env-file", "/dev/null", "--table", "public.x"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1)
            self.assertEqual(p.stderr.strip(),
                             "pgstream: could not request a snapshot: on-demand snapshots need "
                             "PostgreSQL 14 or newer (pgoutput sends logical messages from 14 on)")


if VERSION >= 15:
    # Before 15 the server has neither (CREATE PUBLICATION ... WHERE fails):
    # nothing of pgstream's to refuse.
    class RowFilterColumnList(test_filter.RowFilterColumnList):
        pass


class SnapshotPublications(test_snapshot.Publications):
    if VERSION < 15:
        test_column_list_and_row_filter = None  # no column lists or row filters


if VERSION >= 15:
    class Streaming(test_streaming.Streaming):
        pass
elif VERSION >= 14:
    class Streaming(unittest.TestCase):
        def test_streamed_equals_unstreamed(self):
            """No pg_walinspect before 15 (test_streaming takes commit_lsn
            from it): streamed and unstreamed outputs byte for byte, the
            server having streamed, the count the workload makes, and
            replaying the events gives the tables' contents."""
            for slot in ("s_v1", "s_stream"):
                C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            test_streaming.workload()
            end = lsn_str(C.current_lsn())
            runs = {}
            for slot, extra in (("s_v1", ()), ("s_stream", ("--streaming",))):
                p = PgStream(C, "--end-lsn", end, "--log-level", "debug", *extra, slot=slot)
                try:
                    self.assertEqual(p.run(timeout=300), 0, p.stderr())
                    runs[slot] = p.stdout().splitlines()
                    self.assertIn("proto_version %d, messages on, streaming %s"
                                  % ((2, "on") if extra else (1, "off")), p.stderr())
                finally:
                    p.close()
            self.assertGreater(test_streaming.streamed_txns(C, "s_stream"), 0,
                               "the server streamed nothing: the test tests nothing")
            self.assertEqual(len(runs["s_v1"]), 5000 + 20 + 2000 + 3000 + 4000 + 1)
            self.assertEqual(runs["s_stream"], runs["s_v1"])
            test_streaming.Streaming.check_final_contents(
                self, [json.loads(line) for line in runs["s_v1"]])
else:
    class Streaming(unittest.TestCase):
        def test_streaming_refused(self):
            C.sql("SELECT pg_create_logical_replication_slot('s_stream13', 'pgoutput')")
            p = PgStream(C, "--streaming", slot="s_stream13")
            try:
                rc = p.run(timeout=60)
                err = p.stderr().strip().splitlines()
                self.assertEqual(rc, 1, p.stderr())
                self.assertEqual(
                    err[-1], "pgstream: could not use --streaming: it needs PostgreSQL 14 or newer")
                self.assertEqual(p.events(), [])
            finally:
                p.close()


class ProtocolChoice(unittest.TestCase):
    def test_debug_log_names_the_protocol(self):
        """pgstream picks the protocol from the server's version and says
        which at debug level: 2 with --streaming (14+), else 1; messages
        asked for from 14 on."""
        C.sql("SELECT pg_create_logical_replication_slot('s_proto', 'pgoutput')")
        runs = [((), "proto_version 1, messages %s, streaming off"
                 % ("on" if VERSION >= 14 else "off"))]
        if VERSION >= 14:
            runs.append((("--streaming",), "proto_version 2, messages on, streaming on"))
        for extra, want in runs:
            p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--log-level", "debug",
                         *extra, slot="s_proto")
            try:
                self.assertEqual(p.run(), 0, p.stderr())
                self.assertIn("server %s: %s" % (C.value("SHOW server_version_num"), want),
                              p.stderr())
            finally:
                p.close()


class Slots(unittest.TestCase):
    def test_temporary_slot_and_created_publication(self):
        """pgstream's own CREATE_REPLICATION_SLOT (NOEXPORT_SNAPSHOT before
        15, (SNAPSHOT 'nothing') from 15) for a temporary slot, and
        --create-publication FOR TABLE: streams, and the slot is gone once
        pgstream has stopped."""
        C.sql("CREATE TABLE t_tmpslot (id int PRIMARY KEY)")
        p = PgStream(C, "--temporary-slot", "--create-publication", "--tables", "t_tmpslot",
                     slot="s_tmp", pub="pub_tmp").start()
        try:
            p.wait_stderr("listening for changes...")
            C.sql("INSERT INTO t_tmpslot VALUES (1)")
            self.assertEqual([(e["op"], e["new"]) for e in p.wait_events(1)],
                             [("insert", {"id": 1})])
            self.assertEqual(p.stop(), 0, p.stderr())
            self.assertEqual(C.value("SELECT count(*) FROM pg_publication_tables"
                                     " WHERE pubname = 'pub_tmp'"), 1)
            harness.wait_slot_inactive(C, "s_tmp")
            self.assertEqual(C.sql("SELECT 1 FROM pg_replication_slots"
                                   " WHERE slot_name = 's_tmp'"), [])
        finally:
            p.close()


class GeneratedColumns(unittest.TestCase):
    def test_generated_columns(self):
        """A stored generated column is not sent by default (every version);
        from 18 a publication WITH (publish_generated_columns = stored)
        sends it, and it is an ordinary column of the event."""
        C.sql("CREATE TABLE t_gen (id int PRIMARY KEY, a int,"
              " b int GENERATED ALWAYS AS (a * 2) STORED)")
        pubs = [("pgstream_pub", [{"id": 1, "a": 5}, {"id": 1, "a": 6}])]
        if VERSION >= 18:
            C.sql("CREATE PUBLICATION pub_gen FOR TABLE t_gen"
                  " WITH (publish_generated_columns = stored)")
            pubs.append(("pub_gen", [{"id": 1, "a": 5, "b": 10}, {"id": 1, "a": 6, "b": 12}]))
        for n, (pub, _) in enumerate(pubs):
            C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", ("s_gen%d" % n,))
        C.sql("INSERT INTO t_gen (id, a) VALUES (1, 5)")
        C.sql("UPDATE t_gen SET a = 6 WHERE id = 1")
        end = lsn_str(C.current_lsn())
        for n, (pub, want) in enumerate(pubs):
            p = PgStream(C, "--end-lsn", end, slot="s_gen%d" % n, pub=pub)
            try:
                self.assertEqual(p.run(), 0, p.stderr())
                got = [e["new"] for e in p.events() if e.get("table") == "t_gen"]
                self.assertEqual(got, want, pub)
            finally:
                p.close()


class Heartbeat(unittest.TestCase):
    def test_heartbeats_on_this_version(self):
        """--heartbeat-interval writes pg_logical_emit_message, which every
        supported server has (so no heartbeat table is needed): its messages
        are in the WAL, none is an event, and the slot keeps up while only
        another database writes."""
        behind, moved, beats, events = test_heartbeat.run(self, "v_hb", "hb_elsewhere",
                                                          "--heartbeat-interval", "1")
        self.assertGreaterEqual(beats, test_heartbeat.WINDOW - 2)
        self.assertGreater(moved, 10000)
        self.assertLess(behind, 1024)
        self.assertEqual(events, [])

    def test_keepalives_advance_the_slot_without_heartbeats(self):
        """The README's advice (heartbeats are not what keeps an idle slot
        moving) on this version too."""
        behind, moved, beats, events = test_heartbeat.run(self, "v_nohb", "hb_elsewhere")
        self.assertEqual(beats, 0)
        self.assertGreater(moved, 10000)
        self.assertLess(behind, 1024)
        self.assertEqual(events, [])


if VERSION >= 17:
    class Failover(test_failover.FailoverSlotChecks, unittest.TestCase):
        """--failover-slot through a promotion (test_failover.py); its own
        primary and standby."""

        def test_failover_enabled_on_existing_and_snapshot_slots(self):
            """A slot made without FAILOVER (an older pgstream, or the copy
            of --snapshot's temporary slot, which cannot have it) gets it;
            the module's server has no synchronized_standby_slots: warned."""
            C.sql("CREATE TABLE t_fo (id int PRIMARY KEY)")
            C.sql("INSERT INTO t_fo VALUES (1)")
            for slot, args in (("s_fo_old", ()), ("s_fo_snap", ("--snapshot", "initial"))):
                if not args:
                    C.sql("SELECT pg_create_logical_replication_slot('s_fo_old', 'pgoutput')")
                p = PgStream(C, "--failover-slot", "--end-lsn", lsn_str(C.current_lsn()),
                             *args, slot=slot)
                try:
                    self.assertEqual(p.run(), 0, p.stderr())
                    self.assertIn("replication slot %s: failover enabled" % slot, p.stderr())
                    self.assertIn("warning: --failover-slot: synchronized_standby_slots is"
                                  " empty", p.stderr())
                    self.assertTrue(C.value("SELECT failover FROM pg_replication_slots"
                                            " WHERE slot_name = %s", (slot,)))
                finally:
                    p.close()
            p = PgStream(C, "--failover-slot", "--temporary-slot")
            try:
                self.assertEqual(p.run(), 2, p.stderr())
                self.assertIn("--failover-slot cannot be used with --temporary-slot", p.stderr())
            finally:
                p.close()
else:
    class Failover(unittest.TestCase):
        test_failover_slot_refused_before_17 = \
            test_failover.FailoverLosesSlot.test_failover_slot_refused_before_17


if VERSION >= 16:
    class StandbyDecoding(test_failover.StandbyDecodingChecks, unittest.TestCase):
        """A slot on a hot standby (test_failover.py); its own primary and
        standby."""


if VERSION >= 18:
    class IdleSlotTimeout(unittest.TestCase):
        def test_slot_invalidated_by_idle_replication_slot_timeout(self):
            """An idle slot the server invalidated (18's
            idle_replication_slot_timeout, at a checkpoint): one line with
            the cause and remedy, exit 1, the slot not made again. Its own
            server: the timeout would take the module's idle slots too."""
            c = Cluster("idle_replication_slot_timeout = 1s", version=VERSION)
            try:
                c.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
                p = PgStream(c, "--end-lsn", lsn_str(c.current_lsn()), slot="s_idle")
                self.assertEqual(p.run(), 0, p.stderr())
                p.close()
                # Idle for more than the timeout once released, then the
                # checkpoint that invalidates it (again, until it has).
                wait_slot_inactive(c, "s_idle")
                deadline = time.time() + 30
                while True:
                    time.sleep(1.5)
                    c.sql("CHECKPOINT")
                    if c.value("SELECT invalidation_reason FROM pg_replication_slots "
                               "WHERE slot_name = 's_idle'") or time.time() > deadline:
                        break
                p = PgStream(c, slot="s_idle")
                self.assertEqual(p.run(), 1, p.stderr())
                self.assertEqual(
                    p.stderr().strip().splitlines()[-1],
                    'pgstream: replication slot "s_idle" is invalidated (idle_timeout:'
                    " inactive longer than idle_replication_slot_timeout; raise it, or keep"
                    " pgstream connected); changes were lost on the server, drop the slot"
                    " and resynchronize")
                self.assertEqual(c.sql("SELECT invalidation_reason FROM pg_replication_slots"
                                       " WHERE slot_name = 's_idle'"), [("idle_timeout",)])
                p.close()
            finally:
                c.close()


class Workload(unittest.TestCase):
    def test_reference_workload_event_count(self):
        """bench/workload/ with n=2000: n inserts + n/2 updates + n/4
        deletes + n/4 single-row update transactions."""
        n = 2000
        C.sql("SELECT pg_create_logical_replication_slot('s_bench', 'pgoutput')")
        wl = os.path.join(harness.ROOT, "bench", "workload")
        for f, extra in (("schema.sql", []), ("workload.sql", ["-v", "n=%d" % n])):
            subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", *extra,
                            "-f", os.path.join(wl, f), C.url()], check=True,
                           stdout=subprocess.DEVNULL,
                           env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
        p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), "--log-level", "debug",
                     slot="s_bench")
        try:
            self.assertEqual(p.run(timeout=120), 0, p.stderr())
            ops = {}
            for e in p.events():
                self.assertEqual(e["table"], "bench_orders")
                ops[e["op"]] = ops.get(e["op"], 0) + 1
            self.assertEqual(ops, {"insert": n, "update": n // 2 + n // 4, "delete": n // 4})
            self.assertIn("proto_version 1, messages %s, streaming off"
                          % ("on" if VERSION >= 14 else "off"), p.stderr())
            print("reference workload n=%d: %d events" % (n, sum(ops.values())), flush=True)
        finally:
            p.close()


if __name__ == "__main__":
    harness.main()
