"""Partitioned tables, with and without publish_via_partition_root: which
table each event names (each partition's own name, or the root's), the
columns in that table's order (a partition attached with its columns in
another order than the root's keeps them without it), an UPDATE that moves
a row to the other partition (pgoutput sends a DELETE from the old one and
an INSERT into the new one, in one transaction, under either publication),
DELETE and TRUNCATE (one event per partition, or one for the root; a
partition truncated alone is not sent through the root), and the name the
filters match. On 15 here and on 13, 14, 16, 17 and 18 through
test_versions.py (its cluster set as this module's C)."""

import unittest

from harness import Cluster, PgStream, lsn_int, lsn_str

C = None


def setUpModule():
    global C
    C = Cluster()


def tearDownModule():
    C.close()


# The rows' partition comes from k: pt_lo holds k < 100, pt_hi the rest.
WORKLOAD = [
    "INSERT INTO pt VALUES (1, 10, 'a'), (2, 150, 'b')",
    "UPDATE pt SET v = 'a2' WHERE id = 1",
    "UPDATE pt SET k = 160 WHERE id = 1",  # moves from pt_lo to pt_hi
    "DELETE FROM pt WHERE id = 2",
    "TRUNCATE pt",
    "INSERT INTO pt VALUES (3, 20, 'c')",
    "TRUNCATE pt_lo",
]


def part_of(k):
    return "pt_lo" if k < 100 else "pt_hi"


def row(i, k, v):
    return {"id": i, "k": k, "v": v}


def expected(via_root):
    """(op, table, old, new) of WORKLOAD's events, and the transaction
    (WORKLOAD's index) each is in."""
    name = (lambda k: "pt") if via_root else part_of
    want = [
        (0, "insert", name(10), None, row(1, 10, "a")),
        (0, "insert", name(150), None, row(2, 150, "b")),
        (1, "update", name(10), None, row(1, 10, "a2")),
        # The old key under REPLICA IDENTITY DEFAULT: the primary key.
        (2, "delete", name(10), {"id": 1, "k": 10}, None),
        (2, "insert", name(160), None, row(1, 160, "a2")),
        (3, "delete", name(150), {"id": 2, "k": 150}, None),
    ]
    want += [(4, "truncate", t, None, None)
             for t in (["pt"] if via_root else ["pt_lo", "pt_hi"])]
    want.append((5, "insert", name(20), None, row(3, 20, "c")))
    if not via_root:
        # pgoutput sends a partition's TRUNCATE only under its own name:
        # through the root, truncating one partition alone sends nothing.
        want.append((6, "truncate", "pt_lo", None, None))
    return want


def run(slot, pub, end, *args):
    p = PgStream(C, "--end-lsn", end, *args, slot=slot, pub=pub)
    try:
        assert p.run() == 0, p.stderr()
        return p.events()
    finally:
        p.close()


class Partitions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        C.sql("CREATE TABLE pt (id int, k int, v text, PRIMARY KEY (id, k))"
              " PARTITION BY RANGE (k)")
        C.sql("CREATE TABLE pt_lo PARTITION OF pt FOR VALUES FROM (0) TO (100)")
        # Made on its own and attached: its columns in another order.
        C.sql("CREATE TABLE pt_hi (v text, k int NOT NULL, id int NOT NULL)")
        C.sql("ALTER TABLE pt ATTACH PARTITION pt_hi FOR VALUES FROM (100) TO (1000)")
        C.sql("CREATE PUBLICATION pub_pt_leaf FOR TABLE pt")
        C.sql("CREATE PUBLICATION pub_pt_root FOR TABLE pt"
              " WITH (publish_via_partition_root = true)")
        for slot in ("s_pt_leaf", "s_pt_root", "s_pt_filter"):
            C.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        for stmt in WORKLOAD:
            C.sql(stmt)
        end = lsn_str(C.current_lsn())
        cls.events = {via_root: run("s_pt_" + ("root" if via_root else "leaf"),
                                    "pub_pt_" + ("root" if via_root else "leaf"), end)
                      for via_root in (False, True)}
        cls.filtered = run("s_pt_filter", "pub_pt_leaf", end, "--include-tables",
                           "public.pt_hi")

    @classmethod
    def tearDownClass(cls):
        # The matrix shares its cluster: leave no slots, and no tables for
        # its FOR ALL TABLES publication.
        for slot in ("s_pt_leaf", "s_pt_root", "s_pt_filter"):
            C.sql("SELECT pg_drop_replication_slot(%s)", (slot,))
        C.sql("DROP PUBLICATION pub_pt_leaf, pub_pt_root")
        C.sql("DROP TABLE pt")

    def check(self, via_root):
        evs = self.events[via_root]
        want = expected(via_root)
        self.assertEqual([(e["op"], e["schema"], e["table"], e.get("old"), e.get("new"))
                          for e in evs],
                         [(op, "public", t, old, new) for _, op, t, old, new in want])
        # One transaction per statement: an event's xid changes exactly
        # where its statement does.
        for (n, *_), (m, *_), a, b in zip(want, want[1:], evs, evs[1:]):
            self.assertEqual(a["xid"] == b["xid"], n == m, (a, b))
        for e in evs:
            if "new" in e:
                self.assertEqual(list(e["new"]),
                                 ["v", "k", "id"] if e["table"] == "pt_hi" else ["id", "k", "v"])

    def test_without_root_events_name_each_partition(self):
        self.check(via_root=False)

    def test_with_root_events_name_the_root(self):
        self.check(via_root=True)

    def test_moved_row_is_a_delete_then_an_insert(self):
        # Both publications alike: the DELETE (old key) before the INSERT
        # (whole new row), in one transaction, at increasing positions.
        for via_root, evs in self.events.items():
            moved = [e for e in evs if e["op"] in ("delete", "insert")
                     and (e.get("old") or e.get("new"))["id"] == 1][1:]
            self.assertEqual([e["op"] for e in moved], ["delete", "insert"], via_root)
            dele, ins = moved
            self.assertEqual(dele["xid"], ins["xid"])
            self.assertLess(lsn_int(dele["lsn"]), lsn_int(ins["lsn"]))
            self.assertEqual(dele["old"], {"id": 1, "k": 10})
            self.assertEqual(ins["new"], row(1, 160, "a2"))
            self.assertEqual((dele["table"], ins["table"]),
                             ("pt", "pt") if via_root else ("pt_lo", "pt_hi"))

    def test_filters_match_the_partition_name(self):
        # Without the root, --include-tables sees each partition's name.
        self.assertEqual([(e["op"], e["table"]) for e in self.filtered],
                         [(op, t) for _, op, t, _, _ in expected(False) if t == "pt_hi"])


if __name__ == "__main__":
    unittest.main()
