#!/usr/bin/env bash
# The virtio-lm test command.  Runs, in order:
#   series    checkpatch over patches/, the series applies to the pristine
#             base with no fuzz, and the work tree matches patches/
#   build     the patched QEMU (scripts/build.sh), the unpatched base and
#             the upstream peer (scripts/upstream.sh), and the test guest
#   project   the project's own tests (tests/test_*.py, pytest), after
#             building virtiofsd (scripts/virtiofsd.sh) once
#   asan      the malformed-stream corpora, the vhost-user-blk in-flight
#             migration and the back-end state tests (QEMU and libvhost-user)
#             on an AddressSanitizer build
#   qtest     the upstream qtests and unit tests that guard what the series
#             touches, and the series' own qtests (virtio-suspend-test also
#             on the ASan build)
#   fuzz      each libFuzzer target (scripts/fuzz.py): its regression
#             inputs, then FUZZ_SECONDS (30) of fuzzing from its seeds
#   soak      the soak's smoke run (tests/soak.py --rounds 0): each fault of
#             each configuration once, in an order seeded by SOAK_SEED or
#             the time (the seed is printed); then contrib-blk and
#             virtio-blk again on the ASan builds
# One summary line per suite with its time in seconds, then "N passed,
# N failed in S s".  Non-zero on any
# failure.  SUITES="series build" runs a subset; later suites need build.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/scripts/lib.sh"

SUITES=${SUITES:-"series build project asan qtest fuzz soak"}
LOGDIR=${VLM_LOGDIR:-$TOP/.cache/test-logs}
mkdir -p "$LOGDIR"
total_pass=0 total_fail=0
summary=()

suite_start=$SECONDS
record() { # suite pass fail [note]  (time since the suite began)
    local t=$((SECONDS - suite_start))
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
    summary+=("$(printf '%-8s %4d passed, %d failed, %4d s%s' "$1" "$2" "$3" "$t" "${4:+  ($4)}")")
    printf '== %s: %d passed, %d failed, %d s%s\n' "$1" "$2" "$3" "$t" "${4:+  ($4)}"
}

suite_series() {
    local pass=0 fail=0 log=$LOGDIR/series.log
    : >"$log"
    if "$TOP/scripts/checkpatch.sh" >>"$log" 2>&1; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1)); grep -E '^FAIL|checkpatch failed' "$log"
    fi
    # Apply the series to a scratch copy of the base: proves it applies with
    # no fuzz, whatever the state of the developer's work tree.
    local scratch
    scratch=$(mktemp -d)
    # (no automatic gc: one detached after git am would race the rm below)
    if GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=gc.auto GIT_CONFIG_VALUE_0=0 \
       WORK_TREE=$scratch/qemu "$TOP/scripts/worktree.sh" --force >>"$log" 2>&1; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1)); grep 'does not apply\|series names' "$log"
    fi
    rm -rf "$scratch"
    if [ -d "$WORK_TREE/.git" ]; then
        if "$TOP/scripts/status.sh" >>"$log" 2>&1; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1)); echo "work tree and patches/ differ:"; tail -5 "$log"
        fi
    else
        "$TOP/scripts/worktree.sh" >>"$log" 2>&1 && pass=$((pass + 1)) || fail=$((fail + 1))
    fi
    record series $pass $fail
}

suite_build() {
    local log=$LOGDIR/build.log
    if "$TOP/scripts/build.sh" >"$log" 2>&1 && "$TOP/scripts/build.sh" --base >>"$log" 2>&1 &&
       "$TOP/scripts/upstream.sh" >>"$log" 2>&1 && "$TOP/scripts/guest.sh" >>"$log" 2>&1; then
        record build 1 0 "$(tail -1 "$log")"
    else
        tail -40 "$log"
        record build 0 1 "see $log"
        return 1
    fi
}

