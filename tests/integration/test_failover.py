"""A failover under pgstream: a primary with a hot standby (harness.Standby),
pgstream connected to both with a multi-host URL (target_session_attrs=
read-write, so libpq picks whichever accepts writes), a write load, the
primary stopped and the standby promoted.

On Debian's 15 (this module): the slot existed on the old primary only, and
pgstream, reconnecting to the new one, stops with one clear line (exit 1)
instead of creating a new slot that would start after the changes in
between; --failover-slot is refused before 17. From 17, test_versions runs
FailoverSlotChecks: with --failover-slot the slot is synchronized to the
standby (sync_replication_slots, synchronized_standby_slots on the
primary) and pgstream continues on the new primary: every row written and
committed appears in its output at least once (the counts are printed)."""

import subprocess
import threading
import time
import unittest

import harness
from harness import Cluster, PgStream, Standby

VERSION = None  # Debian's server; test_versions sets its own


def multi_host_url(*clusters):
    return "postgresql://postgres@%s/postgres?target_session_attrs=read-write" % ",".join(
        "127.0.0.1:%d" % c.port for c in clusters)


class Writer(threading.Thread):
    """Inserts one row per transaction into fo(id) until stopped or the
    server goes away; `written` holds the ids whose COMMIT succeeded, and
    `uncertain` the one whose COMMIT failed (committed or not: the client
    cannot know)."""

    def __init__(self, cluster, first_id):
        super().__init__(daemon=True)
        self.cluster, self.next_id = cluster, first_id
        self.written, self.uncertain = [], []
        self.stopping = False

    def run(self):
        try:
            conn = self.cluster.connect()
        except Exception:
            return
        try:
            with conn.cursor() as cur:
                while not self.stopping:
                    try:
                        cur.execute("INSERT INTO fo VALUES (%s)", (self.next_id,))
                    except Exception:
                        self.uncertain.append(self.next_id)
                        return
                    self.written.append(self.next_id)
                    self.next_id += 1
                    time.sleep(0.002)
        finally:
            conn.close()


def pair(*primary_conf, standby_conf=()):
    """A primary with fo(id) published FOR ALL TABLES and its standby."""
    p = Cluster("wal_sender_timeout = 10s", *primary_conf, version=VERSION)
    p.sql("CREATE TABLE fo (id int PRIMARY KEY)")
    p.sql("CREATE PUBLICATION pub_fo FOR ALL TABLES")
    try:
        s = Standby(p, *standby_conf, slot="sb_slot")
    except Exception:
        p.close()
        raise
    return p, s


def pgstream(primary, standby, slot, *args):
    return PgStream(primary, "--status-interval", "0.2", "--reconnect-max-delay", "1",
                    "--wal-receiver-timeout", "5", *args, slot=slot, pub="pub_fo",
                    url=multi_host_url(primary, standby))


class FailoverLosesSlot(unittest.TestCase):
    def test_slot_gone_after_failover_is_an_error(self):
        """Without a failover slot the new primary has no slot: pgstream
        says so and exits 1, and creates none."""
        p, s = pair()
        ps = pgstream(p, s, "s_lost")
        try:
            ps.start()
            ps.wait_stderr("listening for changes...")
            p.sql("INSERT INTO fo SELECT generate_series(1, 10)")
            ps.wait_events(10)
            p.stop()
            s.promote()
            self.assertEqual(ps.proc.wait(timeout=60), 1, ps.stderr())
            last = ps.stderr().strip().splitlines()[-1]
            self.assertTrue(last.startswith('pgstream: replication slot "s_lost" no longer'
                                            " exists (dropped while pgstream was disconnected,"
                                            " or a failover to a server it was not synchronized"
                                            " to: see --failover-slot)"), last)
            self.assertEqual(s.sql("SELECT slot_name FROM pg_replication_slots"), [])
        finally:
            ps.close()
            p.close()
            s.close()

    def test_failover_slot_refused_before_17(self):
        if VERSION is not None and VERSION >= 17:
            self.skipTest("failover slots exist from 17")
        c = Cluster(version=VERSION)
        ps = PgStream(c, "--failover-slot", "--create-publication", slot="s_fo_old")
        try:
            self.assertEqual(ps.run(timeout=60), 1, ps.stderr())
            self.assertEqual(ps.stderr().strip().splitlines()[-1],
                             "pgstream: could not use --failover-slot: it needs PostgreSQL 17 or"
                             " newer (before 17 a slot exists on its server only, and a failover"
                             " loses it; see README, Upgrades, failover)")
            self.assertEqual(c.sql("SELECT slot_name FROM pg_replication_slots"), [])
        finally:
            ps.close()
            c.close()


