"""Prepared transactions (PREPARE TRANSACTION) without two-phase decoding:
pgstream does not ask for it, so the server decodes a prepared transaction
at its COMMIT PREPARED, as an ordinary one. It comes out once, whole, at
that commit (also when pgstream stopped between the PREPARE and the COMMIT
PREPARED, and, 14+, when the server streamed it with --streaming); one
rolled back with ROLLBACK PREPARED never does. A slot made with two_phase,
which from 15 would have the server send it at PREPARE, is refused at
startup (on 14, where pgoutput has no two-phase decoding, such a slot
streams like any other: test_versions.py). On 15 here; on 13, 14, 16, 17 and 18 through test_versions.py
(its cluster, which has max_prepared_transactions too, set as C)."""

import unittest

from harness import Cluster, PgStream, lsn_int, lsn_str

C = None

BIG = 2000  # rows of each prepared transaction: past logical_decoding_work_mem


def setUpModule():
    global C
    C = Cluster("max_prepared_transactions = 4", "logical_decoding_work_mem = '64kB'")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    C.close()


def prepare(gid, first):
    """A transaction of BIG rows from id first, prepared as gid; its xid."""
    conn = C.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO t_2pc SELECT g, repeat('x', 40) FROM"
                        " generate_series(%s, %s) g", (first, first + BIG - 1))
            cur.execute("SELECT txid_current()")
            xid = cur.fetchone()[0]
            cur.execute("PREPARE TRANSACTION %s", (gid,))
            return xid
    finally:
        conn.close()


def run_to(slot, end, *args):
    p = PgStream(C, "--end-lsn", lsn_str(end), *args, slot=slot)
    try:
        assert p.run() == 0, p.stderr()
        return [e for e in p.events() if e.get("table") == "t_2pc"]
    finally:
        p.close()


class TwoPhase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.version = int(C.value("SHOW server_version_num")) // 10000
        cls.slots = ["s_2pc"] + (["s_2pc_stream"] if cls.version >= 14 else [])
        C.sql("CREATE TABLE t_2pc (id int PRIMARY KEY, pad text)")
        for slot in cls.slots:
            C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        cls.xid = prepare("tp_commit", 1)
        prepare("tp_rollback", 10001)
        C.sql("INSERT INTO t_2pc VALUES (5000, 'after both prepares')")
        cls.prepared_at = C.current_lsn()
        # A run that stops while both are prepared, before their outcome is
        # in the WAL (a run to --end-lsn may read past it): the slot keeps
        # them for the next run.
        cls.first = run_to("s_2pc", cls.prepared_at)
        C.sql("COMMIT PREPARED 'tp_commit'")
        C.sql("ROLLBACK PREPARED 'tp_rollback'")
        C.sql("INSERT INTO t_2pc VALUES (5001, 'last')")
        cls.end = C.current_lsn()

    @classmethod
    def tearDownClass(cls):
        # test_versions.py shares its cluster: leave nothing behind.
        for slot in cls.slots:
            C.sql("SELECT pg_drop_replication_slot(%s)", (slot,))
        C.sql("DROP TABLE t_2pc")

    def check(self, evs):
        """5000, the committed prepared transaction's rows, 5001: each once,
        in commit order, nothing of the rolled-back one."""
        self.assertEqual([e["new"]["id"] for e in evs], [5000] + list(range(1, BIG + 1)) + [5001])
        prepared = evs[1:-1]
        # One transaction, the one prepared, committed at COMMIT PREPARED:
        # after 5000's commit though its rows were written before.
        self.assertEqual({(e["xid"], e["commit_lsn"]) for e in prepared},
                         {(self.xid, prepared[0]["commit_lsn"])})
        self.assertGreaterEqual(lsn_int(prepared[0]["commit_lsn"]), self.prepared_at)
        self.assertLess(lsn_int(prepared[0]["lsn"]), lsn_int(evs[0]["commit_lsn"]))

    def test_emitted_once_at_commit_prepared(self):
        self.assertEqual([e["new"]["id"] for e in self.first], [5000])
        self.check(self.first + run_to("s_2pc", self.end))

    def test_streamed_prepared_transaction(self):
        import test_streaming
        self.check(run_to("s_2pc_stream", self.end, "--streaming"))
        self.assertGreater(test_streaming.streamed_txns(C, "s_2pc_stream"), 0,
                           "the server streamed nothing: the test tests nothing")

    def test_two_phase_slot_refused(self):
        C.sql("SELECT pg_create_logical_replication_slot('s_2pc_tp', 'pgoutput', false, true)")
        try:
            p = PgStream(C, "--end-lsn", lsn_str(C.current_lsn()), slot="s_2pc_tp")
            try:
                self.assertEqual(p.run(timeout=60), 1, p.stderr())
                self.assertEqual(
                    p.stderr().strip().splitlines()[-1],
                    'pgstream: replication slot "s_2pc_tp" has two_phase enabled, and pgstream'
                    " does not decode prepared transactions at PREPARE (it emits them when"
                    " they commit): use another --slot name, or drop it with SELECT"
                    " pg_drop_replication_slot('s_2pc_tp')")
                self.assertEqual(p.events(), [])
            finally:
                p.close()
        finally:
            C.sql("SELECT pg_drop_replication_slot('s_2pc_tp')")


if __name__ == "__main__":
    unittest.main()
