#!/usr/bin/env bash
# Validates the files that only Docker users run (no container engine or image registry exists here):
#   - grafana/dashboards/*.json against @grafana/schema, the TypeScript types of Grafana's dashboard JSON
#     model published on npm, checked by tsc: each dashboard is compiled as an object literal that must satisfy
#     `Dashboard`, so unknown fields, wrong types and values outside an enum are errors;
#   - the provisioning files: the datasource uid the dashboards default to is provisioned, and the dashboard
#     provider reads the directory docker-compose.yml mounts the dashboards at;
#   - docker-compose.yml with `docker-compose config` (Debian's docker-compose validates without an engine);
#   - the Kubernetes manifests in deploy/k8s/ with kubernetes-validate (PyPI; the JSON schemas of the
#     Kubernetes API, strict: an unknown or misspelt field is an error), against the Kubernetes version it pins.
# Whether every panel query runs and returns data is tested by tests/dashboards.rs against VictoriaMetrics. The
# alert rules, and deploy/prometheus.yml with the rule files docker-compose.yml mounts, are checked by
# scripts/check-alerts.sh (promtool, vmalert-tool).
# Tools are installed once into $AQUIFER_TOOLS_DIR (default /tmp/aquifer-tools): npm packages, a Python venv
# with kubernetes-validate, and the Debian package docker-compose.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/services/lib.sh"
tools=${AQUIFER_TOOLS_DIR:-/tmp/aquifer-tools}
grafana_schema=13.2.3
typescript=5.9.3
kubernetes_validate=1.37.0
kubernetes_version=1.34.0

# 1. Dashboards against @grafana/schema.
npm_dir=$tools/grafana-schema-$grafana_schema
if [ ! -x "$npm_dir/node_modules/.bin/tsc" ] || [ ! -d "$npm_dir/node_modules/@grafana/schema" ]; then
  command -v npm >/dev/null || apt_install npm
  log "installing @grafana/schema@$grafana_schema and typescript@$typescript into $npm_dir"
  mkdir -p "$npm_dir"
  (cd "$npm_dir" && npm install --no-audit --no-fund --silent --save-exact "@grafana/schema@$grafana_schema" "typescript@$typescript")
fi
check=$npm_dir/check
rm -rf "$check"
mkdir -p "$check"
cat >"$check/tsconfig.json" <<'JSON'
{ "compilerOptions": { "strict": true, "noEmit": true, "module": "esnext", "moduleResolution": "bundler",
    "target": "es2022", "skipLibCheck": true, "types": [] }, "include": ["*.ts"] }
JSON
for f in "$root"/grafana/dashboards/*.json; do
  name=$(basename "$f" .json)
  {
    echo "import type { Dashboard } from '@grafana/schema';"
    # JSON holds an enum's values, not its TypeScript members: map enum types to their literal values.
    echo 'type Json<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T : T extends ReadonlyArray<infer U> ? Array<Json<U>> : T extends object ? { [K in keyof T]: Json<T[K]> } : T;'
    # Parenthesized: a file ending in a newline would otherwise put one before `satisfies`, which TypeScript refuses.
    printf 'export const dashboard = ('
    cat "$f"
    echo ') satisfies Json<Dashboard>;'
  } >"$check/$name.ts"
done
log "checking $(ls "$root"/grafana/dashboards/*.json | wc -l) dashboards against @grafana/schema $grafana_schema"
(cd "$npm_dir" && node_modules/.bin/tsc -p check)

# 2 and 3 need PyYAML and docker-compose (Debian packages; docker-compose depends on python3-yaml).
apt_install docker-compose
log "checking the provisioning files against the dashboards and docker-compose.yml"
/usr/bin/python3 - "$root" <<'PY'
import glob, json, sys, yaml
root = sys.argv[1]
errors = []
ds = yaml.safe_load(open(f"{root}/grafana/provisioning/datasources/prometheus.yaml"))
uids = {d["uid"] for d in ds["datasources"]}
providers = yaml.safe_load(open(f"{root}/grafana/provisioning/dashboards/aquifer.yaml"))["providers"]
compose = yaml.safe_load(open(f"{root}/docker-compose.yml"))
mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
for p in providers:
    path = p["options"]["path"]
    if mounts.get(path) != "./grafana/dashboards":
        errors.append(f"dashboard provider {p['name']} reads {path}, which docker-compose.yml does not mount from ./grafana/dashboards")
for f in sorted(glob.glob(f"{root}/grafana/dashboards/*.json")):
    d = json.load(open(f))
    var = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
    if not var or var[0]["current"]["value"] not in uids:
        errors.append(f"{f}: the datasource variable's default is not a provisioned uid ({sorted(uids)})")
    ids = [p["id"] for p in d["panels"]]
    if len(ids) != len(set(ids)):
        errors.append(f"{f}: duplicate panel ids")
if errors:
    sys.exit("\n".join(errors))
PY

log "checking docker-compose.yml with docker-compose config"
(cd "$root" && docker-compose -f docker-compose.yml config -q)
# 4. Kubernetes manifests.
venv=$tools/kubernetes-validate-$kubernetes_validate
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
  log "installing kubernetes-validate==$kubernetes_validate into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$kubernetes_validate"
fi
log "checking deploy/k8s/*.yaml against the Kubernetes $kubernetes_version API (strict)"
"$venv/bin/kubernetes-validate" --strict --no-warn -k "$kubernetes_version" "$root"/deploy/k8s/*.yaml
log "deploy files valid"
