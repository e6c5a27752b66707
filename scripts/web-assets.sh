#!/usr/bin/env bash
# Install the console's front-end packages from the npm registry (package-lock.json pins them) and
# copy the files the pages use into web/static/vendor/ (gitignored). Run by `make install`;
# nothing is fetched from the internet when the app runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules/vazirmatn ] || [ ! -f node_modules/chart.js/dist/chart.umd.min.js ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
out=web/static/vendor
mkdir -p "$out/vazirmatn"
for weight in Regular Medium Bold; do
  cp node_modules/vazirmatn/fonts/webfonts/Vazirmatn-$weight.woff2 "$out/vazirmatn/"
done
cp node_modules/vazirmatn/OFL.txt "$out/vazirmatn/"
cp node_modules/chart.js/dist/chart.umd.min.js "$out/"
