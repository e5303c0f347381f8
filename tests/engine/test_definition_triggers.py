"""Cron triggers in definitions: parsing, every error with its path, the builder, the diff."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from engine.definition import Workflow, from_document, loads
from engine.definition.diff import diff_definitions
from engine.definition.model import CatchUp, Overlap
from engine.definition.parser import trigger_from_spec
from engine.definition.schema import json_schema
from engine.errors import DefinitionError
from engine.templates import Const


def doc(*triggers: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "name": "w",
        "version": "1.0.0",
        "inputs": {"day": {"type": "string"}, "n": {"type": "integer", "default": 1}},
        "nodes": [{"id": "a", "noop": {}}],
        "triggers": list(triggers),
        **top,
    }


DAY = {"day": "${trigger.time}"}

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "four fields",
        doc({"cron": "0 0 * *", "inputs": DAY}),
        "triggers[0].cron",
        "invalid cron expression '0 0 * *': expected 5 fields",
    ),
    (
        "seconds",
        doc({"cron": "0 0 * * * *", "inputs": DAY}),
        "triggers[0].cron",
        "got 6 (seconds are not supported)",
    ),
    (
        "out of range",
        doc({"cron": "61 * * * *", "inputs": DAY}),
        "triggers[0].cron",
        "a field is out of range",
    ),
    (
        "never matches",
        doc({"cron": "0 0 30 2 *", "inputs": DAY}),
        "triggers[0].cron",
        "it matches no date",
    ),
    (
        "unknown alias",
        doc({"cron": "@dayly", "inputs": DAY}),
        "triggers[0].cron",
        "unknown cron alias '@dayly' (did you mean '@daily'?)",
    ),
    (
        "random field",
        doc({"cron": "R * * * *", "inputs": DAY}),
        "triggers[0].cron",
        "random (R) and hashed (H) fields are not supported",
    ),
    (
        "unknown zone",
        doc({"cron": "@daily", "inputs": DAY}, {"cron": "@daily", "timezone": "Europe/Pari"}),
        "triggers[1].timezone",
        "unknown time zone 'Europe/Pari' (did you mean 'Europe/Paris'?)",
    ),
    (
        "duplicate name",
        doc(
            {"name": "nightly", "cron": "@daily", "inputs": DAY},
            {"name": "nightly", "cron": "@hourly", "inputs": DAY},
        ),
        "triggers[1].name",
        "duplicate trigger name 'nightly' (first at triggers[0])",
    ),
    (
        "duplicate default name",
        doc({"cron": "@daily", "inputs": DAY}, {"name": "cron-0", "cron": "@daily", "inputs": DAY}),
        "triggers[1].name",
        "duplicate trigger name 'cron-0'",
    ),
    (
        "bad name",
        doc({"name": "9 lives", "cron": "@daily", "inputs": DAY}),
        "triggers[0].name",
        "must start with a letter or '_'",
    ),
    (
        "bad overlap",
        doc({"cron": "@daily", "inputs": DAY, "overlap": "queue"}),
        "triggers[0].overlap",
        "expected 'allow', 'skip' or 'cancel-previous'",
    ),
    (
        "bad catch_up_window",
        doc({"cron": "@daily", "inputs": DAY, "catch_up_window": "soon"}),
        "triggers[0].catch_up_window",
        "invalid duration 'soon'",
    ),
    (
        "unknown key",
        doc({"cron": "@daily", "inputs": DAY, "timezon": "UTC"}),
        "triggers[0].timezon",
        "unknown key (did you mean 'timezone'?)",
    ),
    (
        "template syntax",
        doc({"cron": "@daily", "inputs": {"day": "x ${"}}),
        "triggers[0].inputs",
        "template: unclosed '${'",
    ),
    (
        "Lua syntax",
        doc({"cron": "@daily", "inputs": {"day": "${trigger.time ..}"}}),
        "triggers[0].inputs.day",
        "Lua expression syntax error",
    ),
    (
        "undeclared input",
        doc({"cron": "@daily", "inputs": {"day": "x", "dya": "y"}}),
        "triggers[0].inputs.dya",
        "undeclared input (did you mean 'day'?) (declared: day, n)",
    ),
    (
        "required input not given",
        doc({"cron": "@daily", "inputs": {"n": 2}}),
        "triggers[0].inputs",
        "required input 'day' (string) is not given",
    ),
    (
        "wrong constant type",
        doc({"cron": "@daily", "inputs": {"day": "x", "n": "two"}}),
        "triggers[0].inputs.n",
        'expected integer, got string "two"',
    ),
    (
        "inputs in a trigger template",
        doc({"cron": "@daily", "inputs": {"day": "${inputs.day}"}}),
        "triggers[0].inputs.day",
        "'inputs' is not available in a trigger template: only trigger",
    ),
    (
        "outputs in a trigger template",
        doc({"cron": "@daily", "inputs": {"day": "x ${outputs.a.x}"}}),
        "triggers[0].inputs.day",
        "'outputs' is not available in a trigger template",
    ),
    (
        "unknown trigger field",
        doc({"cron": "@daily", "inputs": {"day": "${trigger.tim}"}}),
        "triggers[0].inputs.day",
        "trigger.tim: unknown field (did you mean 'time'?)",
    ),
]


@pytest.mark.parametrize(
    ("name", "document", "path", "message"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_triggers_name_path_and_reason(
    name: str, document: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        from_document(document)
    found = [(i.path, i.message) for i in info.value.issues]
    assert any(p == path and message in m for p, m in found), found


def test_a_trigger_with_its_defaults() -> None:
    d = from_document(doc({"cron": " @daily ", "inputs": {"day": "${trigger.utc}"}}))
    [t] = d.triggers
    assert (t.name, t.cron, t.timezone, t.overlap, t.catch_up) == (
        "cron-0",
        "@daily",
        "UTC",
        Overlap.SKIP,
        CatchUp.NONE,
    )
    assert (t.catch_up_window, t.enabled) == (3600.0, True)
    assert t.document == {"cron": " @daily ", "inputs": {"day": "${trigger.utc}"}}


def test_yaml_json_and_builder_give_the_same_triggers() -> None:
    yaml_text = """
