# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers for the functional tests: where the binaries are, running them, the corpus."""
import fcntl
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REF_BIN = os.environ.get("THINMETA_REF_BIN", "/usr/sbin")


def our_bin():
    return os.environ.get("THINMETA_BIN", os.path.join(HERE, "..", "..", "build", "bin"))


def work_dir():
    d = os.environ.get("THINMETA_WORK", os.path.join(HERE, "..", "..", "build", "functional"))
    os.makedirs(d, exist_ok=True)
    return d


def ours(tool):
    return os.path.join(our_bin(), tool)


def ref(tool):
    p = os.path.join(REF_BIN, tool)
    if not os.path.exists(p):
        sys.exit(f"FAIL: reference tool {p} is missing (install thin-provisioning-tools: scripts/setup.sh)")
    return p


def sanitized():
    """True when the tools under test are a sanitizer build ($THINMETA_SANITIZER set, as
    tests/tsan/run.sh does): their runtime reserves terabytes of address space at start, so
    they cannot run under an address-space limit (ulimit -v)."""
    return bool(os.environ.get("THINMETA_SANITIZER"))


def run(argv, stdin=None, check=False, env=None):
    """Runs argv (env: extra environment variables); returns (exit code, stdout, stderr)."""
    full_env = dict(os.environ, **env) if env else None
    p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=full_env)
    if check and p.returncode != 0:
        raise RuntimeError(f"{argv} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return p.returncode, p.stdout, p.stderr


class Failures:
    """Collects failures so one run reports all of them; exit status 1 if any."""

    def __init__(self, name):
        self.name = name
        self.failed = []
        self.passed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed.append(what)
            print(f"FAIL: {what}", flush=True)

    def finish(self):
        print(f"{self.name}: {self.passed} checks passed, {len(self.failed)} failed")
        sys.exit(1 if self.failed else 0)


def corpus():
    """Returns [(name, xml_path, bin_path)], generating and restoring it (with the reference
    thin_restore) once per build directory."""
    import corpus as c
    d = os.path.join(work_dir(), "corpus")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return c.build(d, ref("thin_restore"))
