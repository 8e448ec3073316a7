# Sourced by the scripts in this folder: creates .venv with the project and its tools.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

# libfaketime: the clock-skew test runs a run worker whose clock is ten minutes off.
if ! ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 && [ "$(id -u)" = 0 ] &&
    command -v apt-get >/dev/null 2>&1; then
    # A new machine may not have the package lists yet: read them once, then try again.
    apt-get install -y -qq faketime >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq faketime >/dev/null; } ||
        echo "warning: could not install faketime" >&2
fi

if [ ! -x .venv/bin/python ]; then
    "$(find_python)" -m venv .venv
fi
# Reinstall only when the project's requirements changed since the last install.
STAMP=.venv/.jobs_pipeline-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
# The instance configuration lives at the repository root; DAGSTER_HOME holds the data.
if [ ! -e "$DAGSTER_HOME/dagster.yaml" ]; then
    ln -s "$ROOT/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
fi