class FailoverSlotChecks:
    """PostgreSQL 17+ (test_versions makes these a TestCase there)."""

    def test_failover_slot_survives_promotion(self):
        p, s = pair()
        fo = pgstream(p, s, "s_fo", "--failover-slot")
        plain = pgstream(p, s, "s_plain")
        writer = None
        try:
            # Set after the standby's copy: on the standby, promoted, it
            # would name a slot that does not exist there.
            p.sql("ALTER SYSTEM SET synchronized_standby_slots = 'sb_slot'")
            p.sql("SELECT pg_reload_conf()")
            fo.start()
            plain.start()
            fo.wait_stderr("listening for changes...")
            plain.wait_stderr("listening for changes...")
            self.assertIn("replication slot created: s_fo (failover)", fo.stderr())
            self.assertNotIn("synchronized_standby_slots is empty", fo.stderr())
            self.assertEqual(p.value("SELECT failover FROM pg_replication_slots"
                                     " WHERE slot_name = 's_fo'"), True)
            # The first synchronization by hand, before the load: the
            # slot sync worker naps up to 30 s between looks, and under
            # load a slot's first synchronization waits for its catalog
            # xmin to pass the standby's. Then the worker keeps it in step.
            deadline = time.time() + 30
            while not s.sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = 's_fo'"
                            " AND synced AND NOT temporary"):
                self.assertLess(time.time(), deadline, "the slot was never synchronized")
                # A slot is synchronized once the standby's catalog xmin is
                # not past the slot's, which moves on a running-transactions
                # record pgstream has decoded and acknowledged: log one
                # rather than wait up to 15 s for the server's.
                p.sql("SELECT pg_log_standby_snapshot()")
                time.sleep(0.3)
                s.sql("SELECT pg_sync_replication_slots()")
            s.sql("ALTER SYSTEM SET sync_replication_slots = on")
            s.sql("SELECT pg_reload_conf()")
            writer = Writer(p, 1)
            writer.start()
            time.sleep(1.5)  # rows in flight as the primary stops
            p.stop()
            writer.join(timeout=30)
            s.promote()
            after = Writer(s, writer.next_id + 1)
            after.start()  # a second of writes on the new primary
            time.sleep(1)
            after.stopping = True
            after.join(timeout=30)
            written = writer.written + after.written
            self.assertGreater(len(writer.written), 50, "too few rows before the failover")
            self.assertGreater(len(after.written), 50, "too few rows after the failover")

            def seen():
                return [e["new"]["id"] for e in fo.events() if e["op"] == "insert"]

            fo.wait_for(lambda: set(written) <= set(seen()), timeout=60,
                        what="every committed row")
            rows = seen()
            repeats = len(rows) - len(set(rows))
            extra = set(rows) - set(written) - set(writer.uncertain)
            print("failover on %s: rows written %d (%d before, %d after), uncertain %d,"
                  " rows seen %d, distinct %d, repeats %d"
                  % (s.value("SHOW server_version"), len(written), len(writer.written),
                     len(after.written), len(writer.uncertain), len(rows), len(set(rows)),
                     repeats), flush=True)
            self.assertEqual(extra, set(), "rows in the output that were never written")
            self.assertIn("using existing replication slot: s_fo", fo.stderr())
            self.assertEqual(plain.proc.wait(timeout=60), 1, plain.stderr())
            self.assertIn('pgstream: replication slot "s_plain" no longer exists',
                          plain.stderr())
            self.assertEqual(s.sql("SELECT 1 FROM pg_replication_slots"
                                   " WHERE slot_name = 's_plain'"), [])
            self.assertEqual(fo.stop(), 0, fo.stderr())
        finally:
            if writer:
                writer.stopping = True
            fo.close()
            plain.close()
            p.close()
            s.close()


    def test_synchronized_standby_slots_holds_changes_back(self):
        """With the standby named in synchronized_standby_slots down, the
        primary sends a failover slot's pgstream nothing the standby has not
        confirmed (so a promotion cannot leave pgstream ahead of the new
        primary), while a slot without failover streams on; the standby
        back, the held rows arrive."""
        p, s = pair()
        fo = pgstream(p, s, "s_hold", "--failover-slot")
        plain = pgstream(p, s, "s_hold_plain")
        try:
            p.sql("ALTER SYSTEM SET synchronized_standby_slots = 'sb_slot'")
            p.sql("SELECT pg_reload_conf()")
            fo.start()
            plain.start()
            fo.wait_stderr("listening for changes...")
            plain.wait_stderr("listening for changes...")
            p.sql("INSERT INTO fo VALUES (1)")
            fo.wait_for(lambda: [e for e in fo.events() if e["op"] == "insert"], timeout=30,
                        what="the first row, the standby up")
            s.stop()
            p.sql("INSERT INTO fo VALUES (2)")
            plain.wait_for(lambda: 2 in [e["new"]["id"] for e in plain.events()
                                         if e["op"] == "insert"], timeout=30,
                           what="the row on the slot without failover")
            time.sleep(3)
            held = [e["new"]["id"] for e in fo.events() if e["op"] == "insert"]
            self.assertEqual(held, [1], "a row the standby had not confirmed was sent")
            subprocess.run([harness.PGCLUSTER, "start", s.dir, str(s.port)], check=True,
                           env=s.env)
            fo.wait_for(lambda: 2 in [e["new"]["id"] for e in fo.events()
                                      if e["op"] == "insert"], timeout=60,
                        what="the held row once the standby is back")
            print("synchronized_standby_slots on %s: row held while the standby was down,"
                  " sent once it was back" % p.value("SHOW server_version"), flush=True)
            self.assertEqual(fo.stop(), 0, fo.stderr())
            self.assertEqual(plain.stop(), 0, plain.stderr())
        finally:
            fo.close()
            plain.close()
            p.close()
            s.close()