# Run pytest in tests/ (extra environment first, then pytest arguments),
# appending to log, and record the result as suite $1.
run_pytest() { # suite log [VAR=value ...] -- pytest-args...
    local suite=$1 log=$2 rc line pass fail n
    local -a envs=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    local xml=$LOGDIR/$suite.xml skip
    rm -f "$xml"
    (cd "$TOP/tests" && env "${envs[@]}" /usr/bin/python3 -m pytest -q -rfEs \
        -p no:cacheprovider --junitxml="$xml" "$@") >>"$log" 2>&1
    rc=$?
    # The counts from pytest's own report; without one, pytest itself failed.
    if [ -s "$xml" ] && read -r pass fail skip < <("$TOP/tests/report.py" junit "$xml"); then
        line="$skip skipped"
    else
        pass=0 fail=0 line="no report from pytest"
    fi
    if [ $rc -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
    [ $rc -ne 0 ] && tail -60 "$log"
    record "$suite" "$pass" "$fail" "$line"
}

suite_project() {
    local log=$LOGDIR/project.log
    : >"$log"
    # virtiofsd for test_virtiofs_migration.py (built once; without it those
    # tests fail and say so).
    if ! "$TOP/scripts/virtiofsd.sh" >>"$log" 2>&1; then
        tail -20 "$log"
        echo "virtiofsd build failed, see $log"
    fi
    # shellcheck disable=SC2086
    run_pytest project "$log" -- ${PYTEST_ARGS:-} .
}

# The tests marked asan (tests/pytest.ini) again, on the AddressSanitizer
# builds.
suite_asan() {
    local log=$LOGDIR/asan.log
    if ! "$TOP/scripts/build.sh" --asan >"$log" 2>&1; then
        tail -30 "$log"; record asan 0 1 "build failed, see $log"; return
    fi
    run_pytest asan "$log" VLM_QEMU="$VLM_CACHE/build-asan/qemu-system-x86_64" \
        VLM_VUB="$VLM_CACHE/build-asan/contrib/vhost-user-blk/vhost-user-blk" \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 -- -m asan .
}

# Upstream tests: qos-test paths (substring match on the qos graph paths),
# the migration-test quick set, and the VMState unit tests.
QOS_PATTERNS=(
    vhost-user-blk virtio-blk virtio-net vhost-user/ virtio-scsi
)
suite_qtest() {
    local log=$LOGDIR/qtest.log pass=0 fail=0 b=$BUILD_DIR
    : >"$log"
    export QTEST_QEMU_BINARY=$b/qemu-system-x86_64
    export QTEST_QEMU_IMG=$b/qemu-img
    export QTEST_QEMU_STORAGE_DAEMON_BINARY=$b/storage-daemon/qemu-storage-daemon
    export QTEST_VHOST_USER_BLK_BINARY=$b/contrib/vhost-user-blk/vhost-user-blk
    export PYTHON=/usr/bin/python3
    export G_TEST_DBUS_DAEMON=/bin/true MALLOC_PERTURB_=$((RANDOM % 255 + 1))
    local paths p
    paths=$("$b/tests/qtest/qos-test" -l 2>/dev/null | grep "^/" | grep -E "$(IFS='|'; echo "${QOS_PATTERNS[*]}")" || true)
    [ -n "$paths" ] || { echo "no qos-test paths matched"; record qtest 0 1; return; }
    # A test binary that aborts prints no "not ok" for what it did not
    # run: count its exit status as a failure of its own.
    tap_failed() { "$TOP/tests/report.py" tap "$log" | cut -d' ' -f2; }
    tap() { # seconds binary args...
        local t=$1 bin=$2 n
        shift 2
        n=$(tap_failed)
        (cd "$b" && timeout "$t" "$bin" "$@" --tap -k) >>"$log" 2>&1 && return
        [ "$(tap_failed)" -gt "$n" ] ||
            echo "not ok - $bin $* exited with an error" >>"$log"
    }
    for p in $paths; do
        tap 300 ./tests/qtest/qos-test -p "$p"
    done
    # migration-test's quick set where the series touches the migration
    # core (VMState, device sections, the analyze script's view of them):
    # precopy over each transport, with suspend, and plain postcopy.  Its
    # multifd, postcopy recovery and preempt cases exercise channels the
    # series does not touch; each case costs about 40 s here.
    # (each case by name: "-p $m/precopy" ran only precopy/file)
    local m=/x86_64/migration
    tap 1500 "$TOP/scripts/no-kvm.sh" ./tests/qtest/migration-test -m quick \
        -p $m/analyze-script -p $m/precopy/file -p $m/precopy/unix/plain \
        -p $m/precopy/unix/suspend/live -p $m/precopy/unix/suspend/notlive \
        -p $m/precopy/tcp/plain -p $m/postcopy/plain
    tap 300 ./tests/unit/test-vmstate
    tap 300 ./tests/unit/test-vhost-inflight
    tap 300 ./tests/unit/test-blk-withdraw
    tap 300 ./tests/unit/test-coroutine -p /locking/co-queue/remove
    tap 600 ./tests/qtest/virtio-blk-inflight-test
    tap 600 ./tests/qtest/virtio-suspend-test
    # Again on the ASan build of QEMU and contrib/vhost-user-blk (LeakSanitizer
    # on).  migrate-refused is left out: its destination exit()s from inside
    # the BH that virtio_load() waits for when the features are refused, so
    # that BH is reported as leaked (upstream, harmless).
    local asan=$VLM_CACHE/build-asan
    if [ -x "$asan/qemu-system-x86_64" ]; then
        QTEST_QEMU_BINARY=$asan/qemu-system-x86_64 \
        QTEST_VHOST_USER_BLK_BINARY=$asan/contrib/vhost-user-blk/vhost-user-blk \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            tap 900 ./tests/qtest/virtio-suspend-test \
                -s /x86_64/virtio/suspend/migrate-refused
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            tap 300 "$asan/tests/unit/test-blk-withdraw"
    fi
    local skip
    read -r pass fail skip < <("$TOP/tests/report.py" tap "$log") ||
        { echo "cannot read $log"; pass=0 fail=1 skip=0; }
    grep -E '^not ok ' "$log" | grep -v '# SKIP' | head -20
    record qtest "$pass" "$fail" "$skip skipped"
}

suite_fuzz() {
    local log=$LOGDIR/fuzz.log pass=0 fail=0 t
    : >"$log"
    for t in $(/usr/bin/python3 "$TOP/scripts/fuzz.py" list); do
        if /usr/bin/python3 "$TOP/scripts/fuzz.py" run "${FUZZ_SECONDS:-30}" \
               --target "$t" >>"$log" 2>&1; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1)); grep "^fuzz.py" "$log" | tail -2
        fi
    done
    grep "^fuzz.py: .*executions" "$log"
    record fuzz "$pass" "$fail"
}

