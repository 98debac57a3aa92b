"""Bad configuration, from every source: each mistake gives one clear line
on stderr naming what is wrong, nothing on stdout, and a non-zero exit -
before any connection is tried (usage errors exit 2) or at the first one
(a URL libpq cannot parse, exit 1)."""

import os
import subprocess
import tempfile
import unittest

from harness import BIN, assert_refused

# flag → invalid values (each must be refused on its own).
INVALID = {
    "--database-url": [""],
    "--slot": ["", "UPPER", "has-dash", "x" * 64, "sp ace", "semi;colon"],
    "--publication": [""],
    "--format": ["", "xml", "JSON "],
    "--output": [""],
    "--fsync": ["maybe", "2"],
    "--start-lsn": ["", "12", "0/", "/1", "G/0", "0/1/2", "123456789/0"],
    "--end-lsn": ["", "zz", "-1/0"],
    "--status-interval": ["", "0", "-1", "abc", "1e9", "nan", "inf"],
    "--reconnect-max-delay": ["", "0", "-5", "x"],
    "--wal-receiver-timeout": ["", "0", "later"],
    "--read-delay-us": ["", "-1", "1.5", "100001", "1e3", "0x10", "99999999999999999999"],
    "--streaming": ["perhaps"],
    "--origin": ["", "local", "none ", "NONE"],
    "--invalid-utf8": ["", "ignore", "REPLACE", "fail "],
    "--temporary-slot": ["nope"],
    "--create-publication": ["sure"],
    "--tables": [""],
    "--allow-no-replica-identity": ["maybe"],
    "--log-level": ["", "verbose", "INFO1"],
    "--env-file": ["", "/nonexistent/dir/.env"],
    "--snapshot": ["", "always", "INITIAL", "initial "],
    "--snapshot-workers": ["", "0", "65", "-1", "two", "1.5"],
    "--snapshot-chunk-pages": ["", "-1", "x", "1e3"],
    "--snapshot-chunk-rows": ["", "0", "100001", "ten"],
    "--table": [""],
    "--include-tables": ["", "users", "public.a,,public.b", " , "],
    "--exclude-tables": ["", "nodot"],
    "--exclude-columns": ["", "table.column", "public.t.c,"],
    "--mask-columns": ["", "a.b"],
    "--mask-secret": [""],
    "--allow-key-filter": ["maybe"],
    "--time-format": ["", "iso", "RFC3339"],
    "--numeric": ["", "float", "String"],
    "--unchanged-toast": ["", "drop", "null"],
    "--unavailable-value-placeholder": [""],
    "--tx-events": ["sometimes"],
    "--debezium-time-precision": ["", "micro", "Connect"],
    "--debezium-interval": ["", "iso"],
    "--debezium-schemas": ["yes please"],
}

ENV_NAMES = {
    "--slot": "SLOT_NAME", "--format": "FORMAT", "--start-lsn": "START_LSN",
    "--status-interval": "STATUS_INTERVAL", "--log-level": "LOG_LEVEL",
    "--fsync": "FSYNC", "--streaming": "STREAMING", "--origin": "ORIGIN",
    "--time-format": "TIME_FORMAT", "--numeric": "NUMERIC", "--unchanged-toast": "UNCHANGED_TOAST",
    "--tx-events": "TX_EVENTS",
}


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SLOT_NAME", "PUBLICATION_NAME", "FORMAT", "ENV_FILE")}
    env.update(extra)
    return env


def run(args, env=None, cwd=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30,
                          env=env or clean_env(), cwd=cwd)


class ConfigMatrix(unittest.TestCase):
    def assert_refused(self, p, mention, status=2):
        assert_refused(self, p, mention, status)

    def test_every_flag_with_invalid_values(self):
        checked = 0
        for flag, values in INVALID.items():
            for value in values:
                with self.subTest(flag=flag, value=value):
                    mention = flag
                    if flag == "--env-file" and value:
                        mention = "could not open"
                    self.assert_refused(run(["--env-file", "/dev/null", flag + "=" + value]),
                                        mention)
                    checked += 1
        print("config matrix: %d invalid flag values refused" % checked)

    def test_same_values_from_environment(self):
        for flag, name in ENV_NAMES.items():
            with self.subTest(env=name):
                p = run(["--env-file", "/dev/null"],
                        env=clean_env(**{name: INVALID[flag][-1]}))
                self.assert_refused(p, "environment variable for " + flag)

    def test_same_values_from_dotenv(self):
        with tempfile.TemporaryDirectory() as d:
            for flag, name in ENV_NAMES.items():
                with self.subTest(dotenv=name):
                    with open(os.path.join(d, ".env"), "w") as f:
                        f.write("# settings\n%s=%s\n" % (name, INVALID[flag][-1]))
                    self.assert_refused(run([], cwd=d), ".env line 2")

    def test_unknown_flags_and_arguments(self):
        self.assert_refused(run(["--nope"]), 'unknown option "--nope"')
        self.assert_refused(run(["--slots=x"]), 'unknown option "--slots"')
        self.assert_refused(run(["-x"]), 'unexpected argument "-x"')
        self.assert_refused(run(["positional"]), 'unexpected argument "positional"')
        self.assert_refused(run(["--slot"]), "needs a value")

    def test_conflicting_options(self):
        base = ["--env-file", "/dev/null"]
        self.assert_refused(run(base + ["--start-lsn=0/2", "--end-lsn=0/1"]),
                            "--end-lsn is before --start-lsn")
        self.assert_refused(run(base + ["--tables=a"]), "--tables needs --create-publication")
        self.assert_refused(run(base + ["--temporary-slot", "--start-lsn=0/1"]),
                            "cannot be used with --temporary-slot")
        self.assert_refused(run(base + ["--status-interval=30", "--wal-receiver-timeout=20"]),
                            "--wal-receiver-timeout must be longer")
        self.assert_refused(run(base + ["--format=json", "--debezium-schemas"]),
                            "--debezium-schemas needs --format debezium")

    def test_unreadable_or_malformed_dotenv(self):
        with tempfile.TemporaryDirectory() as d:
            self.assert_refused(run(["--env-file", d]), "could not read " + d)
            bad = os.path.join(d, "bad.env")
            with open(bad, "w") as f:
                f.write("SLOT_NAME=ok\nthis line has no equals sign\n")
            self.assert_refused(run(["--env-file", bad]), "line 2 is not KEY=VALUE")

    def test_malformed_urls(self):
        # What libpq cannot parse is a usage error, found before connecting.
        for url in ("postgres://[::1", "host=x port", "postgres://h/db?nosuchoption=1"):
            with self.subTest(url=url):
                p = run(["--env-file", "/dev/null", "--database-url", url])
                self.assert_refused(p, "invalid value for --database-url")
        # What it parses but refuses to use fails at the first connection.
        for url in ("postgresql://127.0.0.1:notaport/db", "postgres://h/db?sslmode=sometimes"):
            with self.subTest(url=url):
                p = run(["--env-file", "/dev/null", "--database-url", url])
                self.assertEqual(p.returncode, 1, p.stderr)
                errors = [l for l in p.stderr.splitlines() if l.startswith("pgstream: ")]
                self.assertEqual(len(errors), 1, p.stderr)
                self.assertIn("could not connect", errors[0])

    def test_password_in_bad_url_not_echoed(self):
        p = run(["--env-file", "/dev/null", "--database-url",
                 "postgres://u:hunter2-secret@127.0.0.1:1/db?sslmode=sometimes"])
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn("hunter2-secret", p.stderr)


if __name__ == "__main__":
    unittest.main()
