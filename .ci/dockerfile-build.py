#!/usr/bin/env python3
"""Replays the Dockerfile's build stage outside Docker (there is no engine on
CI): WORKDIR, ARG, ENV, COPY and RUN, in a fresh directory standing for the
stage's WORKDIR. Then checks the binary the final stage copies: it runs,
reports its version, and has no `demo` (the production build leaves the
emulators out)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
text = open(os.path.join(root, "Dockerfile")).read().replace("\\\n", " ")
lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]

stages, current = {}, None
args = {}
for l in lines:
    op, _, rest = l.partition(" ")
    op = op.upper()
    if op == "FROM":
        m = re.search(r"\bAS\s+(\S+)", rest, re.I)
        current = m.group(1) if m else "final"
        stages[current] = []
    elif current is None and op == "ARG":
        k, _, v = rest.partition("=")
        args[k] = os.environ.get(k, v)
    elif current is not None:
        stages[current].append((op, rest))

work = tempfile.mkdtemp(prefix="dockerfile-build-")
workdir_in_image = None
env = dict(os.environ)
env.update(args)


def subst(s):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), s)


def local(path):
    if not path.startswith("/"):
        return os.path.join(work, path)
    if workdir_in_image and (path == workdir_in_image or path.startswith(workdir_in_image + "/")):
        return os.path.join(work, os.path.relpath(path, workdir_in_image))
    sys.exit(f"the build stage writes outside its WORKDIR: {path}")


try:
    for op, rest in stages["build"]:
        if op == "WORKDIR":
            workdir_in_image = rest
        elif op == "ARG":
            k, _, v = rest.partition("=")
            env[k] = os.environ.get(k, subst(v))
        elif op == "ENV":
            for k, v in re.findall(r"(\w+)=(\S+)", rest):
                env[k] = subst(v)
        elif op == "COPY":
            *srcs, dest = rest.split()
            target = local(dest)
            for s in srcs:
                src = os.path.join(root, s)
                if os.path.isdir(src):
                    shutil.copytree(src, target if not dest.endswith("/") else os.path.join(target, os.path.basename(s)), dirs_exist_ok=True)
                else:
                    os.makedirs(target if dest.endswith("/") or len(srcs) > 1 else os.path.dirname(target) or ".", exist_ok=True)
                    shutil.copy(src, target)
        elif op == "RUN":
            print(f"+ RUN {rest}", flush=True)
            subprocess.run(["sh", "-ec", rest], cwd=work, env=env, check=True)
        else:
            sys.exit(f"the replay does not know {op}; teach .ci/dockerfile-build.py")
    copied = [r.split() for op, r in stages["final"] if op == "COPY" and r.startswith("--from=build")]
    if not copied:
        sys.exit("the final stage copies nothing from the build stage")
    for _, src, _ in copied:
        binary = local(src)
        print(f"checking {src}", flush=True)
        out = subprocess.run([binary, "version"], capture_output=True, text=True, check=True).stdout
        print(out.strip())
        demo = subprocess.run([binary, "demo", "--fast"], capture_output=True, text=True)
        if demo.returncode != 64 or "without the emulators" not in demo.stderr:
            sys.exit(f"the production binary should have no demo; got exit {demo.returncode}: {demo.stderr}")
        size = os.path.getsize(binary)
        print(f"{src}: {size / 1e6:.1f} MB, no demo")
finally:
    shutil.rmtree(work, ignore_errors=True)
print("Dockerfile build stage: ok")