suite_soak() {
    local log=$LOGDIR/soak.log pass=0 fail=0 a=$VLM_CACHE/build-asan
    : >"$log"
    if /usr/bin/python3 "$TOP/tests/soak.py" --rounds 0 >>"$log" 2>&1; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1)); tail -30 "$log"
    fi
    # Again on the ASan builds (the asan suite built them), with
    # LeakSanitizer: every QEMU and back-end that quits is checked
    if [ -x "$a/qemu-system-x86_64" ] &&
       VLM_QEMU=$a/qemu-system-x86_64 \
       VLM_VUB=$a/contrib/vhost-user-blk/vhost-user-blk \
       ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       /usr/bin/python3 "$TOP/tests/soak.py" --rounds 0 \
           --configs contrib-blk,virtio-blk >>"$log" 2>&1; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1)); tail -30 "$log"
    fi
    grep "^soak.py: seed" "$log"
    record soak "$pass" "$fail"
}

for s in $SUITES; do
    suite_start=$SECONDS
    case $s in
        series) suite_series ;;
        build) suite_build || break ;;
        project) suite_project ;;
        asan) suite_asan ;;
        qtest) suite_qtest ;;
        fuzz) suite_fuzz ;;
        soak) suite_soak ;;
        *) echo "unknown suite $s"; total_fail=$((total_fail + 1)) ;;
    esac
done

echo
echo "summary:"
printf '  %s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed in $SECONDS s"
[ "$total_fail" -eq 0 ]
