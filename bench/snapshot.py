#!/usr/bin/env python3
"""The snapshot benchmark (issue 14): reading a table's existing rows.

Contenders, run interleaved in each repetition against the same table (the
reference workload's bench_orders, filled with N rows by the workload's own
INSERT):

  copy       psql -c "COPY bench_orders TO STDOUT" > /dev/null: the server's
             raw text, no JSON - the floor
  pg_dump    pg_dump --data-only -t bench_orders > /dev/null
  pgstream/W pgstream --snapshot initial_only --snapshot-workers W > /dev/null
             (JSON, one read event per row), for W in --workers

Each run is timed as a whole process (wall clock, the client's CPU, peak
RSS from /usr/bin/time); pgstream's figure includes creating and dropping
its temporary slot. The table is VACUUM ANALYZEd first, so its pages are
in shared buffers or the page cache for every contender alike (the first,
warming, run is not counted). Prints a table and writes
bench/results/snapshot-<timestamp>.json.

  bash bench/run.sh --snapshot [N] [--reps R] [--workers 1,2,4] [--smoke]
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import bench

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(argv, env=None):
    """(wall s, user+sys s, peak RSS kB, stdout bytes) of argv, stdout counted."""
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-f", "TIME %e %U %S %M", *argv],
                           stdout=subprocess.PIPE, stderr=err, env=env)
        wall = time.monotonic() - t0
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    if p.returncode != 0:
        bench.die("%s failed (%d): %s" % (argv[0], p.returncode, text[-2000:]))
    m = re.search(r"TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", text)
    return {"wall": wall, "cpu": float(m.group(2)) + float(m.group(3)),
            "rss_kb": int(m.group(4)), "bytes": len(p.stdout), "lines": p.stdout.count(b"\n"),
            "stderr": text}


def on_demand(server, binary, n, chunk_rows):
    """An on-demand snapshot of bench_orders while pgstream streams, with a
    writer committing 200 small transactions a second to another table:
    the snapshot's rate (pgstream's own 'done' line) and the stream's
    latency meanwhile (commit_time to the moment the event is read)."""
    server.sql("DROP TABLE IF EXISTS bench_ticks")
    server.sql("CREATE TABLE bench_ticks (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
    server.sql("ALTER PUBLICATION bench_snap ADD TABLE bench_ticks")
    server.create_slot("bench_ondemand", "pgoutput")
    p = subprocess.Popen([binary, "--database-url", server.tcp, "--publication", "bench_snap",
                          "--slot", "bench_ondemand", "--format", "json", "--env-file", "/dev/null",
                          "--snapshot-chunk-rows", str(chunk_rows)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stop = []
    lat, reads = [], 0

    def writer():
        conn = server.connect()
        with conn.cursor() as cur:
            while not stop:
                cur.execute("INSERT INTO bench_ticks DEFAULT VALUES")
                time.sleep(0.005)
        conn.close()

    import threading
    t = threading.Thread(target=writer)
    try:
        time.sleep(1)
        t.start()
        subprocess.run([binary, "snapshot", "--database-url", server.tcp, "--slot",
                        "bench_ondemand", "--table", "public.bench_orders", "--env-file",
                        "/dev/null"], check=True, stdout=subprocess.DEVNULL)
        for line in p.stdout:
            ev = json.loads(line)
            if ev["op"] == "read":
                reads += 1
                if reads == n:
                    break
            elif ev["op"] == "insert" and ev["table"] == "bench_ticks" and reads > 0:
                committed = datetime.datetime.fromisoformat(ev["commit_time"].replace("Z", "+00:00"))
                lat.append(time.time() - committed.timestamp())
    finally:
        stop.append(1)
        if t.is_alive():
            t.join()
        p.terminate()
        err = p.communicate(timeout=60)[1].decode()
        server.drop_slot("bench_ondemand")
    m = re.search(r"done: (\d+) rows in (\d+) chunks, ([\d.]+) s", err)
    if not m or reads != n:
        bench.die("on-demand snapshot: %d reads of %d; stderr:\n%s" % (reads, n, err[-2000:]))
    lat.sort()
    secs = float(m.group(3))
    return {"rows": int(m.group(1)), "chunks": int(m.group(2)), "seconds": secs,
            "rows_per_s": int(m.group(1)) / secs if secs else None,
            "latency_p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
            "latency_p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
            "latency_samples": len(lat)}


def main():
    ap = argparse.ArgumentParser(description="pgstream snapshot benchmark")
    ap.add_argument("n", nargs="?", type=int, default=1000000, help="rows in the table")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--chunk-rows", type=int, default=1024, help="on-demand snapshot chunk")
    ap.add_argument("--smoke", action="store_true", help="N=20000, 1 repetition, counts only")
    ap.add_argument("--bin", default=os.environ.get("PGSTREAM_BIN"))
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    if args.smoke:
        args.n, args.reps = 20000, 1
    workers = [int(w) for w in args.workers.split(",")]
    server = bench.Server(os.environ.get("DATABASE_URL"))
    try:
        workload = os.environ.get("PGSTREAM_WORKLOAD", os.path.join(HERE, "workload"))
        server.psql("-f", os.path.join(workload, "schema.sql"))
        # The workload's INSERT alone: its first statement.
        with open(os.path.join(workload, "workload.sql")) as f:
            sql = f.read()
        insert = sql[sql.index("INSERT INTO bench_orders"):].split(";", 1)[0]
        server.sql(insert.replace(":n", str(args.n)))
        server.psql("-c", "VACUUM ANALYZE bench_orders")
        server.sql("DROP PUBLICATION IF EXISTS bench_snap")
        server.sql("CREATE PUBLICATION bench_snap FOR TABLE bench_orders")
        size = server.value("SELECT pg_size_pretty(pg_table_size('bench_orders'))")
        url = server.tcp
        contenders = [("copy", [bench.pgbin("psql"), "-X", "-q", "-d", url, "-c",
                                "COPY bench_orders TO STDOUT"]),
                      ("pg_dump", [bench.pgbin("pg_dump"), "--data-only", "-t", "bench_orders",
                                   "-d", url])]
        for w in workers:
            contenders.append(("pgstream/%d" % w,
                               [args.bin, "--database-url", url, "--publication", "bench_snap",
                                "--slot", "bench_snap", "--snapshot", "initial_only",
                                "--snapshot-workers", str(w), "--format", "json",
                                "--env-file", "/dev/null"]))
        runs = {name: [] for name, _ in contenders}
        for _, argv in contenders[:1]:
            timed(argv)  # warm the caches
        for rep in range(args.reps):
            for name, argv in contenders:
                r = timed(argv)
                if name.startswith("pgstream") and r["lines"] != args.n:
                    bench.die("%s emitted %d events, expected %d" % (name, r["lines"], args.n))
                if name == "copy" and r["lines"] != args.n:
                    bench.die("copy gave %d rows, expected %d" % (r["lines"], args.n))
                del r["stderr"]
                runs[name].append(r)
                bench.log("rep %d %-11s %.2f s, %d kB" % (rep + 1, name, r["wall"], r["rss_kb"]))
        med = {name: {k: bench.median([r[k] for r in rs]) for k in ("wall", "cpu", "rss_kb",
                                                                     "bytes")}
               for name, rs in runs.items()}
        copy_rate = args.n / med["copy"]["wall"]
        print("\nsnapshot of bench_orders: %d rows, %s on disk; median of %d runs\n"
              % (args.n, size, args.reps))
        print("%-12s %10s %12s %9s %10s %10s" % ("contender", "seconds", "rows/s", "vs COPY",
                                                "CPU s", "peak RSS"))
        for name, m in med.items():
            rate = args.n / m["wall"]
            print("%-12s %10.2f %12s %8.2fx %10.2f %7.1f MB"
                  % (name, m["wall"], "{:,.0f}".format(rate), rate / copy_rate, m["cpu"],
                     m["rss_kb"] / 1024))
        od = on_demand(server, args.bin, args.n, args.chunk_rows)
        print("\non-demand snapshot while streaming (chunks of %d rows): %d rows in %d chunks, "
              "%.1f s, %s rows/s; stream latency meanwhile p50 %.1f ms, p99 %.1f ms (%d samples)"
              % (args.chunk_rows, od["rows"], od["chunks"], od["seconds"],
                 "{:,.0f}".format(od["rows_per_s"] or 0), od["latency_p50_ms"] or -1,
                 od["latency_p99_ms"] or -1, od["latency_samples"]))
        one = med.get("pgstream/1")
        if one:
            print("\nparallel speedup: " + ", ".join(
                "%d workers %.2fx" % (w, one["wall"] / med["pgstream/%d" % w]["wall"])
                for w in workers))
        os.makedirs(args.results, exist_ok=True)
        out = os.path.join(args.results, time.strftime("snapshot-%Y%m%dT%H%M%S.json"))
        with open(out, "w") as f:
            json.dump({"n": args.n, "reps": args.reps, "table_size": size, "runs": runs,
                       "medians": med, "on_demand": od, "machine": bench.machine(server)}, f, indent=1)
        bench.log("results in %s" % out)
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main())
