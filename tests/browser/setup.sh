#!/usr/bin/env bash
# Headless Chromium (Debian's package) and playwright-core (npm) for the dashboard's browser test.
# Idempotent; installs playwright-core into the project-local .hive/node.
set -euo pipefail
cd "$(dirname "$0")/../.."
PLAYWRIGHT_CORE_VERSION=1.65.1
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if [ ! -f .hive/node/node_modules/playwright-core/package.json ]; then
  mkdir -p .hive/node
  npm install --silent --no-audit --no-fund --no-save --prefix .hive/node "playwright-core@${PLAYWRIGHT_CORE_VERSION}"
fi
