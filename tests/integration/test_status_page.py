"""The status page at / of --metrics-addr, loaded in headless Chromium
(Debian's chromium; skipped, exit 77, without it) during a run: it shows
the slot, the state, an events-per-second figure for the table being
written that moves between two loads, the lag charts, and after a server
restart the error in its list of last errors. The page fetches nothing
but its own /status.json. A screenshot is kept as a test artifact
(test-artifacts/status-page-<binary>.png beside the pgstream binary: the
plain and the ASan run go side by side, and one file for both let one
run's unlink take away the other's screenshot)."""

import html.parser
import os
import re
import shutil
import subprocess
import threading
import time
import unittest
import urllib.request

from harness import BIN, Cluster, PgStream, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
C = None


def setUpModule():
    global C
    if CHROMIUM is None:
        raise unittest.SkipTest("chromium not installed (apt-get install chromium)")
    C = Cluster()
    C.sql("CREATE TABLE st_page (id serial PRIMARY KEY, v text)")
    C.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")


def tearDownModule():
    if C:
        C.close()


def chromium(url, *args):
    """The page's DOM after its script ran (3 s of page time), or with
    --screenshot the tool's output."""
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--virtual-time-budget=3000", *args, url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


class Dom(html.parser.HTMLParser):
    """Text by element id, and the cells of each table row by data-table."""

    def __init__(self, text):
        super().__init__()
        self.by_id, self.rows, self.stack, self.row, self.items = {}, {}, [], None, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.stack.append(a.get("id"))
        if tag == "tr" and "data-table" in a:
            self.row = a["data-table"]
            self.rows[self.row] = []
        if tag == "li":
            self.items.append("")

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()
        if tag == "tr":
            self.row = None

    def handle_data(self, data):
        for i in self.stack:
            if i:
                self.by_id[i] = self.by_id.get(i, "") + data
        if self.row is not None and data.strip():
            self.rows[self.row].append(data.strip())
        if self.items and "errors" in self.stack:
            self.items[-1] += data


class StatusPage(unittest.TestCase):
    def test_page_in_chromium(self):
        port = free_port()
        url = "http://127.0.0.1:%d/" % port
        p = PgStream(C, "--metrics-addr", "127.0.0.1:%d" % port, "--status-interval", "1",
                     "--reconnect-max-delay", "1", slot="s_page")
        stop = threading.Event()

        def writer():
            while not stop.is_set():
                try:
                    conn = C.connect()
                    conn.cursor().execute("INSERT INTO st_page (v) SELECT 'x' FROM "
                                          "generate_series(1, 5)")
                    conn.close()
                except Exception:
                    pass  # the restart below
                time.sleep(0.05)
        t = threading.Thread(target=writer)
        try:
            p.start()
            p.wait_stderr("listening for changes")
            page = urllib.request.urlopen(url, timeout=5).read().decode()
            # Nothing from elsewhere: no src or href, one fetch of its own data.
            self.assertIsNone(re.search(r"\b(src|href)\s*=", page))
            self.assertEqual(re.findall(r"fetch\('([^']*)'", page), ["status.json"])
            t.start()
            time.sleep(3)
            first = Dom(chromium(url, "--dump-dom"))
            self.assertEqual(first.by_id.get("slot"), "s_page")
            self.assertEqual(first.by_id.get("state"), "streaming")
            self.assertTrue(first.by_id.get("health", "").startswith("ok: streaming"),
                            first.by_id)
            cells = first.rows.get("public.st_page")
            self.assertIsNotNone(cells, first.rows)
            self.assertGreater(float(cells[1]), 0)  # events/s
            time.sleep(2)
            second = Dom(chromium(url, "--dump-dom"))
            cells2 = second.rows["public.st_page"]
            self.assertGreater(float(cells2[1]), 0)
            self.assertGreater(int(cells2[2]), int(cells[2]))  # the total moved on
            art = os.path.join(os.path.dirname(os.path.abspath(BIN)), "test-artifacts")
            os.makedirs(art, exist_ok=True)
            shot = os.path.join(art, "status-page-%s.png" % os.path.basename(BIN))
            if os.path.exists(shot):
                os.unlink(shot)
            chromium(url, "--window-size=1200,800", "--screenshot=" + shot)
            with open(shot, "rb") as f:
                png = f.read()
            self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
            self.assertGreater(len(png), 10000)
            # A server restart: the error pgstream logged is listed, streaming resumes.
            C.restart()
            p.wait_stderr("reconnecting in")
            p.wait_for(lambda: p.stderr().count("listening for changes") >= 2,
                       what="the reconnect")
            why = re.search(r"reconnecting in \d+ s: (.*)", p.stderr()).group(1)
            third = Dom(chromium(url, "--dump-dom"))
            self.assertTrue(any(i.endswith(" " + why) for i in third.items), (why, third.items))
            self.assertEqual(third.by_id.get("state"), "streaming")
            stop.set()
            t.join()
            self.assertEqual(p.stop(), 0, p.stderr())
        finally:
            stop.set()
            if t.is_alive():
                t.join()
            p.close()


if __name__ == "__main__":
    unittest.main()
