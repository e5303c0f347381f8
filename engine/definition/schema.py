"""The definition format as pydantic documents: the boundary where untrusted YAML/JSON is parsed.

These classes check shapes and scalar values and produce the JSON Schema that ``weir schema``
prints; graph rules (cycles, references, Lua syntax) are checked afterwards in ``checks.py`` and
the result is converted to the frozen domain model of ``model.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
    field_validator,
)

from engine.definition.duration import parse_duration
from engine.definition.semver import Version

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$"
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
PYTHON_TARGET_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
EXECUTORS = ("lua", "http", "python", "workflow", "task", "wait", "noop", "sleep")
SIGNAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$|^\d+(\.\d+)?$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "Seconds, or a duration like 500ms, 30s, 10m, 1h30m.",
        }
    ),
]

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "ki": 2**10,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mi": 2**20,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gi": 2**30,
    "gib": 2**30,
}


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``64MB``, ``64Mi``, ``64MiB``; ``ValueError`` otherwise."""
    import re

    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", value)
        if match and match.group(2).lower() in _SIZE_UNITS and int(match.group(1)) > 0:
            return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    raise ValueError(f"invalid size {value!r}: expected bytes or a size like 64Mi, 16MB")


Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}],
            "description": "Bytes, or a size like 64Mi or 16MB.",
        }
    ),
]


def _semver(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"invalid semantic version '{value}': expected MAJOR.MINOR.PATCH like 1.2.0 "
            "(YAML read a number here)"
        )
    if not isinstance(value, str):
        raise ValueError(f"invalid semantic version {value!r}: expected a string like 1.2.0")
    Version.parse(value)
    return value


SemVer = Annotated[
    str,
    BeforeValidator(_semver),
    WithJsonSchema({"type": "string", "description": "A semantic version, e.g. 1.2.0."}),
]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InputDoc(_Doc):
    """A declared input. Without ``default`` it is required."""

    type: Literal["string", "number", "integer", "boolean", "object", "array", "any"] = "any"
    default: Any = None
    description: str | None = None


class RetryDoc(_Doc):
    """Exponential backoff: delay = min(backoff * factor^(n-1), max_backoff), ± jitter."""

    attempts: Annotated[int, Field(ge=1, le=1000)] = 3
    backoff: Duration = 1.0
    factor: Annotated[float, Field(ge=1.0, le=100.0)] = 2.0
    max_backoff: Duration = 300.0
    jitter: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2


class LuaDoc(_Doc):
    """The object form of ``lua``: code plus per-node sandbox limits."""

    code: str
    max_memory: Size | None = None
    instructions: Annotated[int, Field(ge=1000)] | None = None


PositiveDuration = Annotated[Duration, Field(gt=0)]


class CallbackDoc(_Doc):
    """How an asynchronous request carries its callback: weir's headers and fields (``weir``),
    or the FSL seed's action protocol (``fsl``: ``{flowId, stepName, ackStates, uuid, ...}``,
    answered at ``POST /step``)."""

    protocol: Literal["weir", "fsl"] = "weir"
    ack_states: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None,
        description="fsl: the outcomes the action may report (default: the keys of next).",
    )


def _callback(value: Any) -> Any:
    if value is True:
        return CallbackDoc()
    if value is False or value is None:
        return None
    return value


class HttpDoc(_Doc):
    """An HTTP request; 2xx succeeds with the JSON body as output, or with ``callback`` is
    accepted and completes when the service calls back."""

    url: str
    method: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]+$")] | None = Field(
        default=None, description="Defaults to POST when json or body is set, else GET."
    )
    headers: dict[str, str] = {}
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    outcome: str | None = Field(
        default=None, description="Dotted path of a response field whose value is the outcome."
    )
    callback: Annotated[CallbackDoc | None, BeforeValidator(_callback)] = Field(
        default=None,
        description="true, or {protocol, ack_states}: a 2xx answer only accepts the request; "
        "the node completes when the service calls back with the task token it carries.",
    )
    timeout: PositiveDuration | None = Field(
        default=None,
        description="With callback: how long to wait for the callback, from the request.",
    )


class WorkflowRefDoc(_Doc):
    """A sub-workflow: a name and a version range (``^1.2``, ``~1.2.3``, ``1.2.3``, ``*``)."""

    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    version: str = "*"


QueueName = Annotated[str, StringConstraints(pattern=QUEUE_PATTERN)]


class TaskDoc(_Doc):
    """A durable task on a queue, done by a worker (the SDK) or by anyone holding its token."""

    queue: QueueName = Field(description="Letters, digits, '_', '.', ':', '-'; 1 to 128.")
    timeout: PositiveDuration | None = Field(
        default=None, description="Start to close: from a worker taking the task to its answer."
    )
    heartbeat: PositiveDuration | None = Field(
        default=None, description="How long a running task may go without a heartbeat."
    )
    schedule_to_start: PositiveDuration | None = Field(
        default=None, description="How long the task may wait for a worker to take it."
    )


_PERCENT = re.compile(r"(100|[0-9]{1,2})(\.[0-9]+)?%")


def _tolerate(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _PERCENT.fullmatch(value.strip()):
        return value.strip()
    raise ValueError(
        f"invalid tolerate {value!r}: expected a count of items (0 or more) or a percentage "
        'from "0%" to "100%"'
    )


Tolerate = Annotated[
    int | str,
    BeforeValidator(_tolerate),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^(100|[0-9]{1,2})(\.[0-9]+)?%$"},
            ],
            "description": 'A count of items, or a percentage like "10%".',
        }
    ),
]


