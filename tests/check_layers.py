#!/usr/bin/env python3
"""Checks that #include lines follow the layers of docs/ARCHITECTURE.md.

Each folder of ours may include only the folders its row below names (its
own folder always). A new folder must be added here, so a file cannot land
outside the layering unnoticed. Exit 1 lists every offending line.
"""
import pathlib
import re
import subprocess
import sys

HOST_BELOW_CLI = ["host/base", "host/config", "host/model", "host/formats", "host/data",
                  "host/train", "host/cpu", "host/device"]

# folder -> the folders of ours it may include, besides itself.
ALLOWED = {
    # The per-element math both compilers build: nothing of ours but its own
    # folder (the host/device macro header and the shared step scalars).
    "ops": [],
    "host/base": [],
    "host/config": ["host/base", "ops"],
    "host/model": ["host/base", "ops"],
    "host/formats": ["host/base", "host/config", "host/model"],
    "host/data": ["host/base", "host/config"],
    "host/train": ["host/base", "host/config", "host/model", "host/formats", "host/data", "ops"],
    "host/cpu": ["host/base", "host/config", "host/model", "host/data", "host/train", "ops"],
    "host/device": ["host/base", "host/config", "host/model", "host/data", "host/train",
                    "host/cpu"],
    # Many trainers side by side: the layers below the command line.
    "host/sweep": HOST_BELOW_CLI + ["ops"],
    "host/cli": HOST_BELOW_CLI + ["host/sweep", "ops"],
    # The CUDA runtime side sees host/ through its interfaces only: never the
    # command line, the device choice or the CPU backend.
    "cuda": ["host/base", "host/config", "host/model", "host/data", "host/train", "ops"],
    # The Python binding: the layers below the command line, as the command line sees them.
    "python": HOST_BELOW_CLI + ["host/sweep", "ops"],
}
# Folders of tests and tools may include anything.
UNCHECKED = ["tests", "benchmarks", "fuzz", "tools", "build"]
SOURCE_SUFFIXES = {".hpp", ".cpp", ".cu", ".cuh", ".h"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(rel: str) -> str:
    parts = rel.split("/")
    if parts[0] == "host" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = []
    # The files git knows of (tracked, or new and not ignored): virtual environments, build
    # folders and fetched data are ignored and hold headers that are not ours.
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "--cached", "--others",
                             "--exclude-standard"], check=True, capture_output=True,
                            text=True).stdout.split()
    for rel in sorted(set(listed)):
        path = root / rel
        if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
            continue
        if rel.split("/")[0] in UNCHECKED or rel.startswith("build"):
            continue
        folder = folder_of(rel)
        if folder not in ALLOWED:
            problems.append(f"{rel}: folder {folder} has no row in tests/check_layers.py")
            continue
        allowed = set(ALLOWED[folder]) | {folder}
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = m.group(1)
            if "/" not in target:
                problems.append(f"{rel}:{n}: include \"{target}\" by its path from the root")
                continue
            if folder_of(target) not in allowed:
                problems.append(f"{rel}:{n}: {folder} may not include {target} "
                                f"(allowed: {', '.join(sorted(allowed))})")
    for p in problems:
        print(p)
    print(f"check_layers: {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
