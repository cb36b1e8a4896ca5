#!/usr/bin/env bash
# Rebuild the vendored viewer (../static/vendor/cornerstone3d-viewer.js) from entry.js and the versions that
# package-lock.json pins, with their licences beside it. Needs Node.js and the npm registry; the box needs neither.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts
out=../static/vendor
mkdir -p "$out"
npx esbuild entry.js --bundle --format=iife --global-name=cxrViewer --minify --legal-comments=none \
    --target=es2020 --outfile="$out/cornerstone3d-viewer.js" --log-level=warning
# every package the bundle holds, with its version and licence text
node -e '
const fs = require("fs"), path = require("path");
const lock = JSON.parse(fs.readFileSync("package-lock.json"));
let text = "The packages package-lock.json installs for cornerstone3d-viewer.js (edge/cxr_edge/web/viewer/build.sh): " +
  "the bundle holds those its code imports. Each with its version, licence and licence text.\n";
for (const [where, pkg] of Object.entries(lock.packages)) {
  if (!where || pkg.dev) continue;
  const dir = where; const meta = JSON.parse(fs.readFileSync(path.join(dir, "package.json")));
  const file = fs.readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  text += `\n==== ${meta.name} ${meta.version} (${meta.license || "see below"})\n`;
  if (file) text += fs.readFileSync(path.join(dir, file), "utf8") + "\n";
}
fs.writeFileSync(process.argv[1], text);
' "$out/cornerstone3d-viewer.LICENSES.txt"
ls -l "$out"
