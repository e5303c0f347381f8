# Sourced by the scripts: create .venv when missing and (re)install the project when
# pyproject.toml changed since the last install. Everything a test needs comes from here.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    echo "creating .venv with $($PYTHON --version 2>&1)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.weir-installed"
if [[ ! -f "$stamp" ]] || ! cat pyproject.toml sdk/python/pyproject.toml requirements.lock | cmp -s - "$stamp"; then
    echo "installing weir and its development tools into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23.2" >&2
    # requirements.lock pins the runtime dependencies' whole closure, as the images do
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        -c requirements.lock -e sdk/python -e ".[dev]" >&2
    cat pyproject.toml sdk/python/pyproject.toml requirements.lock >"$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
