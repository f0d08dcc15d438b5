#!/usr/bin/env bash
# Regenerate grafana-dashboard.schema.json from Grafana's own published TypeScript types:
#   - @grafana/schema: the classic dashboard model (Dashboard, Panel, RowPanel, VariableModel,
#     FieldConfig, ...) and each core panel plugin's Options / FieldConfig ("panelcfg"),
#   - @grafana/prometheus: the Prometheus query model that panel targets follow.
# ts-json-schema-generator turns them into one JSON schema with additionalProperties: false on
# every interface, so a misspelt key anywhere in a dashboard fails validation.
#
# Needs node + npm and the npm registry; only for regenerating. The generated JSON is committed
# and the tests (tests/unit/test_dashboards.py) read it, so CI never needs npm.
set -euo pipefail
cd "$(dirname "$0")"

PROMETHEUS_PKG="@grafana/prometheus@13.2.3"   # keep in step with @grafana/schema in package.json
OUT="grafana-dashboard.schema.json"
PANELS=(stat timeseries table bargauge piechart text heatmap statetimeline gauge)

npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

rm -rf .build && mkdir .build
trap 'rm -rf .build' EXIT

# @grafana/prometheus depends on all of Grafana's frontend; only its query type is needed, so take
# that one declaration file from the package tarball instead of installing the package. Its only
# foreign import is @grafana/data's Scope types (runtime scope filters, never saved in a
# dashboard): stand-ins below keep those three fields open objects. Its base DataQuery is taken
# from the generated common types (the package index also re-exports a hand-written "veneer"
# DataQuery of the same name, which the generator would refuse as a duplicate).
(cd .build && npm pack --silent --loglevel=error "$PROMETHEUS_PKG" >/dev/null \
    && tar xzf grafana-prometheus-*.tgz package/dist/types/dataquery.d.ts \
    && sed -e "s#from '@grafana/data'#from './grafana-data-scope'#" \
        -e "s#from '@grafana/schema'#from '../node_modules/@grafana/schema/dist/types/common/common.gen'#" \
        package/dist/types/dataquery.d.ts >dataquery.d.ts)
cat >.build/grafana-data-scope.d.ts <<'TS'
export type Scope = { metadata: { name: string } };
export type ScopeSpec = Record<string, unknown>;
export type ScopeSpecFilter = Record<string, unknown>;
TS

panelcfg() { echo "node_modules/@grafana/schema/dist/types/raw/composable/$1/panelcfg/x/types.gen"; }
ROOTS=(GrafanaDashboard PrometheusTarget)
{
    echo "import type * as dashboard from '../node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen';"
    echo "import type { Prometheus } from './dataquery';"
    echo "export type GrafanaDashboard = dashboard.Dashboard;"
    echo "export type PrometheusTarget = Prometheus;"
    for panel in "${PANELS[@]}"; do
        echo "import type * as $panel from '../$(panelcfg "$panel")';"
        echo "export type Options_$panel = $panel.Options;"
        ROOTS+=("Options_$panel")
        # Not every panel has custom field options (stat, bargauge, gauge and text have none).
        if grep -q "export interface FieldConfig" "$(panelcfg "$panel").d.ts"; then
            echo "export type FieldConfig_$panel = $panel.FieldConfig;"
            ROOTS+=("FieldConfig_$panel")
        fi
    done
} >.build/entry.ts

cat >.build/tsconfig.json <<'JSON'
{"compilerOptions": {"strict": true, "moduleResolution": "bundler", "module": "esnext",
 "target": "es2022", "skipLibCheck": true, "noEmit": true}, "files": ["entry.ts"]}
JSON

# One generator run per root: each panel plugin names its types Options / FieldConfig, and in a
# single run the generator would silently merge same-named types of different modules.
for root in "${ROOTS[@]}"; do
    npx --no-install ts-json-schema-generator --path .build/entry.ts \
        --tsconfig .build/tsconfig.json --type "$root" --expose export --jsDoc basic \
        --out ".build/$root.json"
done

# Merge into one document: every definition is namespaced by its root ("Options_stat.Options"),
# the roots are listed under "roots"; keys sorted so regeneration gives a stable diff.
node - "$PROMETHEUS_PKG" "$OUT" "${ROOTS[@]}" <<'JS'
const fs = require("fs");
const [prometheusPkg, out, ...roots] = process.argv.slice(2);
const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
const version = (name) => lock.packages[`node_modules/${name}`].version;
const definitions = {};
const rootRefs = {};
const rewrite = (node, prefix) => {
  if (Array.isArray(node)) return node.map((v) => rewrite(v, prefix));
  if (node === null || typeof node !== "object") return node;
  const copy = {};
  for (const [key, value] of Object.entries(node)) {
    copy[key] =
      key === "$ref" && typeof value === "string" && value.startsWith("#/definitions/")
        ? `#/definitions/${prefix}.${value.slice("#/definitions/".length)}`
        : rewrite(value, prefix);
  }
  return copy;
};
for (const root of roots) {
  const schema = JSON.parse(fs.readFileSync(`.build/${root}.json`, "utf8"));
  for (const [name, def] of Object.entries(schema.definitions)) {
    definitions[`${root}.${decodeURIComponent(name)}`] = rewrite(def, root);
  }
  rootRefs[root] = { $ref: `#/definitions/${root}.${root}` };
}
const sortKeys = (node) => {
  if (Array.isArray(node)) return node.map(sortKeys);
  if (node === null || typeof node !== "object") return node;
  return Object.fromEntries(Object.keys(node).sort().map((k) => [k, sortKeys(node[k])]));
};
const doc = {
  $schema: "http://json-schema.org/draft-07/schema#",
  $comment:
    `Generated by dashboards/schema/generate.sh from @grafana/schema@${version("@grafana/schema")}` +
    ` and ${prometheusPkg} with ts-json-schema-generator@${version("ts-json-schema-generator")}.` +
    " Do not edit. roots: GrafanaDashboard (classic dashboard JSON), PrometheusTarget (a panel" +
    " target), Options_<panel type> and FieldConfig_<panel type> (fieldConfig.defaults.custom).",
  roots: rootRefs,
  definitions: sortKeys(definitions),
};
fs.writeFileSync(out, JSON.stringify(doc, null, 1) + "\n");
JS
echo "wrote $OUT"
