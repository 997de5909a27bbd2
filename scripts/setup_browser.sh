#!/usr/bin/env bash
# Dev tool (not shipped): what the browser tests need, installed idempotently.
#  - Debian's chromium (/usr/bin/chromium) via apt-get; `apt-get update` only when the package
#    is not installable from the current lists.
#  - npm playwright-core, pinned, into the ignored project folder .labenv/node (no browser
#    download: playwright-core never fetches one; the tests drive /usr/bin/chromium).
#  - the newest comfyui-frontend-package on PyPI (pinned below), unpacked into the ignored folder
#    .labenv/frontends/<version>/static (no install into the venv): the browser tests serve it with
#    main.py --front-end-root, beside the 1.32.9 that ComfyUI 0.3.75 ships.
# A second run only checks three paths and stamps: it takes well under a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLAYWRIGHT_CORE_VERSION="1.65.1"
NEWEST_FRONTEND_VERSION="1.58.1"   # newest comfyui-frontend-package on PyPI when pinned
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

frontend_dir="$root/.labenv/frontends/$NEWEST_FRONTEND_VERSION"
if [ ! -f "$frontend_dir/.done" ] || [ ! -f "$frontend_dir/static/index.html" ]; then
    py="$root/.labenv/venv/bin/python"
    [ -x "$py" ] || py="${PYTHON:-python3}"
    mkdir -p "$root/.labenv/cache"
    "$py" -m pip download -q --no-deps "comfyui-frontend-package==$NEWEST_FRONTEND_VERSION" -d "$root/.labenv/cache"
    rm -rf "$frontend_dir"
    mkdir -p "$frontend_dir"
    "$py" - "$root/.labenv/cache" "$frontend_dir" "$NEWEST_FRONTEND_VERSION" <<'PY'
import glob, os, sys, zipfile
whl = glob.glob(os.path.join(sys.argv[1], "comfyui_frontend_package-" + sys.argv[3] + "-*.whl"))[0]
prefix = "comfyui_frontend_package/static/"
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(sys.argv[2], "static", name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                dst.write(src.read())
PY
    touch "$frontend_dir/.done"
fi
