"""The engine process's settings: the only place ``weir engine`` reads the environment.

``EngineSettings.from_env()`` validates every variable and raises ``SettingsError`` naming the
variable that is wrong. Components receive typed arguments, never this object. The orchestrator's
settings (``orchestrator/settings.py``) share the parsing helpers defined here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from engine.definition.duration import parse_duration
from engine.errors import WeirError


class SettingsError(WeirError):
    """An environment variable has a value that cannot work; the message names it."""


Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A duration variable: plain seconds (``30``) or a duration string (``500ms``, ``1m``)."""

Port = Annotated[int, Field(ge=0, le=65535)]


class EnvSettings(BaseModel):
    """Base for settings read from environment variables named like the fields, upper-cased."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    _prefix: ClassVar[str] = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Read the variables this class declares from ``environ`` (default ``os.environ``).

        Empty variables count as unset. ``overrides`` (field names) win over the environment,
        which is how CLI options are applied.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(name.upper(), "")
            if raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                message = str(error["msg"]).removeprefix("Value error, ")
                if not error["loc"]:  # a check across fields names its variables itself
                    problems.append(message)
                    continue
                field = str(error["loc"][0])
                problems.append(f"{field.upper()}={values.get(field, '')!r}: {message}")
            raise SettingsError("invalid settings: " + "; ".join(problems)) from None


def default_host_id() -> str:
    """The host name: the pod name in Kubernetes."""
    return socket.gethostname()


class EngineSettings(EnvSettings):
    """Environment variables of ``weir engine`` (documented in the README's configuration table)."""

    engine_id: str = Field(default_factory=default_host_id, min_length=1)
    """Identifier reported to orchestrators; defaults to the host name."""
    bind_address: str = "0.0.0.0"
    """Interface the gRPC and metrics servers listen on."""
    port: Port = 50051
    """gRPC port (the Engine service, grpc.health.v1, reflection)."""
    capacity: int = Field(default=10, ge=1, le=100_000)
    """Executions run at once; more are refused and the orchestrator places them elsewhere."""
    metrics_port: Port = 9090
    """Prometheus metrics port; 0 turns the metrics server off."""
    shutdown_grace_period: Seconds = 30.0
    """On SIGTERM: how long running executions may take to finish before they are handed back."""
    detached_timeout: Annotated[Seconds, Field(gt=0)] = 60.0
    """How long executions of a closed orchestrator stream keep running (and their unacknowledged
    results are kept) waiting for an orchestrator to attach them; then they are cancelled."""
    park_after: Annotated[Seconds, Field(ge=0)] = 10.0
    """An execution whose only unfinished work waits on the orchestrator (tasks, callbacks,
    signals, durable timers, retry backoffs) this long is parked: the engine gives its slot
    back and the orchestrator places it again when the wait ends (after at most 1 s while the
    engine is full). 0: never park."""
    lua_workers: int = Field(default=2, ge=1, le=64)
    """Threads running Lua code that is too long for the inline slice."""
    log_level: str = "INFO"
