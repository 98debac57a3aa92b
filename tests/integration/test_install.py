"""cmake --install: the binary, the man page, the systemd unit and the
sample settings file land under the prefix; the unit names the installed
binary and settings file and passes systemd-analyze verify (skipped, exit
77, where systemd-analyze is missing), while a unit naming a missing binary
does not; the man page lists every option --help lists; every setting the
sample names is one pgstream knows, and the sample as installed is read by
pgstream itself."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, Cluster, PgStream

BUILD = os.path.dirname(os.path.abspath(BIN))
UNIT = "lib/systemd/system/pgstream.service"


def read(path):
    with open(path) as f:
        return f.read()


def help_options():
    """(flags, environment variables) that pgstream --help lists."""
    text = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    return (set(re.findall(r"^  --([a-z0-9-]+)", text, re.M)),
            set(re.findall(r"\[([A-Z0-9_]+)\]", text)))


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="pgstream-install-")
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", cls.prefix],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.prefix, rel)

    def test_files_and_unit_paths(self):
        self.assertTrue(os.access(self.path("bin/pgstream"), os.X_OK))
        r = subprocess.run([self.path("bin/pgstream"), "--version"], capture_output=True,
                           text=True)
        self.assertRegex(r.stdout, r"^pgstream \d+\.\d+\.\d+\n$")
        unit = read(self.path(UNIT))
        self.assertIn("\nExecStart=%s --env-file /dev/null\n" % self.path("bin/pgstream"), unit)
        self.assertIn("\nEnvironmentFile=%s\n" % self.path("etc/pgstream/pgstream.env"), unit)
        self.assertIn("\nRestartPreventExitStatus=2\n", unit)
        self.assertIn("\nStateDirectory=pgstream\n", unit)
        # systemd keeps a comment after a value as part of it: none here.
        for line in unit.splitlines():
            if "=" in line and not line.startswith("#"):
                self.assertNotIn("#", line, line)
        self.assertTrue(os.path.isfile(self.path("etc/pgstream/pgstream.env.example")))

    def test_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if tool is None:
            self.skipTest("systemd-analyze not installed")
        env = dict(os.environ, MANPATH=self.path("share/man"))
        r = subprocess.run([tool, "verify", self.path(UNIT)], capture_output=True, text=True,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout + r.stderr, "")
        # The check can fail: the same unit naming a binary that is not there.
        bad_dir = tempfile.mkdtemp(prefix="pgstream-unit-")
        try:
            bad = os.path.join(bad_dir, "pgstream.service")
            with open(bad, "w") as f:
                f.write(read(self.path(UNIT)).replace(
                    self.path("bin/pgstream"), self.path("bin/pgstream-missing")))
            r = subprocess.run([tool, "verify", bad], capture_output=True, text=True, env=env)
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            shutil.rmtree(bad_dir)

    def test_man_page_lists_every_option(self):
        page = read(self.path("share/man/man1/pgstream.1"))
        self.assertTrue(page.startswith(".TH PGSTREAM 1 "), page[:80])
        flags, envs = help_options()
        self.assertGreater(len(flags), 25)
        for flag in flags:
            self.assertIn("\\-\\-" + flag.replace("-", "\\-"), page, flag)
        for env in envs:
            self.assertIn(env, page, env)
        if shutil.which("man"):
            r = subprocess.run(["man", "-l", self.path("share/man/man1/pgstream.1")],
                               capture_output=True, text=True, env=dict(os.environ, MANWIDTH="100"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("--metrics-addr HOST:PORT", r.stdout)
            self.assertIn("EXIT STATUS", r.stdout)

    def test_sample_settings_are_pgstreams(self):
        _, envs = help_options()
        sample = read(self.path("etc/pgstream/pgstream.env.example"))
        keys = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", sample, re.M)
        self.assertIn("DATABASE_URL", keys)
        for k in keys:
            self.assertIn(k, envs, k)
        for line in sample.splitlines():  # systemd's EnvironmentFile rules
            if line and not line.startswith("#"):
                self.assertRegex(line, r"^[A-Z_]+=[^#\s]+$")

    def test_sample_is_read_by_pgstream(self):
        """The sample's settings, pointed at a scratch server, stream."""
        c = Cluster()
        try:
            c.sql("CREATE PUBLICATION pgstream_pub FOR ALL TABLES")
            c.sql("CREATE TABLE inst (id int PRIMARY KEY)")
            work = tempfile.mkdtemp(prefix="pgstream-sample-")
            env = {}
            for line in read(self.path("etc/pgstream/pgstream.env.example")).splitlines(True):
                if line.strip() and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    env[k] = v
            env["DATABASE_URL"] = c.url()
            env["OUTPUT"] = os.path.join(work, "events.jsonl")
            env["METRICS_ADDR"] = "127.0.0.1:0"
            p = PgStream(c, slot=env["SLOT_NAME"], pub=env["PUBLICATION_NAME"], env=env)
            p.argv = [self.path("bin/pgstream"), "--env-file", "/dev/null"]
            p.env = dict({k: v for k, v in os.environ.items() if k not in env}, **env)
            try:
                p.start()
                p.wait_stderr("listening for changes")
                c.sql("INSERT INTO inst VALUES (1)")
                p.wait_for(lambda: os.path.exists(env["OUTPUT"]) and
                           '"table":"inst"' in read(env["OUTPUT"]),
                           what="the event in OUTPUT")
                self.assertIn("metrics on http://127.0.0.1:", p.stderr())
                self.assertEqual(p.stop(), 0, p.stderr())
            finally:
                p.close()
                shutil.rmtree(work, ignore_errors=True)
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main()
