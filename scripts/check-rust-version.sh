#!/usr/bin/env bash
# Checks that the Rust version the workspace declares is one the lock file can be built with:
#   - no package of Cargo.lock (all features, all targets: `cargo metadata --all-features --locked`) declares a
#     `rust-version` newer than the workspace's `rust-version` (root Cargo.toml, [workspace.package]);
#   - every workspace member declares that same `rust-version`;
#   - the Dockerfile's build image (`FROM rust:X.Y-...`) is that version.
# Fails naming each offending package or file. Needs cargo and python3 only; --locked, so a stale Cargo.lock fails here too.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
check=$(cat <<'PY'
import json, re, sys

def parse(v):
    parts = [int(p) for p in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
packages = meta["packages"]
failures = []

declared = {p["rust_version"] for p in packages if p["id"] in members}
if len(declared) != 1 or None in declared:
    names = ", ".join(sorted(f"{p['name']}={p['rust_version']}" for p in packages if p["id"] in members))
    sys.exit(f"workspace members declare different rust-version values (want one, from [workspace.package]): {names}")
workspace = declared.pop()

newer = sorted(
    (parse(p["rust_version"]), p["name"], p["version"], p["rust_version"])
    for p in packages
    if p["id"] not in members and p.get("rust_version") and parse(p["rust_version"]) > parse(workspace)
)
for _, name, version, needs in newer:
    failures.append(f"{name} {version} (locked in Cargo.lock) needs Rust {needs}, newer than the workspace rust-version {workspace}")

image = None
with open("Dockerfile") as f:
    for line in f:
        m = re.match(r"\s*FROM\s+rust:([0-9][0-9.]*)", line, re.IGNORECASE)
        if m:
            image = m.group(1).rstrip(".")
            if parse(image) != parse(workspace):
                failures.append(f"Dockerfile builds with rust:{image}, but the workspace rust-version is {workspace}")
if image is None:
    failures.append("Dockerfile: no `FROM rust:<version>` build image found")

if failures:
    print("Rust version check failed:", file=sys.stderr)
    for f in failures:
        print(f"  {f}", file=sys.stderr)
    sys.exit(1)
checked = sum(1 for p in packages if p["id"] not in members)
print(f"rust-version {workspace}: the {checked} locked dependencies and the Dockerfile agree (highest needed: "
      + max((p["rust_version"] for p in packages if p.get("rust_version") and p["id"] not in members), key=parse)
      + ")")
PY
)
cargo metadata --format-version 1 --all-features --locked | python3 -c "$check"
