"""query-migrate on a QEMU that came in by migration and then failed to
migrate out: it reports the outgoing migration's error, once (found by the
soak on the ASan build: the report was copied twice and one copy leaked).

Firmware-only VMs: nothing here needs a guest kernel."""

import os

import pytest

import vlmtest as vt

pytestmark = pytest.mark.asan


def test_error_of_a_former_destination():
    with vt.Workdir() as wd:
        a = wd.add(vt.Guest(wd.path, "a", [], mem="128M", kernel=False))
        b = wd.add(vt.Guest(wd.path, "b", [], mem="128M", kernel=False,
                            incoming=True))
        info = vt.migrate(a, b, "unix:" + os.path.join(wd.path, "mig1"))
        assert info["status"] == "completed", info
        a.stop()
        # b, now the source, fails: its destination dies
        c = wd.add(vt.Guest(wd.path, "c", [], mem="128M", kernel=False,
                            incoming=True))
        b.cmd("migrate-set-parameters", **{"max-bandwidth": 8 << 20})
        vt.start_migration(b, c, "unix:" + os.path.join(wd.path, "mig2"))
        c.kill()
        info = vt.wait_migration(b)
        assert info["status"] == "failed", info
        assert info.get("error-desc"), info
        for _ in range(3):
            assert b.cmd("query-migrate")["error-desc"] == info["error-desc"]
        assert b.cmd("query-status")["status"] == "running"
        # The workdir fails the test on a sanitizer report at b's exit
