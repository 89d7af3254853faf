"""Migrating between the processes: over a socket, to and from a file."""

from .process import TestError, wait_for

ENDED = ("completed", "failed", "cancelled")


def set_capabilities(caps, *procs):
    for c in caps:
        for p in procs:
            p.cmd("migrate-set-capabilities",
                  capabilities=[{"capability": c, "state": True}])


def wait_migration(p, timeout=120, what="migration"):
    """query-migrate of p once its migration has ended, whichever way."""
    def ended():
        info = p.cmd("query-migrate")
        return info if info.get("status") in ENDED else None
    return wait_for(ended, timeout, what, interval=0.1)


def start_migration(src, dst, uri, caps=(), exit_on_error=None):
    """Start migrating src to dst (started with -incoming defer)."""
    set_capabilities(caps, src, dst)
    args = {} if exit_on_error is None else {"exit-on-error": exit_on_error}
    dst.cmd("migrate-incoming", uri=uri, **args)
    src.cmd("migrate", uri=uri)


def migrate(src, dst, uri, timeout=120, caps=(), exit_on_error=None):
    """Migrate src to dst; return the source's query-migrate."""
    start_migration(src, dst, uri, caps, exit_on_error)
    return wait_migration(src, timeout)


def migrate_to_file(src, path, timeout=60):
    """Save src's state to path; raise if the migration did not complete."""
    src.cmd("migrate", uri="file:" + path)
    info = wait_migration(src, timeout, "migration to file")
    if info["status"] != "completed":
        raise TestError("%s: migration to %s %s: %s" % (
            src.name, path, info["status"], info.get("error-desc", "")))
    return info


def load_from_file(dst, path, timeout=60):
    """Load path into dst (started with -incoming defer), keeping dst alive
    if the load fails; return dst's query-migrate once it has ended."""
    dst.cmd("migrate-incoming", uri="file:" + path, **{"exit-on-error": False})
    return wait_migration(dst, timeout, "incoming migration")


def load_result(dst, path, timeout=60):
    """Load path into dst as load_from_file() does, then stop dst; return
    (status, the error and dst's log, whether dst was still alive).  A
    sanitizer report in the log fails the caller."""
    info = load_from_file(dst, path, timeout)
    alive = dst.alive()
    dst.stop()
    log = dst.log()
    assert "Sanitizer" not in log, log
    return info["status"], info.get("error-desc", "") + "\n" + log, alive
