#!/usr/bin/env bash
# Refresh the web console's vendored browser libraries from npm.
#
# server/web/package.json + package-lock.json are the source of truth; this installs exactly the
# locked versions (npm ci) and copies their distribution files into server/web/static/vendor/,
# which is committed and shipped as package data: neither users nor CI need npm or a CDN.
# tests/web/test_vendor.py checks that the vendored files are the ones this script wrote for the
# lock's version and integrity.
set -euo pipefail
cd "$(dirname "$0")/../server/web"
npm ci --ignore-scripts --no-audit --no-fund
dest=static/vendor/leaflet
rm -rf "$dest"
mkdir -p "$dest/images"
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css "$dest/"
cp node_modules/leaflet/dist/images/*.png "$dest/images/"
cp node_modules/leaflet/LICENSE "$dest/LICENSE.txt"
# the manifest ties the files to the lock: version, integrity and each file's sha256
node - "$dest" <<'JS'
const fs = require("fs"), path = require("path"), crypto = require("crypto");
const dest = process.argv[2];
const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
const pkg = lock.packages["node_modules/leaflet"];
const files = {};
const walk = (dir) => fs.readdirSync(dir).sort().forEach((name) => {
  const p = path.join(dir, name);
  if (fs.statSync(p).isDirectory()) return walk(p);
  if (name === "manifest.json") return;
  files[path.relative(dest, p)] = crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");
});
walk(dest);
const manifest = {package: "leaflet", version: pkg.version, integrity: pkg.integrity,
                  resolved: pkg.resolved, files};
fs.writeFileSync(path.join(dest, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
JS
echo "vendored leaflet $(node -p 'require("./package-lock.json").packages["node_modules/leaflet"].version') into server/web/$dest"
