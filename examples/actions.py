"""The FSL seed's "your code": HTTP actions for examples/approval-flow.yaml and .fsl.

Serves /ci, /approval, /approval2, /deploy and /notify on 127.0.0.1 (port 18080, as in the
seed), each with the next outcome from its script. Two ways, as the request asks:

* a plain request (examples/approval-flow.yaml, synchronous HTTP nodes): answered at once with
  ``{"flowId", "stepName", "ackState", "uuid", "done"}``;
* the seed's asynchronous protocol (examples/approval-flow.fsl, ``http.callback`` with protocol
  fsl: the body has ``uuid`` and ``ackStates``): accepted at once (202), then reported back
  after ``--delay`` seconds to the API server's ``/step`` (``--report-to``, default the
  orchestrator's HTTP port on this machine) with ``{flowId, stepName, ackState, uuid, done}``.

The default script makes CI fail once (showing the FAIL -> A loop) and asks for a second
approval (NEXT), which agrees.

    python examples/actions.py [--port 18080] [--report-to http://127.0.0.1:8080/step]
                               [--delay 0.5] [--script approval=REJECT ...]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

DEFAULT = {
    "ci": ["FAIL", "SUCCESS"],
    "approval": ["NEXT"],
    "approval2": ["AGREE"],
    "deploy": ["SUCCESS"],
    "notify": ["SUCCESS"],
}


class Actions:
    """Each action's outcomes in turn (the last one repeats)."""

    def __init__(self, script: dict[str, list[str]], report_to: str, delay: float) -> None:
        self.script = script
        self.report_to = report_to
        self.delay = delay
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def next_state(self, action: str) -> str | None:
        states = self.script.get(action)
        if not states:
            return None
        with self.lock:
            n = self.calls.get(action, 0)
            self.calls[action] = n + 1
        return states[min(n, len(states) - 1)]

    def report(self, body: dict[str, Any], state: str) -> None:
        """Report the outcome to /step after the delay (the action's work)."""
        time.sleep(self.delay)
        report = {
            "flowId": body.get("flowId", ""),
            "stepName": body.get("stepName", ""),
            "ackState": state,
            "uuid": body["uuid"],
            "done": True,
        }
        try:
            answer = httpx.post(self.report_to, json=report, timeout=10)
            done = f"reported {state} for step {report['stepName']}: {answer.status_code}"
            print(done, flush=True)  # noqa: T201
        except httpx.HTTPError as exc:
            print(f"report to {self.report_to} failed: {exc}", flush=True)  # noqa: T201


def handler(actions: Actions) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            state = actions.next_state(self.path.strip("/"))
            if state is None:
                self._send(404, {"error": f"no action {self.path}"})
            elif isinstance(body, dict) and "uuid" in body and "ackStates" in body:
                self._send(202, {"accepted": True})
                threading.Thread(target=actions.report, args=(body, state), daemon=True).start()
            else:
                flow = body.get("flowId", "") if isinstance(body, dict) else ""
                step = body.get("stepName", "") if isinstance(body, dict) else ""
                self._send(
                    200,
                    {
                        "flowId": flow,
                        "stepName": step,
                        "ackState": state,
                        "uuid": str(uuid.uuid4()),
                        "done": True,
                    },
                )

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--report-to", default="http://127.0.0.1:8080/step")
    parser.add_argument("--delay", type=float, default=0.5)
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
    actions = Actions(script, args.report_to, args.delay)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(actions))
    server.daemon_threads = True
    print(f"actions listening on http://127.0.0.1:{server.server_address[1]}", flush=True)  # noqa: T201
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
