# virtio-lm: a QEMU 10.2.2 patch series.  See README.md.
.PHONY: all deps base worktree build guest virtiofsd demo check export status checkpatch each-commit fuzz soak clean bench

all: build

deps:
	@scripts/deps.sh

base: deps
	@scripts/base.sh

worktree: base
	@scripts/worktree.sh

build: worktree
	@scripts/build.sh

guest: deps
	@scripts/guest.sh

# The real vhost-user-fs back-end (virtiofsd 1.13.2, built from Debian's
# crates) for the virtiofs migration tests.
virtiofsd: deps
	@scripts/virtiofsd.sh

# The main job: set up, build, and live-migrate a guest with I/O in flight.
demo: build guest
	@/usr/bin/python3 scripts/demo.py $(DEMO_ARGS)

# The whole test suite (what CI runs).
check: deps
	@tests/run.sh

export:
	@scripts/export.sh

status:
	@scripts/status.sh

checkpatch: base
	@scripts/checkpatch.sh

# Build every commit of the series and run its tests (git rebase -x);
# not part of check: about 45 min on 2 cores.
each-commit: build
	@scripts/each-commit.sh

clean:
	rm -rf build build.configure.log .cache/test-logs

# Coverage-guided fuzzing of what the series parses (scripts/fuzz.py):
# FUZZ_SECONDS per target (default 600); make check runs 30 s each.
fuzz: build
	@/usr/bin/python3 scripts/fuzz.py run $(or $(FUZZ_SECONDS),600)

# Migrations under injected faults (tests/soak.py): SOAK_ROUNDS per
# configuration (default 100), tables into docs/soak.md; make check runs
# each fault once.
soak: build guest
	@scripts/build.sh --base
	@/usr/bin/python3 tests/soak.py --rounds $(or $(SOAK_ROUNDS),100) --write-docs

# Benchmarks (print ratios from one run; not part of check)
bench: build guest virtiofsd
	@/usr/bin/python3 bench/inflight_stream_bytes.py
	@/usr/bin/python3 bench/downtime_vhost_user_blk.py
	@/usr/bin/python3 bench/backend_state_throughput.py
	@/usr/bin/python3 bench/suspend_latency.py
	@scripts/build.sh --base
	@/usr/bin/python3 bench/virtiofs_blocked_request.py
