#!/usr/bin/env bash
# Dev tool (not shipped): what the browser tests need, installed idempotently.
#  - Debian's chromium (/usr/bin/chromium) via apt-get; `apt-get update` only when the package
#    is not installable from the current lists.
#  - npm playwright-core, pinned, into the ignored project folder .labenv/node (no browser
#    download: playwright-core never fetches one; the tests drive /usr/bin/chromium).
# A second run only checks two paths and a stamp: it takes well under a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLAYWRIGHT_CORE_VERSION="1.65.1"
node_dir="$root/.labenv/node"
stamp="$node_dir/.stamp-playwright-core-$PLAYWRIGHT_CORE_VERSION"

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show chromium >/dev/null 2>&1; then
        apt-get update -q
    fi
    apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show nodejs >/dev/null 2>&1; then
        apt-get update -q
    fi
    apt-get install -y -q --no-install-recommends nodejs npm
fi

if [ ! -f "$stamp" ] || [ ! -f "$node_dir/node_modules/playwright-core/package.json" ]; then
    mkdir -p "$node_dir"
    rm -f "$node_dir"/.stamp-playwright-core-*
    [ -f "$node_dir/package.json" ] || echo '{"name": "sampler-lab-browser-tests", "private": true}' > "$node_dir/package.json"
    (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error --save-exact \
        "playwright-core@$PLAYWRIGHT_CORE_VERSION")
    touch "$stamp"
fi