name: report
version: 1.0.0
inputs:
  day: {type: string}
nodes:
  - id: a
    noop: {}
triggers:
  - name: nightly
    cron: "0 0 * * *"
    timezone: Europe/Paris
    inputs: {day: "${trigger.time}"}
    overlap: cancel-previous
    catch_up: latest
    catch_up_window: 2h
  - cron: "@hourly"
    inputs: {day: fixed}
    enabled: false
"""
    from_yaml = loads(yaml_text)
    from_json = loads(json.dumps(yaml.safe_load(yaml_text)))
    built = (
        Workflow("report", "1.0.0")
        .input("day", "string")
        .node("a", noop=True)
        .trigger(
            "0 0 * * *",
            name="nightly",
            timezone="Europe/Paris",
            inputs={"day": "${trigger.time}"},
            overlap="cancel-previous",
            catch_up="latest",
            catch_up_window="2h",
        )
        .trigger("@hourly", inputs={"day": "fixed"}, enabled=False)
        .build()
    )
    by_argument = Workflow(
        "report",
        "1.0.0",
        inputs={"day": {"type": "string"}},
        triggers=[
            {
                "name": "nightly",
                "cron": "0 0 * * *",
                "timezone": "Europe/Paris",
                "inputs": {"day": "${trigger.time}"},
                "overlap": "cancel-previous",
                "catch_up": "latest",
                "catch_up_window": 7200,
            },
            {"cron": "@hourly", "inputs": {"day": "fixed"}, "enabled": False},
        ],
    ).node("a", noop=True)
    assert from_yaml == from_json == built == by_argument.build()
    assert from_yaml.triggers[0].catch_up_window == 7200.0
    assert from_yaml.triggers[1].name == "cron-1"
    assert from_yaml.triggers[1].inputs == Const({"day": "fixed"})
    assert "triggers" in yaml.safe_load(by_argument.to_yaml())
    assert "triggers" not in Workflow("x", "1.0.0").node("a", noop=True).to_document()


def test_trigger_from_spec_paths_are_relative_to_the_trigger() -> None:
    definition = from_document(doc())
    trigger = trigger_from_spec({"cron": "@daily", "inputs": DAY}, definition, name="api")
    assert trigger.name == "api"
    with pytest.raises(DefinitionError) as info:
        trigger_from_spec({"cron": "@often", "inputs": {"day": 1}}, definition, name="api")
    assert [str(i) for i in info.value.issues] == [
        "cron: unknown cron alias '@often' (aliases: @hourly, @daily, @midnight, @weekly, "
        "@monthly, @yearly, @annually)",
        "inputs.day: expected string, got integer 1",
    ]
    with pytest.raises(DefinitionError, match="cron: required"):
        trigger_from_spec({}, definition, name="api")
    with pytest.raises(DefinitionError, match="expected a mapping"):
        trigger_from_spec(["@daily"], definition)


def test_the_schema_describes_triggers() -> None:
    schema = json_schema()
    assert "triggers" in schema["properties"]
    trigger = schema["$defs"]["TriggerDoc"]["properties"]
    assert {"name", "cron", "timezone", "inputs", "overlap", "catch_up"} <= set(trigger)
    assert trigger["overlap"]["enum"] == ["allow", "skip", "cancel-previous"]


def test_the_diff_lists_trigger_changes_and_they_never_block() -> None:
    old = from_document(
        doc(
            {"name": "a", "cron": "@daily", "inputs": DAY},
            {"name": "b", "cron": "@daily", "inputs": DAY},
        )
    )
    new = from_document(
        doc(
            {"name": "a", "cron": "@hourly", "timezone": "Europe/Paris", "inputs": DAY},
            {"name": "c", "cron": "@daily", "inputs": DAY},
            version="1.1.0",
        )
    )
    d = diff_definitions(old, new)
    assert d.other == (
        "trigger c added (@daily)",
        "trigger b removed",
        "trigger a: cron, timezone changed",
    )
    assert d.can_continue
