"""Build definitions in Python; the result is the very model that YAML or JSON would produce.

    wf = (
        Workflow("etl", "1.0.0", inputs={"rows": {"type": "integer", "default": 3}})
        .node("extract", lua="return {n = inputs.rows}")
        .node("load", lua="return {n = outputs.extract.n}", depends_on="extract")
        .build()
    )

The builder writes the document a user would have written and validates it with the same
parser, so every rule, default and error message is shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from engine.definition.model import Definition
from engine.definition.parser import from_document
from engine.lua import LuaSandbox

Duration = float | str


class Workflow:
    """A workflow definition under construction; ``build()`` validates it into a ``Definition``."""

    def __init__(
        self,
        name: str,
        version: str,
        *,
        description: str | None = None,
        inputs: Mapping[str, Mapping[str, Any]] | None = None,
        outputs: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        concurrency: int | None = None,
        triggers: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self._doc: dict[str, Any] = {
            "apiVersion": "weir/v1",
            "kind": "Workflow",
            "name": name,
            "version": version,
        }
        _put(self._doc, description=description, timeout=timeout, concurrency=concurrency)
        self._doc["inputs"] = {k: dict(v) for k, v in (inputs or {}).items()}
        self._doc["nodes"] = []
        self._doc["outputs"] = dict(outputs or {})
        self._doc["triggers"] = [dict(t) for t in triggers or ()]

    def input(
        self, name: str, type: str = "any", *, description: str | None = None, **default: Any
    ) -> Workflow:
        """Declare an input; pass ``default=...`` to make it optional."""
        spec: dict[str, Any] = {"type": type}
        _put(spec, description=description)
        spec.update(default)
        self._doc["inputs"][name] = spec
        return self

    def node(
        self,
        id: str,
        *,
        lua: str | Mapping[str, Any] | None = None,
        http: Mapping[str, Any] | None = None,
        python: str | None = None,
        workflow: Mapping[str, str] | None = None,
        task: str | Mapping[str, Any] | None = None,
        wait: Mapping[str, Any] | None = None,
        noop: bool = False,
        sleep: Duration | None = None,
        args: Mapping[str, Any] | None = None,
        depends_on: str | Sequence[str] | None = None,
        trigger_rule: str | None = None,
        when: str | None = None,
        next: Mapping[str, str] | Sequence[Mapping[str, Any]] | None = None,
        max_visits: int | None = None,
        retry: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        description: str | None = None,
        map: Mapping[str, Any] | None = None,
    ) -> Workflow:
        """Add a node; keyword names and values are exactly the definition format's keys."""
        node: dict[str, Any] = {"id": id}
        if noop:
            node["noop"] = {}
        _put(
            node,
            description=description,
            lua=lua if not isinstance(lua, Mapping) else dict(lua),
            http=dict(http) if http is not None else None,
            python=python,
            workflow=dict(workflow) if workflow is not None else None,
            task=task if not isinstance(task, Mapping) else dict(task),
            wait=dict(wait) if wait is not None else None,
            sleep=sleep,
            args=dict(args) if args else None,
            depends_on=[depends_on]
            if isinstance(depends_on, str)
            else list(depends_on or []) or None,
            trigger_rule=trigger_rule,
            when=when,
            next=(dict(next) if isinstance(next, Mapping) else [dict(e) for e in next])
            if next is not None
            else None,
            max_visits=max_visits,
            retry=dict(retry) if retry is not None else None,
            timeout=timeout,
            map=dict(map) if map is not None else None,
        )
        self._doc["nodes"].append(node)
        return self

    def output(self, name: str, template: Any) -> Workflow:
        """Add a workflow output, usually a template such as ``"${outputs.load.rows}"``."""
        self._doc["outputs"][name] = template
        return self

    def trigger(
        self,
        cron: str,
        *,
        name: str | None = None,
        timezone: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        overlap: str | None = None,
        catch_up: str | None = None,
        catch_up_window: Duration | None = None,
        enabled: bool | None = None,
    ) -> Workflow:
        """Add a cron trigger; keyword names and values are the ``triggers:`` entry's keys."""
        trigger: dict[str, Any] = {}
        _put(trigger, name=name, cron=cron, timezone=timezone)
        _put(
            trigger,
            inputs=dict(inputs) if inputs is not None else None,
            overlap=overlap,
            catch_up=catch_up,
            catch_up_window=catch_up_window,
            enabled=enabled,
        )
        self._doc["triggers"].append(trigger)
        return self

    def to_document(self) -> dict[str, Any]:
        """The definition as a plain document (what ``to_yaml`` writes)."""
        doc = dict(self._doc)
        for key in ("inputs", "outputs", "triggers"):
            if not doc[key]:
                del doc[key]
        return doc

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_document(), sort_keys=False)

    def build(self, *, sandbox: LuaSandbox | None = None) -> Definition:
        """Validate and return the ``Definition``; raises ``DefinitionError`` like the parser."""
        return from_document(
            self.to_document(), source=f"<builder {self._doc['name']}>", sandbox=sandbox
        )


def _put(target: dict[str, Any], **values: Any) -> None:
    target.update({k: v for k, v in values.items() if v is not None})
