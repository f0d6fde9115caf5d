#!/usr/bin/env python3
"""The srv binary exports only the public API: every defined text symbol in `nm -D` of the
binary must be a function declared (SRV_API) in include/srv/*.h, and every such function must be
exported. Exit 0 pass, 1 fail, 77 skip (no nm).

usage: check_exports.py SRV_BINARY INCLUDE_SRV_DIR"""
import glob
import os
import re
import shutil
import subprocess
import sys

# Entry points the C runtime (crt1.o) links into every executable; not ours to hide.
RUNTIME = {"_start", "_init", "_fini"}


def declared(include_dir):
    names = set()
    for path in glob.glob(os.path.join(include_dir, "*.h")):
        with open(path) as f:
            text = f.read()
        names.update(re.findall(r"^SRV_API\b[^(;]*?\b(srv_\w+)\s*\(", text, re.M))
    return names


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 1
    nm = shutil.which("nm")
    if not nm:
        print("SKIP: nm not found")
        return 77
    api = declared(sys.argv[2])
    if not api:
        print(f"FAIL: no SRV_API declarations found in {sys.argv[2]}")
        return 1
    out = subprocess.run([nm, "-D", "--defined-only", sys.argv[1]], check=True,
                         capture_output=True, text=True).stdout
    exported = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("T", "t", "i"):
            exported.add(parts[2].split("@")[0])
    extra = sorted(exported - api - RUNTIME)
    # A declaration the definition's file never saw (no SRV_API) is hidden: modules fail to load.
    missing = sorted(api - exported)
    print(f"{len(exported)} text symbols exported, {len(api)} declared in include/srv")
    if extra:
        print(f"FAIL: {len(extra)} exported but not declared in include/srv:")
        for name in extra:
            print("  " + name)
    if missing:
        print(f"FAIL: {len(missing)} declared in include/srv but not exported:")
        for name in missing:
            print("  " + name)
    if extra or missing:
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
