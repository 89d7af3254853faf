"""The series tooling: round trip, and broken patches named by the checks."""

import os
import re
import shutil
import subprocess

import pytest

from vlmtest import TOP

SCRIPTS = os.path.join(TOP, "scripts")


def sh(script, *args, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([os.path.join(SCRIPTS, script)] + list(args), env=e,
                       capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s failed:\n%s%s" % (script, r.stdout, r.stderr))
    return r


def series(d):
    with open(os.path.join(d, "series")) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


@pytest.fixture
def scratch(tmp_path):
    """A work tree and a copy of patches/ outside the developer's tree."""
    pdir = tmp_path / "patches"
    shutil.copytree(os.path.join(TOP, "patches"), pdir)
    env = {"PATCH_DIR": str(pdir), "WORK_TREE": str(tmp_path / "qemu")}
    return tmp_path, pdir, env


@pytest.fixture
def short_scratch(scratch):
    """scratch with the series cut to its first two patches: the checks
    that must name a broken patch at the end do not need the rest, and
    each of them (checkpatch, applying) costs a second or more a patch."""
    tmp, pdir, env = scratch
    keep = series(pdir)[:2]
    for p in pdir.glob("*.patch"):
        if p.name not in keep:
            p.unlink()
    with open(pdir / "series", "w") as f:
        f.write("".join(n + "\n" for n in keep))
    return scratch


def test_round_trip(scratch):
    tmp, pdir, env = scratch
    sh("worktree.sh", "--force", env=env)
    out = tmp / "exported"
    sh("export.sh", str(out), env=env)
    r = subprocess.run(["diff", "-r", str(pdir), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    # The work tree holds one commit per patch on top of the base.
    n = subprocess.run(["git", "-C", env["WORK_TREE"], "rev-list", "--count",
                        "vlm-base..HEAD"], capture_output=True, text=True, check=True)
    assert int(n.stdout) == len(series(pdir))
    assert sh("status.sh", env=env).returncode == 0


def test_status_sees_unexported_work(scratch):
    tmp, pdir, env = scratch
    wt = env["WORK_TREE"]
    sh("worktree.sh", "--force", env=env)
    with open(os.path.join(wt, "README.rst"), "a") as f:
        f.write("\nlocal change\n")
    r = sh("status.sh", env=env, check=False)
    assert r.returncode != 0 and "uncommitted" in r.stdout
    subprocess.run(["git", "-C", wt, "commit", "-qam", "docs: local change\n\n"
                    "Signed-off-by: T <t@example.org>"], check=True)
    r = sh("status.sh", env=env, check=False)
    assert r.returncode != 0 and "differ" in r.stdout
    sh("export.sh", env=env)
    assert sh("status.sh", env=env).returncode == 0
    assert series(pdir)[-1].endswith("docs-local-change.patch")


def add_patch(pdir, name, text):
    with open(os.path.join(pdir, name), "w") as f:
        f.write(text)
    with open(os.path.join(pdir, "series"), "a") as f:
        f.write(name + "\n")


BAD_CONTEXT = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: T <t@example.org>
Date: Mon, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH] virtio: a patch against code that is not there

Signed-off-by: T <t@example.org>
---
 hw/virtio/virtio.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/hw/virtio/virtio.c b/hw/virtio/virtio.c
--- a/hw/virtio/virtio.c
+++ b/hw/virtio/virtio.c
@@ -1,3 +1,3 @@
 this line
-is not
+was never
 in the file
"""

BAD_STYLE = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: T <t@example.org>
Date: Mon, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH] virtio: badly styled code

Signed-off-by: T <t@example.org>
---
 hw/virtio/vlm-style.c | 4 ++++
 1 file changed, 4 insertions(+)
 create mode 100644 hw/virtio/vlm-style.c

diff --git a/hw/virtio/vlm-style.c b/hw/virtio/vlm-style.c
new file mode 100644
--- /dev/null
+++ b/hw/virtio/vlm-style.c
@@ -0,0 +1,4 @@
+int f(int x) {
+\tif (x) return 1;
+    return 0;
+}
"""


def test_patch_that_does_not_apply_is_named(short_scratch):
    tmp, pdir, env = short_scratch
    add_patch(pdir, "9999-bad-context.patch", BAD_CONTEXT)
    # The test command's series suite prints worktree.sh's error, which
    # names the patch (one run: each application copies and commits the
    # whole base first).
    e = dict(os.environ, PATCH_DIR=str(pdir), WORK_TREE=str(tmp / "qemu"),
             SUITES="series", VLM_LOGDIR=str(tmp / "logs"))
    r = subprocess.run([os.path.join(TOP, "tests", "run.sh")], env=e,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "9999-bad-context.patch does not apply" in r.stdout, r.stdout
    # The total line: "N passed, M failed in S s", with M > 0.
    assert re.fullmatch(r"\d+ passed, [1-9]\d* failed in \d+ s",
                        r.stdout.strip().splitlines()[-1])


def test_checkpatch_failure_is_named(short_scratch):
    tmp, pdir, env = short_scratch
    add_patch(pdir, "9999-bad-style.patch", BAD_STYLE)
    r = sh("checkpatch.sh", env=env, check=False)
    assert r.returncode != 0
    assert "FAIL 9999-bad-style.patch" in r.stdout
    assert "checkpatch failed for: 9999-bad-style.patch" in r.stderr


def test_unlisted_patch_is_an_error(short_scratch):
    tmp, pdir, env = short_scratch
    with open(os.path.join(pdir, "9999-stray.patch"), "w") as f:
        f.write(BAD_STYLE)
    r = sh("checkpatch.sh", env=env, check=False)
    assert r.returncode != 0 and "not listed in patches/series" in r.stdout


def report(kind, path):
    r = subprocess.run([os.path.join(TOP, "tests", "report.py"), kind, str(path)],
                       capture_output=True, text=True, check=True)
    return tuple(int(n) for n in r.stdout.split())


def test_report_reads_tap(tmp_path):
    """run.sh's counts of TAP output: SKIP and TODO directives, Bail out!"""
    p = tmp_path / "t.tap"
    p.write_text("1..5\nok 1 /a\nnot ok 2 /b\nok 3 /c # SKIP no binary\n"
                 "not ok 4 /d # TODO not yet\n# ok 9 a comment\nBail out! died\n")
    assert report("tap", p) == (2, 2, 1)


def test_report_reads_junit(tmp_path):
    """run.sh's counts of a pytest run come from its JUnit report."""
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_ok():\n    pass\n"
        "def test_bad():\n    assert False\n"
        "@pytest.mark.skip\ndef test_skipped():\n    pass\n"
        "def test_error(missing_fixture):\n    pass\n")
    xml = tmp_path / "r.xml"
    subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "--junitxml", str(xml), str(tmp_path / "test_x.py")],
                   capture_output=True, cwd=tmp_path)
    assert report("junit", xml) == (1, 2, 1)
