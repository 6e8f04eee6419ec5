#!/usr/bin/env bash
# Renders the HTML report of a trace in headless Chromium to a PNG, to see the
# charts and the lock graph as a reader of the report sees them.
#
#   bench/render-report.sh [TRACE] [OUT.png]
#
# TRACE defaults to testdata/locks-pg15, OUT.png to target/report-locks-pg15.png.
# The dbflight binary is $DBFLIGHT, or target/debug/dbflight (built if missing).
# Exits 77 (skipped) when no Chromium is installed: apt-get install chromium.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
trace=${1:-$root/testdata/locks-pg15}
out=${2:-$root/target/report-locks-pg15.png}
width=${WIDTH:-1280}
height=${HEIGHT:-4000}

browser=""
for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
    echo "render-report: SKIPPED: no chromium on PATH (apt-get install chromium)" >&2
    exit 77
fi

dbflight=${DBFLIGHT:-$root/target/debug/dbflight}
if [ ! -x "$dbflight" ]; then
    (cd "$root" && cargo build -q -p dbflight-analyzer)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
html=$work/report.html
"$dbflight" report "$trace" --format html -o "$html"

mkdir -p "$(dirname "$out")"
rm -f "$out"
# --no-sandbox: Chromium refuses to run as root with its sandbox. The report
# loads nothing from the network; the virtual time budget lets layout settle.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --no-first-run --no-default-browser-check --disable-extensions \
    --user-data-dir="$work/profile" \
    --virtual-time-budget=3000 --window-size="$width,$height" \
    --screenshot="$out" "file://$html" >"$work/chromium.log" 2>&1 || {
    echo "render-report: chromium failed:" >&2
    cat "$work/chromium.log" >&2
    exit 1
}
if [ ! -s "$out" ]; then
    echo "render-report: chromium wrote no screenshot to $out" >&2
    cat "$work/chromium.log" >&2
    exit 1
fi
umask 077
chmod 600 "$out"
echo "render-report: $out (${width}x${height}) from $trace" >&2
