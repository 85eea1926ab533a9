#!/usr/bin/env bash
# Checks the alert rules of grafana/alerts (Prometheus rule files) and their unit tests:
#   1. promtool check rules: Prometheus's own parser, the one docker-compose.yml's Prometheus loads them with;
#      and promtool check config on deploy/prometheus.yml, its rule_files pointed at grafana/alerts the way
#      docker-compose.yml mounts them;
#   2. every rule has a `for`, a severity label (warning or critical), summary and description annotations naming
#      the pool, and a runbook_url whose anchor is a heading of docs/operations.md; every rule has unit test
#      cases in which it fires and cases in which it does not;
#   3. the unit tests (grafana/alerts/*.test.yml) with `vmalert-tool unittest` (VictoriaMetrics' MetricsQL
#      engine) and with `promtool test rules` (Prometheus's engine): the same file, which only uses what both
#      tools read.
# vmalert-tool comes with the victoria-metrics package that scripts/services/50-victoriametrics.sh unpacks
# (called here with --unpack-only: nothing is started); promtool is Debian's unstable `promtool` package,
# unpacked once into $AQUIFER_TOOLS_DIR (default /tmp/aquifer-tools) the same way (sid_unpack in lib.sh).
# The live test, vmalert evaluating the rules against VictoriaMetrics while real pools fail, is tests/alerts.rs.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/services/lib.sh"
tools=${AQUIFER_TOOLS_DIR:-/tmp/aquifer-tools}
alerts=$root/grafana/alerts

bash "$root/scripts/services/50-victoriametrics.sh" --unpack-only
vmalert_tool=$AQUIFER_SERVICES_DIR/victoriametrics/pkg/usr/bin/vmalert-tool
promtool=$tools/promtool/usr/bin/promtool
if [ ! -x "$promtool" ]; then
  sid_unpack promtool "$tools/promtool"
  [ -x "$promtool" ] || { log "the promtool package holds no $promtool"; exit 1; }
fi
# PyYAML (python3-yaml) for step 2.
/usr/bin/python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. Prometheus's parser.
log "promtool check rules"
"$promtool" check rules "$alerts"/*.rules.yml
/usr/bin/python3 - "$root" "$tmp/prometheus.yml" <<'PY'
# deploy/prometheus.yml with its rule_files pointed at the host's grafana/alerts through docker-compose.yml's
# mount of it; fails if no rule file is provisioned or one points outside the mount.
import sys, yaml
root, out = sys.argv[1], sys.argv[2]
compose = yaml.safe_load(open(f"{root}/docker-compose.yml"))
mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["prometheus"].get("volumes", [])}
inside = [c for c, h in mounts.items() if h.rstrip("/") == "./grafana/alerts"]
if not inside:
    sys.exit("docker-compose.yml: the prometheus service does not mount ./grafana/alerts")
config = yaml.safe_load(open(f"{root}/deploy/prometheus.yml"))
files = config.get("rule_files") or []
if not files:
    sys.exit("deploy/prometheus.yml: no rule_files")
rewritten = []
for f in files:
    if not f.startswith(inside[0].rstrip("/") + "/"):
        sys.exit(f"deploy/prometheus.yml: rule file {f} is not under {inside[0]}, where ./grafana/alerts is mounted")
    rewritten.append(f"{root}/grafana/alerts/" + f[len(inside[0].rstrip("/")) + 1:])
config["rule_files"] = rewritten
yaml.safe_dump(config, open(out, "w"))
PY
log "promtool check config deploy/prometheus.yml (rule_files as docker-compose.yml mounts them)"
"$promtool" check config "$tmp/prometheus.yml"

# 2. What every rule carries, and that the unit tests cover each rule both ways.
log "checking labels, annotations, runbook anchors and unit-test coverage of every rule"
/usr/bin/python3 - "$root" <<'PY'
import glob, re, sys, yaml
root = sys.argv[1]
errors = []
anchors = set()
for line in open(f"{root}/docs/operations.md"):
    m = re.match(r"#+\s+(.*)", line)
    if m:
        # GitHub's anchors: lower case, punctuation other than '-' and '_' dropped, spaces to '-'.
        anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
rules = {}
for f in sorted(glob.glob(f"{root}/grafana/alerts/*.rules.yml")):
    for group in yaml.safe_load(open(f))["groups"]:
        for r in group["rules"]:
            name = r.get("alert")
            if not name:
                continue
            rules[name] = r
            where = f"{f}: {name}"
            if not r.get("for"):
                errors.append(f"{where}: no `for`")
            if r.get("labels", {}).get("severity") not in ("warning", "critical"):
                errors.append(f"{where}: severity is not warning or critical")
            notes = r.get("annotations", {})
            for key in ("summary", "description"):
                if "$labels.db_client_connection_pool_name" not in notes.get(key, ""):
                    errors.append(f"{where}: the {key} does not name the pool")
            url = notes.get("runbook_url", "")
            m = re.search(r"docs/operations\.md#([\w-]+)$", url)
            if not m:
                errors.append(f"{where}: runbook_url {url!r} does not point at a section of docs/operations.md")
            elif m.group(1) not in anchors:
                errors.append(f"{where}: runbook_url anchor #{m.group(1)} is no heading of docs/operations.md")
fires, silent, cases = set(), set(), 0
for f in sorted(glob.glob(f"{root}/grafana/alerts/*.test.yml")):
    for test in yaml.safe_load(open(f))["tests"]:
        for case in test.get("alert_rule_test", []):
            cases += 1
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
for name in sorted(rules):
    if name not in fires:
        errors.append(f"{name}: no unit test case in which it fires")
    if name not in silent:
        errors.append(f"{name}: no unit test case in which it does not fire")
for name in sorted((fires | silent) - set(rules)):
    errors.append(f"unit tests name {name}, which no rule file defines")
if errors:
    sys.exit("\n".join(errors))
print(f"[dev-services] {len(rules)} rules; {cases} unit test cases ({len(fires)} rules fire in some, "
      f"{len(silent)} stay silent in some)", file=sys.stderr)
PY

# 3. The unit tests, on both engines.
log "vmalert-tool unittest"
"$vmalert_tool" unittest --disableAlertgroupLabel --files "$alerts/*.test.yml"
log "promtool test rules"
"$promtool" test rules "$alerts"/*.test.yml
log "alert rules valid and their unit tests pass"