class MapDoc(_Doc):
    """Run the node once per item of a list known only at run time (docs/semantics.md, map)."""

    items: Any = Field(
        description='The list: a template such as "${outputs.list_files.files}", or a list.'
    )
    concurrency: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None, description="How many items may run at once; unbounded when not set."
    )
    tolerate: Tolerate = Field(
        default=0,
        description="How many items may fail before the node fails: a count, or a percentage "
        'like "10%" of the items.',
    )


class EdgeDoc(_Doc):
    """A conditional edge; edges are tried lowest ``priority`` first, then in listed order."""

    to: str
    when: str | None = None
    outcome: str | None = Field(
        default=None, description="Match only this outcome; without it, only non-FAIL outcomes."
    )
    priority: int | None = None


def _next_form(value: Any) -> str | None:
    return "<map>" if isinstance(value, dict) else "<edges>" if isinstance(value, list) else None


def _lua_form(value: Any) -> str | None:
    return "<code>" if isinstance(value, str) else "<object>" if isinstance(value, dict) else None


# Tags start with '<' so error paths can drop them: nodes[2].next[0].to, not ...next.<edges>[0].to
NextDoc = Annotated[
    Annotated[dict[str, str], Tag("<map>")] | Annotated[list[EdgeDoc], Tag("<edges>")],
    Discriminator(_next_form),
]


def _task_form(value: Any) -> str | None:
    return "<queue>" if isinstance(value, str) else "<object>" if isinstance(value, dict) else None


TaskField = Annotated[
    Annotated[QueueName, Tag("<queue>")] | Annotated[TaskDoc, Tag("<object>")],
    Discriminator(_task_form),
]


class WaitDoc(_Doc):
    """Wait for a signal sent to the execution (``weir signal ID NAME``)."""

    signal: Annotated[str, StringConstraints(pattern=SIGNAL_PATTERN)] = Field(
        description="The signal's name: letters, digits, '_', '.', ':', '-'; 1 to 128."
    )
    timeout: PositiveDuration | None = Field(
        default=None, description="How long to wait; then the attempt fails (retry decides)."
    )


LuaField = Annotated[
    Annotated[str, Tag("<code>")] | Annotated[LuaDoc, Tag("<object>")],
    Discriminator(_lua_form),
]


class NodeDoc(_Doc):
    """One node: an id, exactly one executor, and how it is scheduled."""

    id: Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN)]
    description: str | None = None
    lua: LuaField | None = None
    http: HttpDoc | None = None
    python: Annotated[str, StringConstraints(pattern=PYTHON_TARGET_PATTERN)] | None = Field(
        default=None, description='"package.module:function", sync or async.'
    )
    workflow: WorkflowRefDoc | None = None
    task: TaskField | None = Field(
        default=None, description="A queue name, or {queue, timeout, heartbeat, schedule_to_start}."
    )
    wait: WaitDoc | None = Field(
        default=None, description="{signal, timeout}: wait until the signal is sent."
    )
    noop: dict[str, Any] | None = None
    sleep: Duration | None = None
    args: dict[str, Any] = {}
    depends_on: list[str] = []
    trigger_rule: Literal["all_success", "all_done", "one_failed"] = "all_success"
    when: str | None = None
    next: NextDoc | None = None
    max_visits: Annotated[int, Field(ge=1)] | None = None
    retry: RetryDoc | None = None
    timeout: Duration | None = None
    map: MapDoc | None = None

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_dependency(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def executors(self) -> list[str]:
        """The executor keys present on this node (``noop: {}`` counts, as does ``noop:``)."""
        return [key for key in EXECUTORS if key in self.model_fields_set]


class TriggerDoc(_Doc):
    """A cron trigger: start an execution of the workflow on a schedule (docs/triggers.md)."""

    name: Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN)] | None = Field(
        default=None, description='Unique in the workflow; defaults to "cron-<index>".'
    )
    cron: str = Field(
        description="Five fields (minute hour day-of-month month day-of-week) or an alias: "
        "@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually."
    )
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Paris.")
    inputs: dict[str, Any] = Field(
        default={},
        description="Execution inputs; templates see trigger.time, trigger.utc, trigger.name, "
        "trigger.workflow and trigger.fired_at.",
    )
    overlap: Literal["allow", "skip", "cancel-previous"] = Field(
        default="skip", description="What a tick does while the previous execution runs."
    )
    catch_up: Literal["none", "latest", "all"] = Field(
        default="none", description="Which ticks missed during downtime still fire."
    )
    catch_up_window: Duration = Field(
        default=3600.0, description="How far back catch_up looks (default 1h)."
    )
    enabled: bool = True


class WorkflowDoc(_Doc):
    """A workflow definition, ``apiVersion: weir/v1``, ``kind: Workflow``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        title="weir workflow",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    api_version: Literal["weir/v1"] = Field(default="weir/v1", alias="apiVersion")
    kind: Literal["Workflow"] = "Workflow"
    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    version: SemVer
    description: str | None = None
    inputs: dict[str, InputDoc] = {}
    timeout: Duration | None = None
    concurrency: Annotated[int, Field(ge=1)] | None = None
    nodes: Annotated[list[NodeDoc], Field(min_length=1)]
    outputs: dict[str, Any] = {}
    triggers: list[TriggerDoc] = []


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the definition format, for editors (``weir schema``)."""
    return WorkflowDoc.model_json_schema(by_alias=True)