class StandbyDecodingChecks:
    """PostgreSQL 16+ (test_versions makes these a TestCase there):
    pgstream reading from a slot on a hot standby, until the primary's
    wal_level is lowered under it."""

    def test_decoding_on_a_standby_until_its_slot_is_invalidated(self):
        p, s = pair()
        ps = PgStream(s, "--status-interval", "0.2", "--reconnect-max-delay", "1",
                      slot="s_sb", pub="pub_fo")
        try:
            ps.start()
            # A logical slot on a standby is ready once the primary has
            # logged a running-transactions record: ask for one rather
            # than wait up to 15 s for the server's.
            deadline = time.time() + 30
            while "listening for changes..." not in ps.stderr():
                self.assertLess(time.time(), deadline, ps.stderr())
                self.assertIsNone(ps.proc.poll(), ps.stderr())
                p.sql("SELECT pg_log_standby_snapshot()")
                time.sleep(0.2)
            p.sql("INSERT INTO fo SELECT generate_series(1, 100)")
            self.assertEqual([e["new"]["id"] for e in ps.wait_events(100)],
                             list(range(1, 101)))
            self.assertEqual(s.sql("SELECT slot_name FROM pg_replication_slots"
                                   " WHERE slot_type = 'logical'"), [("s_sb",)])
            self.assertEqual(p.sql("SELECT 1 FROM pg_replication_slots WHERE"
                                   " slot_name = 's_sb'"), [])
            # The primary's wal_level lowered: the standby gives up the
            # slot when it replays the change, and pgstream says why.
            p.sql("ALTER SYSTEM SET wal_level = replica")
            p.restart()
            self.assertEqual(ps.proc.wait(timeout=60), 1, ps.stderr())
            last = ps.stderr().strip().splitlines()[-1]
            cause = ("wal_level_insufficient: the primary's wal_level was lowered below"
                     " logical; set it back to logical and restart the primary"
                     if VERSION >= 17 else
                     "a recovery conflict on this standby: the primary removed catalog rows"
                     " it needed, or its wal_level was lowered below logical")
            self.assertEqual(last, 'pgstream: replication slot "s_sb" is invalidated (%s);'
                             " changes were lost on the server, drop the slot and"
                             " resynchronize" % cause)
            self.assertEqual(len(s.sql("SELECT 1 FROM pg_replication_slots"
                                       " WHERE slot_name = 's_sb'")), 1)
        finally:
            ps.close()
            p.close()
            s.close()


if __name__ == "__main__":
    harness.main()
