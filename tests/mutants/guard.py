#!/usr/bin/env python3
"""guard.py — the mutation guard: each known mutant (a small deliberate bug,
one *.mutant file here) is applied to a copy of the tree, that copy's
pgstream is built (plain build, only the pgstream target), and the tests
that must catch it are run against it. The guard fails if any mutant
survives: its tests pass, are skipped, or fail for another reason than the
one the mutant file expects.

    tests/mutants/run.sh [--runs N] [--baseline] [NAME...]

NAME selects mutants by file name (without .mutant). --runs N runs each
mutant's tests N times (each run must catch it). --baseline also runs the
same tests N times against the unmutated copy, which must pass.

A mutant file:

    # what it breaks, and the promise of the README it breaks
    file: src/daemon.c
    test: test_faults_sink.py StdoutStall          (one line per test run:
                                                    script and unittest names)
    expect: REGEX                                   (the failure must say this)
    --- old
    <exact text of the file, once>
    --- new
    <its replacement>
    --- end

The old text must occur exactly once in the file: a refactor that changes
it fails the guard loudly instead of silently disabling the mutant."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INTEGRATION = os.path.join(ROOT, "tests", "integration")
TEST_TIMEOUT = int(os.environ.get("PGSTREAM_MUTANT_TIMEOUT", "400"))


class Mutant:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)[:-len(".mutant")]
        self.file = None
        self.tests = []
        self.expect = None
        self.old = self.new = None
        self._parse()

    def _parse(self):
        with open(self.path) as f:
            lines = f.read().split("\n")
        section, old, new = None, [], []
        for line in lines:
            if line in ("--- old", "--- new", "--- end"):
                section = line[4:]
                continue
            if section == "old":
                old.append(line)
            elif section == "new":
                new.append(line)
            elif section == "end":
                continue
            elif line.startswith("#") or not line.strip():
                continue
            elif line.startswith("file: "):
                self.file = line[6:].strip()
            elif line.startswith("test: "):
                self.tests.append(line[6:].split())
            elif line.startswith("expect: "):
                self.expect = re.compile(line[8:].strip())
            else:
                raise SystemExit("%s: cannot read line %r" % (self.path, line))
        if section != "end" or not old or not self.file or not self.tests or not self.expect:
            raise SystemExit("%s: needs file:, test:, expect: and --- old/new/end" % self.path)
        self.old = "\n".join(old) + "\n"
        self.new = "\n".join(new) + "\n"


def copy_tree(dst):
    """The tree as it is on disk (tracked and untracked files, not ignored
    ones: no build directories)."""
    r = subprocess.run(["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard", "-z"],
                       capture_output=True)
    if r.returncode == 0:
        for rel in r.stdout.decode().split("\0"):
            if not rel or not os.path.isfile(os.path.join(ROOT, rel)):
                continue
            os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, rel), os.path.join(dst, rel))
    else:
        shutil.copytree(ROOT, dst, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", "build*"))


def build(tree):
    b = os.path.join(tree, "build")
    if not os.path.exists(os.path.join(b, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", tree, "-B", b, "-DPGSTREAM_TESTS=OFF",
                        "-DPGSTREAM_WERROR=OFF", "-DPGSTREAM_FUZZ=OFF"],
                       check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run(["cmake", "--build", b, "--target", "pgstream", "-j2"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("build failed:\n" + r.stdout[-3000:] + r.stderr[-3000:])
    return os.path.join(b, "pgstream")


def run_test(binary, test):
    """Run one test line against binary; returns (exit status or None on
    timeout, output)."""
    script, names = test[0], test[1:]
    env = dict(os.environ, PGSTREAM_BIN=binary)
    env.pop("PGSTREAM_SANITIZED", None)
    try:
        r = subprocess.run([sys.executable, os.path.join(INTEGRATION, script), "-v", *names],
                           cwd=INTEGRATION, env=env, capture_output=True, text=True,
                           timeout=TEST_TIMEOUT)
        return r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"") + (e.stderr or b"")
        return None, out.decode("utf-8", "replace") if isinstance(out, bytes) else out


def verdict(m, rc, out):
    """'caught', or why the mutant survived."""
    if re.search(r"^OK \(skipped=", out, re.M):
        return "survived: the tests were skipped"
    if rc == 0:
        return "survived: the tests passed"
    if rc is None:
        return "survived: the tests timed out after %d s" % TEST_TIMEOUT
    if not re.search(r"^(FAIL|ERROR): ", out, re.M):
        return "survived: the tests did not run (exit %s)" % rc
    if not m.expect.search(out):
        return "survived: the tests failed, but not with /%s/" % m.expect.pattern
    return "caught"


def main(argv):
    runs, baseline, names = 1, False, []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--runs":
            runs = int(args.pop(0))
        elif a == "--baseline":
            baseline = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            names.append(a)
    mutants = [Mutant(os.path.join(HERE, f)) for f in sorted(os.listdir(HERE))
               if f.endswith(".mutant")]
    if names:
        unknown = set(names) - {m.name for m in mutants}
        if unknown:
            raise SystemExit("no such mutant: %s" % ", ".join(sorted(unknown)))
        mutants = [m for m in mutants if m.name in names]
    t0 = time.time()
    tree = tempfile.mkdtemp(prefix="pgstream-mutants-")
    failures = []
    try:
        copy_tree(tree)
        # Every mutant must still apply before any is run.
        for m in mutants:
            with open(os.path.join(tree, m.file)) as f:
                n = f.read().count(m.old)
            if n != 1:
                failures.append("%s: its original text occurs %d times in %s (must be once): "
                                "update the mutant to the code" % (m.name, n, m.file))
        if failures:
            for f in failures:
                print("mutants: " + f, flush=True)
            return 1
        if baseline:
            binary = build(tree)
            for m in mutants:
                for k in range(runs):
                    for test in m.tests:
                        t = time.time()
                        rc, out = run_test(binary, test)
                        ok = rc == 0 and not re.search(r"^OK \(skipped=", out, re.M)
                        print("baseline %s: %s run %d: %s (%.0f s)" % (
                            m.name, " ".join(test), k + 1, "passed" if ok else "FAILED",
                            time.time() - t), flush=True)
                        if not ok:
                            failures.append("baseline for %s failed:\n%s" % (m.name, out[-4000:]))
        for m in mutants:
            path = os.path.join(tree, m.file)
            with open(path) as f:
                original = f.read()
            with open(path, "w") as f:
                f.write(original.replace(m.old, m.new))
            try:
                t = time.time()
                binary = build(tree)
                for k in range(runs):
                    for test in m.tests:
                        t = time.time()
                        rc, out = run_test(binary, test)
                        v = verdict(m, rc, out)
                        print("mutant %s: %s run %d: %s (%.0f s)" % (
                            m.name, " ".join(test), k + 1, v, time.time() - t), flush=True)
                        if v != "caught":
                            failures.append("%s %s" % (m.name, v))
                            print(out[-4000:], flush=True)
            finally:
                with open(path, "w") as f:
                    f.write(original)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    print("mutants: %d checked, %d problems, %.0f s" % (len(mutants), len(failures),
                                                        time.time() - t0), flush=True)
    for f in failures:
        print("mutants: " + f.split("\n")[0], flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
