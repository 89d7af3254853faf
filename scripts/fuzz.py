#!/usr/bin/env python3
"""Coverage-guided fuzzing of the inputs the series parses, with libFuzzer
(Debian's clang).

Each target is a harness in tests/fuzz/NAME.c that calls the series' code
as QEMU does.  It is built from the work tree: the harness and the series'
sources it exercises are compiled by clang with -fsanitize=fuzzer,address
and the flags meson gave them in the build tree of `make build`; they are
linked with the objects and libraries of a unit test that already links
those sources (its own objects left out), so there is no second build
system to keep in step.

  fuzz.py list                  the targets' names
  fuzz.py build                 build every target into .cache/fuzz/
  fuzz.py run [SECONDS]         build, replay tests/fuzz/regressions/NAME/,
                                then fuzz each target SECONDS (default 60)
                                from its seeds in tests/fuzz/corpus/NAME/
  --target NAME                 only that target
  --write-docs                  put the run's table into docs/fuzzing.md

A crash leaves its input in .cache/fuzz/crashes/NAME/; once the bug is
fixed in the patch where it belongs, the input goes to
tests/fuzz/regressions/NAME/ so that every later run replays it.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
WORK_TREE = os.environ.get("WORK_TREE", os.path.join(TOP, "qemu"))
BUILD = os.environ.get("BUILD_DIR", os.path.join(TOP, "build"))
CACHE = os.environ.get("VLM_CACHE", os.path.join(TOP, ".cache"))
OUT = os.path.join(CACHE, "fuzz")
FUZZ_DIR = os.path.join(TOP, "tests", "fuzz")
CLANG = os.environ.get("CLANG", "clang")

# name: (the sources it compiles beside the harness, each with its own
# flags and in place of the library's build of it, the one whose compile
# flags the harness takes, and the unit test whose link it reuses, or None
# for code that needs only libc)
TARGETS = {
    "vhost_inflight_check": (["hw/virtio/vhost-inflight.c"],
                             "hw/virtio/vhost-inflight.c",
                             "tests/unit/test-vhost-inflight"),
    # The harness includes libvhost-user.c, to reach its static handlers.
    "vu_inflight_region": ([], "subprojects/libvhost-user/libvhost-user.c",
                           None),
    "vu_messages": ([], "subprojects/libvhost-user/libvhost-user.c", None),
    # The harness includes virtio-inflight.c, to see the loaded elements.
    # The VMState core is instrumented too: the series changes its loaders.
    "virtio_inflight_load": (["hw/virtio/virtio-suspend.c",
                              "migration/vmstate.c",
                              "migration/vmstate-types.c"],
                             "hw/virtio/virtio-inflight.c",
                             "tests/unit/test-vhost-inflight"),
}

# gcc options clang 14 does not take, or takes with another meaning
DROP_PREFIXES = ("-W", "-ftrivial-auto-var-init", "-fzero-call-used-regs",
                 "-fdiagnostics-color")
SANITIZE = ["-fsanitize=fuzzer-no-link,address", "-fno-omit-frame-pointer"]


def die(msg):
    sys.exit("fuzz.py: " + msg)


def compile_flags(source, like):
    """The flags meson compiled source with (for the unit test like, if
    given), without the output, dependency and gcc-only options."""
    with open(os.path.join(BUILD, "compile_commands.json")) as f:
        entries = json.load(f)
    path = os.path.realpath(os.path.join(WORK_TREE, source))
    mine = [e for e in entries
            if os.path.realpath(os.path.join(BUILD, e["file"])) == path]
    # the unit test's own compile of it, or else the emulator's
    mine.sort(key=lambda e: not (like and e["output"].startswith(like + ".p/")))
    if not mine:
        die("no compile command for %s (run make build)" % source)
    e = mine[0]
    args = shlex.split(e["command"])
    while args[0] in ("ccache",) or "gcc" in os.path.basename(args[0]):
        args.pop(0)
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("-o", "-MQ", "-MF", "-c"):
            skip = True
        elif a == "-MD" or a.startswith(DROP_PREFIXES) or a == e["file"]:
            continue
        else:
            out.append(a)
    return out


def link_inputs(like):
    """(objects, link arguments) of the unit test like, without its own
    objects."""
    with open(os.path.join(BUILD, "build.ninja")) as f:
        lines = f.read().split("\n")
    for i, ln in enumerate(lines):
        if ln.startswith("build %s: c_LINKER " % like):
            break
    else:
        die("no link of %s in build.ninja" % like)
    inputs = ln.split(": c_LINKER ", 1)[1].split(" | ")[0].split()
    objs = [o for o in inputs if not o.startswith(like + ".p/")]
    link_args = []
    for ln in lines[i + 1:]:
        if not ln.startswith(" "):
            break
        k, _, v = ln.strip().partition(" = ")
        if k == "LINK_ARGS":
            link_args = shlex.split(v)
    return objs, link_args


def build(name):
    sources, flags_from, like = TARGETS[name]
    if like and not os.path.exists(os.path.join(BUILD, like)):
        subprocess.run(["ninja", "-C", BUILD, like], check=True,
                       stdout=subprocess.DEVNULL)
    objdir = os.path.join(OUT, "obj", name)
    os.makedirs(objdir, exist_ok=True)
    objs = []
    flags = compile_flags(flags_from, like)
    # a harness that includes the source finds its headers beside it
    flags.append("-I" + os.path.dirname(os.path.join(WORK_TREE, flags_from)))
    for src, fl in [(os.path.join(FUZZ_DIR, name + ".c"), flags)] + \
            [(os.path.join(WORK_TREE, s), compile_flags(s, like))
             for s in sources]:
        obj = os.path.join(objdir, os.path.basename(src) + ".o")
        subprocess.run([CLANG] + fl + SANITIZE + ["-O1", "-g", "-c", src,
                                                  "-o", obj],
                       cwd=BUILD, check=True)
        objs.append(obj)
    lib_objs, link_args = link_inputs(like) if like else ([], ["-pthread"])
    # what the target compiles itself replaces the library's gcc build
    mine = set(s.replace("/", "_") + ".o" for s in sources)
    lib_objs = [o for o in lib_objs if os.path.basename(o) not in mine]
    binary = os.path.join(OUT, name)
    subprocess.run([CLANG, "-fsanitize=fuzzer,address", "-o", binary] + objs +
                   lib_objs + link_args, cwd=BUILD, check=True)
    return binary


def replay(name, binary):
    """Run each regression input once; a crash fails."""
    d = os.path.join(FUZZ_DIR, "regressions", name)
    inputs = sorted(os.path.join(d, f) for f in os.listdir(d)) if os.path.isdir(d) else []
    if inputs:
        r = subprocess.run([binary] + inputs, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode:
            print(r.stdout[-4000:])
            die("%s: a regression input fails again" % name)
    return len(inputs)


def fuzz(name, binary, seconds):
    corpus = os.path.join(OUT, "corpus", name)
    seeds = os.path.join(FUZZ_DIR, "corpus", name)
    crashes = os.path.join(OUT, "crashes", name)
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(crashes, exist_ok=True)
    before = set(os.listdir(crashes))
    t0 = time.monotonic()
    r = subprocess.run([binary, "-max_total_time=%d" % seconds,
                        "-print_final_stats=1", "-timeout=10",
                        "-rss_limit_mb=2048",
                        "-artifact_prefix=%s/" % crashes, corpus, seeds],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    took = time.monotonic() - t0
    log = r.stdout
    with open(os.path.join(OUT, name + ".log"), "w") as f:
        f.write(log)

    def stat(pattern, default="?"):
        m = re.findall(pattern, log)
        return m[-1] if m else default
    res = {
        "target": name,
        "execs": stat(r"stat::number_of_executed_units: (\d+)"),
        "cov": stat(r"#\d+\s+\w+\s+cov: (\d+)"),
        "edges": stat(r"\((\d+) inline 8-bit counters\)"),
        "ft": stat(r"#\d+\s+\w+\s+cov: \d+ ft: (\d+)"),
        "corpus": stat(r"#\d+\s+\w+\s+cov: \d+ ft: \d+ corp: (\d+)"),
        "seconds": round(took),
        "crashes": len(set(os.listdir(crashes)) - before),
        "ok": r.returncode == 0,
    }
    if not res["ok"]:
        print(log[-6000:])
    return res


def write_docs(rows):
    doc = os.path.join(TOP, "docs", "fuzzing.md")
    with open(doc) as f:
        text = f.read()
    table = ("| target | executions | time | edges covered | features | corpus "
             "| crashes |\n| --- | --- | --- | --- | --- | --- | --- |\n")
    table += "".join("| %s | %s | %s s | %s of %s | %s | %s | %s |\n"
                     % (r["target"], r["execs"], r["seconds"], r["cov"],
                        r["edges"], r["ft"], r["corpus"], r["crashes"])
                     for r in rows)
    start = text.index("<!-- table -->") + len("<!-- table -->\n")
    end = text.index("<!-- /table -->")
    with open(doc, "w") as f:
        f.write(text[:start] + table + text[end:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("list", "build", "run"))
    ap.add_argument("seconds", nargs="?", type=int, default=60)
    ap.add_argument("--target", choices=sorted(TARGETS))
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    if args.action == "list":
        print("\n".join(sorted(TARGETS)))
        return 0
    if not shutil.which(CLANG):
        die("no %s: run scripts/deps.sh" % CLANG)
    names = [args.target] if args.target else sorted(TARGETS)
    rows, failed = [], []
    for name in names:
        binary = build(name)
        if args.action == "build":
            print("fuzz.py: built %s" % binary)
            continue
        n = replay(name, binary)
        r = fuzz(name, binary, args.seconds)
        rows.append(r)
        print("fuzz.py: %s: %d regression inputs pass; %s executions in %d s, "
              "%s of %s edges, %s features, corpus %s, %s crash(es)%s"
              % (name, n, r["execs"], r["seconds"], r["cov"], r["edges"],
                 r["ft"], r["corpus"], r["crashes"],
                 "" if r["ok"] else " (see .cache/fuzz/%s.log)" % name))
        if not r["ok"]:
            failed.append(name)
    if args.write_docs and rows:
        write_docs(rows)
    if failed:
        die("crashed: %s" % ", ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
