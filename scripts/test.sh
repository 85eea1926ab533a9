#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every test (servers from scripts/dev-services.sh
# must be running; a test that cannot reach its server fails and names that script), and the doc examples.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { printf '\n== %s\n' "$*" >&2; }

command -v cargo-nextest >/dev/null || { step "installing cargo-nextest"; cargo install --locked cargo-nextest; }

step "rust-version against Cargo.lock and the Dockerfile"
bash scripts/check-rust-version.sh
step "cargo fmt --check"
cargo fmt --all -- --check
step "deploy files: dashboards against @grafana/schema, provisioning, docker-compose config"
bash scripts/check-deploy-files.sh
step "alert rules: promtool checks, unit tests on vmalert-tool and promtool"
bash scripts/check-alerts.sh
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings
step "cargo doc (broken links and missing docs are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
step "cargo nextest run"
cargo nextest run --workspace --all-features --no-fail-fast
step "metric tests without bound instruments (the default build of aquifer-core)"
cargo test -p aquifer-core --test metrics
step "loom model check of the hand-off protocol"
RUSTFLAGS="--cfg aquifer_loom" CARGO_TARGET_DIR=target/loom cargo test -p aquifer-core --lib --release loom
step "doc tests (against the project's servers: POSTGRES_URL, MYSQL_URL, NEO4J_URI from dev-services.sh env)"
eval "$(bash scripts/dev-services.sh env)"
cargo test --workspace --all-features --doc
