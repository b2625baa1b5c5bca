"""Check that the Python binding covers the C ABI.

Every lcx_ symbol the shared library exports must be either wrapped
(longctx.WRAPPED) or listed with a reason as intentionally not wrapped
(longctx.NOT_WRAPPED); every listed symbol must still be exported. Exits 1
naming each symbol that breaks the rule.

Usage: check_symbols.py [path/to/liblongctx.so]   (default: $LONGCTX_LIB)
"""

import os
import shutil
import subprocess
import sys


def exported_symbols(path):
    """Names of the defined dynamic symbols of a shared library (nm -D, else readelf)."""
    if shutil.which("nm"):
        out = subprocess.run(["nm", "-D", "--defined-only", path], check=True, capture_output=True,
                             text=True).stdout
        names = set()
        for line in out.splitlines():
            parts = line.split()
            # "<address> <type> <name>"; absolute symbols may lack an address
            if len(parts) >= 2 and len(parts[-2]) == 1 and parts[-2] in "TtWwiDdBbRrVv":
                names.add(parts[-1].split("@")[0])
        return names
    if shutil.which("readelf"):
        out = subprocess.run(["readelf", "--dyn-syms", "-W", path], check=True, capture_output=True,
                             text=True).stdout
        names = set()
        for line in out.splitlines():
            parts = line.split()
            # Num: Value Size Type Bind Vis Ndx Name
            if len(parts) >= 8 and parts[0].endswith(":") and parts[6] != "UND" and parts[4] in ("GLOBAL", "WEAK"):
                names.add(parts[7].split("@")[0])
        return names
    raise SystemExit("check_symbols: neither nm nor readelf is available")


def main(argv):
    path = argv[1] if len(argv) > 1 else os.environ.get("LONGCTX_LIB")
    if not path:
        raise SystemExit("usage: check_symbols.py path/to/liblongctx.so (or set LONGCTX_LIB)")
    os.environ["LONGCTX_LIB"] = path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import longctx

    exported = {s for s in exported_symbols(path) if s.startswith("lcx_")}
    wrapped, skipped = set(longctx.WRAPPED), set(longctx.NOT_WRAPPED)
    problems = []
    for s in sorted(exported - wrapped - skipped):
        problems.append("%s: exported but neither wrapped nor listed in NOT_WRAPPED" % s)
    for s in sorted((wrapped | skipped) - exported):
        problems.append("%s: listed by the binding but not exported by %s" % (s, path))
    for s in sorted(wrapped & skipped):
        problems.append("%s: listed both as wrapped and as not wrapped" % s)
    for s, why in sorted(longctx.NOT_WRAPPED.items()):
        if not why or not why.strip():
            problems.append("%s: NOT_WRAPPED entry without a reason" % s)
    if not exported:
        problems.append("no lcx_ symbols found in %s" % path)
    for p in problems:
        print("check_symbols: " + p)
    print("check_symbols: %d exported lcx_ symbols, %d wrapped, %d not wrapped%s"
          % (len(exported), len(exported & wrapped), len(exported & skipped),
             "" if not problems else ", %d problem(s)" % len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
