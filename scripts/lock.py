"""Write requirements.lock: the exact versions of weir's runtime dependencies, direct and
transitive, as installed in this venv (the images build from it; scripts/_venv.sh installs with
it as constraints). Run ``scripts/lock`` after changing [project.dependencies] in pyproject.toml;
``--check`` exits 1 when the file is not what it would write.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
LOCK = ROOT / "requirements.lock"
HEADER = (
    "# weir's runtime dependencies, direct and transitive, pinned (written by scripts/lock from\n"
    "# the venv; Python 3.11 on Linux). The images build with it and scripts/_venv.sh installs\n"
    "# with it as constraints. Regenerate after changing [project.dependencies].\n"
)


def closure() -> dict[str, str]:
    """Canonical name -> installed version of every runtime dependency of the project."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {k: str(v) for k, v in default_environment().items()}
    pending = [Requirement(text) for text in project["dependencies"]]
    found: dict[str, str] = {}
    while pending:
        req = pending.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in found:
            continue
        dist = metadata.distribution(req.name)
        found[name] = dist.version
        for text in dist.requires or []:
            sub = Requirement(text)
            extras_ok = sub.marker is None or any(
                sub.marker.evaluate({**env, "extra": extra}) for extra in req.extras or {""}
            )
            if extras_ok:
                pending.append(sub)
    return found


def render() -> str:
    pins = closure()
    return HEADER + "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not LOCK.exists() or LOCK.read_text() != text:
            print("requirements.lock is out of date: run scripts/lock", file=sys.stderr)
            return 1
        return 0
    LOCK.write_text(text)
    print(f"wrote {LOCK.relative_to(ROOT)}: {text.count('==')} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
