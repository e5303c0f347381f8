"""The FSL seed's "your code": HTTP actions for examples/approval-flow.yaml.

Serves /ci, /approval, /approval2, /deploy and /notify on 127.0.0.1 (port 18080, as in the
seed), each answering ``{"flowId", "stepName", "ackState", "uuid", "done"}`` with the next
outcome from its script. The default script makes CI fail once (showing the FAIL -> A loop) and
asks for a second approval (NEXT), which agrees.

    python examples/actions.py [--port 18080] [--script approval=REJECT ...]
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from engine.testing import scripted_server

DEFAULT = {
    "ci": ["FAIL", "SUCCESS"],
    "approval": ["NEXT"],
    "approval2": ["AGREE"],
    "deploy": ["SUCCESS"],
    "notify": ["SUCCESS"],
}


def answers(states: list[str]) -> list[tuple[int, Any]]:
    return [
        (
            200,
            {"flowId": "", "stepName": "", "ackState": s, "uuid": str(uuid.uuid4()), "done": True},
        )
        for s in states
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument(
        "--script",
        action="append",
        default=[],
        metavar="ACTION=STATE[,STATE...]",
        help="Outcomes an action answers, in order (the last repeats).",
    )
    args = parser.parse_args()
    script = dict(DEFAULT)
    for item in args.script:
        action, _, states = item.partition("=")
        script[action] = states.split(",")
    with scripted_server(
        {f"/{a}": answers(s) for a, s in script.items()}, port=args.port
    ) as server:
        print(f"actions listening on {server.url}", flush=True)  # noqa: T201 (a script)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
