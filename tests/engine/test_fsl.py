"""FSL: the seed's text converts and validates; a table of valid and invalid inputs with their
exact messages; hypothesis round trips (render -> parse, and FSL -> YAML -> the same model)."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.definition import fsl, load_file, loads
from engine.definition.fsl import Action, Arg, Flow, FslFile, Param, Step, Transition
from engine.definition.fsl.render import literal
from engine.definition.model import Callback, HttpTask, NoopTask
from engine.definition.parser import from_document
from engine.errors import DefinitionError
from engine.templates import Const
from orchestrator.cli.convert import dump_yaml

SEED = Path(__file__).parents[2] / "examples" / "approval-flow.fsl"

# Line numbers matter: the invalid cases below name them.
BASE = """\
action ci
addr = "http://localhost:18080/ci";
method = http;
args = (str project, int retries);
return = (SUCCESS | FAIL);
action_end
/
flow_run build_flow
step A => (SUCCESS -> B | FAIL -> A) {
    action = "ci";
    args = (project = "weir", retries = 3);
};
step B => (SUCCESS -> done | FAIL -> B) {
    action = "ci";
    args = (project = "weir", retries = 1);
};
flow_run_end
"""


def issues(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        fsl.convert(text)
    return [str(i) for i in caught.value.issues]


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# --- the seed ------------------------------------------------------------------------------------


def test_the_seed_text_parses_converts_and_validates() -> None:
    text = SEED.read_text(encoding="utf-8")
    tree = fsl.parse(text)
    assert [a.name for a in tree.actions] == ["ci", "approval", "deploy_1", "approval_2", "notify"]
    assert tree.actions[0].args == (
        Param("str", "project"),
        Param("str", "version"),
        Param("int", "retry_count"),
    )
    assert tree.actions[1].returns == ("AGREE", "REJECT", "NEXT", "FAIL")
    assert tree.flow.name == "my_flow_run"
    assert [s.name for s in tree.flow.steps] == ["A", "D", "B", "E", "C"]
    assert tree.flow.steps[1].transitions == (
        Transition("AGREE", "B"),
        Transition("REJECT", "C"),
        Transition("NEXT", "E"),
        Transition("FAIL", "D"),
    )
    d = tree.flow.steps[1]
    assert (d.at.line, d.at.col, d.action_at.line, d.action_at.col) == (41, 6, 42, 8)

    document = fsl.to_document(tree)
    assert list(document) == ["apiVersion", "kind", "name", "version", "description", "nodes"]
    assert document["name"] == "my-flow-run" and document["version"] == "1.0.0"
    assert document["nodes"][0] == {
        "id": "A",
        "description": "action ci",
        "http": {
            "url": "http://localhost:18080/ci",
            "method": "POST",
            "json": {
                "project": "https://d.zyszy.best/yametech/compass.git",
                "version": "v0.1.0",
                "retry_count": 10,
            },
            "callback": {"protocol": "fsl", "ack_states": ["SUCCESS", "FAIL"]},
        },
        "next": {"SUCCESS": "D", "FAIL": "A"},
    }

    definition = from_document(document)
    assert [n.id for n in definition.nodes] == ["A", "D", "B", "E", "C"]
    assert definition.start_nodes == ("A",)
    nexts = {n.id: dict(n.next.by_outcome) for n in definition.nodes if n.next}
    assert nexts == {
        "A": {"SUCCESS": "D", "FAIL": "A"},
        "D": {"AGREE": "B", "REJECT": "C", "NEXT": "E", "FAIL": "D"},
        "B": {"FAIL": "B", "SUCCESS": "C"},
        "E": {"REJECT": "C", "AGREE": "B", "FAIL": "E"},
        "C": {"SUCCESS": "end", "FAIL": "C"},
    }
    d_task = definition.by_id["D"].executor
    assert isinstance(d_task, HttpTask)
    assert d_task.method == "POST"
    assert d_task.callback == Callback("fsl", ("AGREE", "REJECT", "NEXT", "FAIL"))
    assert d_task.json_body == Const({"work_order": "nz00001", "version": 12343})
    a_json = definition.by_id["A"].executor.json_body  # type: ignore[union-attr]
    assert isinstance(a_json, Const) and type(a_json.value["retry_count"]) is int

    # Every loader reads it: loads (the registry, the APIs), load_file (weir validate/run).
    assert loads(text) == definition == load_file(SEED)


def test_is_fsl() -> None:
    assert fsl.is_fsl(SEED.read_text(encoding="utf-8"))
    assert fsl.is_fsl("# a comment\n// another\n\n  flow_run\n  x")
    assert fsl.is_fsl("\ufeffaction a")
    assert not fsl.is_fsl("apiVersion: weir/v1\nname: x\n")
    assert not fsl.is_fsl('{"name": "x"}')
    assert not fsl.is_fsl("action: x\n")
    assert not fsl.is_fsl("action_end")
    assert not fsl.is_fsl("# only a comment")
    assert not fsl.is_fsl("")
    assert not fsl.is_fsl("#" * 100_000 + "\nname: x\n")  # no backtracking blow-up


# --- valid inputs --------------------------------------------------------------------------------

VALID: list[tuple[str, str, dict[str, Any]]] = [
    ("base", BASE, {"nodes": ["A", "B"], "json": {"project": "weir", "retries": 3}}),
    (
        "comments, blank lines, free-form layout",
        '# the CI flow\naction ci addr="http://h/ci"; // inline\nmethod=http;args=(str p);'
        'return=(OK);action_end/flow_run f step A=>(OK->done){action="ci";args=(p="x");};'
        "flow_run_end/",
        {"nodes": ["A"], "next": {"OK": "end"}},
    ),
    (
        "version and description",
        edit(
            "flow_run build_flow\n",
            'flow_run build_flow\nversion = "2.1.0";\ndescription = "CI, then again";\n',
        ),
        {"version": "2.1.0", "description": "CI, then again"},
    ),
    (
        "float and bool args, negative numbers, an int for a float",
        'action a addr = "https://h/a"; args = (float f, bool b, int i, float g);'
        ' return = (A); action_end\n/\nflow_run f\nstep s => (A -> done) { action = "a";'
        " args = (f = -1.5e3, b = false, i = -7, g = 2); };\nflow_run_end",
        {"json": {"f": -1500.0, "b": False, "i": -7, "g": 2.0}},
    ),
    (
        "escapes in strings and a template",
        edit(
            'project = "weir", retries = 3',
            'project = "say \\"hi\\"\\\\${execution.id}", retries = 3',
        ),
        {"json": {"project": 'say "hi"\\${execution.id}', "retries": 3}},
    ),
    (
        "an action without args, named without quotes in a step",
        'action ping addr = "http://h/"; method = http; return = (UP | DOWN); action_end /'
        " flow_run p step s => (UP -> done | DOWN -> s) { action = ping; }; flow_run_end",
        {"json": {}, "next": {"UP": "end", "DOWN": "s"}},
    ),
    (
        "the first step entered again gets a start node",
        edit("SUCCESS -> done", "SUCCESS -> A"),
        {"nodes": ["start", "A", "B"]},
    ),
    (
        "an action no step uses, actions after the flow",
        BASE + '/\naction unused addr = "http://h/"; return = (X); action_end\n/\n',
        {"nodes": ["A", "B"]},
    ),
]


@pytest.mark.parametrize(
    ("text", "expect"), [(t, e) for _, t, e in VALID], ids=[name for name, _, _ in VALID]
)
def test_valid_inputs(text: str, expect: dict[str, Any]) -> None:
    document = fsl.convert(text)
    definition = from_document(document)
    nodes = document["nodes"]
    if "nodes" in expect:
        assert [n["id"] for n in nodes] == expect["nodes"]
        assert [n.id for n in definition.nodes] == expect["nodes"]
        assert definition.start_nodes == (expect["nodes"][0],)
    http_nodes = [n for n in nodes if "http" in n]
    if "json" in expect:
        assert http_nodes[0]["http"]["json"] == expect["json"]
        for key, value in expect["json"].items():
            assert type(http_nodes[0]["http"]["json"][key]) is type(value)
    if "next" in expect:
        assert http_nodes[0]["next"] == expect["next"]
    for key in ("version", "description"):
        if key in expect:
            assert document[key] == expect[key]
    assert loads(text) == definition


def test_the_start_node() -> None:
    definition = loads(edit("SUCCESS -> done", "SUCCESS -> A"))
    assert definition.start_nodes == ("start",)
    assert definition.by_id["start"].executor == NoopTask()
    assert definition.by_id["start"].next.by_outcome == {"SUCCESS": "A"}  # type: ignore[union-attr]
    taken = BASE.replace("step A", "step start").replace("-> A", "-> start")
    taken = taken.replace("SUCCESS -> done", "SUCCESS -> start")
    assert [n.id for n in loads(taken).nodes] == ["start_2", "start", "B"]


# --- invalid inputs ------------------------------------------------------------------------------

INVALID: list[tuple[str, str, list[str]]] = [
    # lexing
    (
        "unterminated string",
        edit('"http://localhost:18080/ci";', '"http://localhost:18080/ci;'),
        ["line 2, column 8: unterminated string: no closing '\"' on its line"],
    ),
    (
        "bad character",
        edit("method = http;", "method = @http;"),
        ["line 3, column 10: unexpected character '@'"],
    ),
    (
        "unknown escape",
        edit('project = "weir", retries = 3', 'project = "we\\ir", retries = 3'),
        [
            "line 11, column 26: unknown escape '\\i' in a string "
            '(write \\" for a quote, \\\\ for a backslash, \\n, \\t)'
        ],
    ),
    (
        "invalid number",
        edit("retries = 3", "retries = 3x"),
        ["line 11, column 41: invalid number '3x'"],
    ),
    # syntax
    (
        "missing ';'",
        edit('"http://localhost:18080/ci";', '"http://localhost:18080/ci"'),
        ["line 3, column 1: expected ';' after addr, found 'method'"],
    ),
    (
        "missing action_end",
        edit("action_end\n", ""),
        ["line 6, column 1: expected action_end to close action ci (line 1), found '/'"],
    ),
    (
        "missing '=>'",
        edit("step A =>", "step A"),
        ["line 9, column 8: expected '=>' after step A, found '('"],
    ),
    (
        "missing '->'",
        edit("SUCCESS -> B", "SUCCESS B"),
        ["line 9, column 20: expected '->' after outcome SUCCESS, found 'B'"],
    ),
    (
        "missing flow_run_end",
        edit("flow_run_end\n", ""),
        [
            "line 17, column 1: expected flow_run_end to close flow_run build_flow (line 8), "
            "found the end of the file"
        ],
    ),
    (
        "missing '/' between blocks",
        edit("action_end\n/\n", "action_end\n"),
        ["line 7, column 1: expected '/' between blocks, found 'flow_run'"],
    ),
    (
        "two flow_runs",
        BASE + "/\nflow_run other\nflow_run_end\n",
        [
            "line 19, column 1: a second flow_run: a file holds exactly one "
            "(flow_run build_flow is at line 8)"
        ],
    ),
    (
        "no flow_run",
        BASE.split("/\n")[0],
        [
            "line 7, column 1: expected a flow_run block (a file holds exactly one), "
            "found the end of the file"
        ],
    ),
    (
        "a statement an action does not have",
        edit("method = http;", "timeout = 3;"),
        [
            "line 3, column 1: expected addr, method, args, return or action_end in action ci, "
            "found 'timeout'"
        ],
    ),
    (
        "an empty return",
        edit("return = (SUCCESS | FAIL);", "return = ();"),
        ["line 5, column 11: expected an outcome name in return, found ')'"],
    ),
    (
        "a missing value",
        edit("retries = 3", "retries = )"),
        [
            "line 11, column 41: expected a value for arg retries "
            "(a string, a number, true or false), found ')'"
        ],
    ),
    (
        "missing ';' after a step's '}'",
        edit("};\nstep B", "}\nstep B"),
        ["line 13, column 1: expected ';' after the '}' of step A, found 'step'"],
    ),
    (
        "an arg without a type",
        edit("args = (str project, int retries);", "args = (str project, retries);"),
        ["line 4, column 29: expected the arg's name after its type 'retries', found ')'"],
    ),
    # checks
    (
        "unknown action",
        edit('action = "ci";', 'action = "cii";'),
        ["line 10, column 14: unknown action 'cii' in step A (did you mean 'ci'?)"],
    ),
    (
        "duplicate action",
        BASE.replace(
            "/\nflow_run", '/\naction ci addr = "http://h/"; return = (X); action_end\n/\nflow_run'
        ),
        ["line 8, column 8: action ci is declared twice (first at line 1)"],
    ),
    (
        "duplicate step",
        edit(
            "flow_run_end",
            'step A => (SUCCESS -> done) { action = "ci"; args = (project = "", retries = 0); };'
            "\nflow_run_end",
        ),
        ["line 17, column 6: step A is declared twice (first at line 9)"],
    ),
    (
        "an arg the action does not declare",
        edit("retries = 3", "retires = 3"),
        [
            "line 9, column 6: step A misses arg retries of action ci (int retries)",
            "line 11, column 31: action ci has no arg retires (did you mean 'retries'?) "
            "(declared: str project, int retries)",
        ],
    ),
    (
        "a declared arg missing",
        edit('project = "weir", retries = 1', 'project = "weir"'),
        ["line 13, column 6: step B misses arg retries of action ci (int retries)"],
    ),
    (
        "int given a string",
        edit("retries = 3", 'retries = "3"'),
        ["line 11, column 41: arg retries of action ci is int, got a string"],
    ),
    (
        "str given an int",
        edit('project = "weir", retries = 3', "project = 12, retries = 3"),
        ["line 11, column 23: arg project of action ci is str, got an int"],
    ),
    (
        "int given a float",
        edit("retries = 3", "retries = 3.5"),
        ["line 11, column 41: arg retries of action ci is int, got a float"],
    ),
    (
        "a template for an int",
        edit("retries = 3", 'retries = "${inputs.n}"'),
        [
            "line 11, column 41: arg retries of action ci is int, got a string "
            "(a template is accepted for a str arg only)"
        ],
    ),
    (
        "a broken template",
        edit('project = "weir"', 'project = "${execution.id"', BASE).replace(
            'project = "weir", retries = 1', 'project = "x", retries = 1'
        ),
        ["line 11, column 23: template: unclosed '${' at character 1"],
    ),
    (
        "an outcome the action does not return",
        edit("FAIL -> A", "ERROR -> A"),
        [
            "line 9, column 27: outcome ERROR of step A is not in the return of action ci "
            "(SUCCESS | FAIL)"
        ],
    ),
    (
        "a target that is not a step",
        edit("SUCCESS -> done", "SUCCESS -> don"),
        [
            "line 13, column 23: unknown step 'don' after 'SUCCESS ->' in step B "
            "(did you mean 'done'?) (a target is a step or done)"
        ],
    ),
    (
        "an outcome with two transitions",
        edit("FAIL -> A", "SUCCESS -> A"),
        ["line 9, column 27: outcome SUCCESS has two transitions in step A"],
    ),
    (
        "a method other than http",
        edit("method = http;", "method = grpc;"),
        [
            "line 3, column 10: method of action ci must be http (weir calls FSL actions over "
            "HTTP), found 'grpc'"
        ],
    ),
    (
        "an unknown type",
        edit("int retries", "integer retries"),
        [
            "line 4, column 22: unknown type 'integer' for arg retries of action ci "
            "(expected str, int, float or bool)"
        ],
    ),
    (
        "an addr that is not an http URL",
        edit('"http://localhost:18080/ci"', '"localhost:18080/ci"'),
        [
            "line 2, column 8: addr of action ci must be an http:// or https:// URL, "
            "got 'localhost:18080/ci'"
        ],
    ),
    (
        "an arg named like a protocol field",
        edit("int retries", "int uuid").replace("retries =", "uuid ="),
        [
            "line 4, column 22: arg uuid of action ci is a field of the FSL protocol's request "
            "(flowId, stepName, ackStates, uuid); rename it"
        ],
    ),
    (
        "a statement given twice",
        edit("method = http;", "method = http;\nmethod = http;"),
        ["line 4, column 1: method is given twice in action ci (first at line 3)"],
    ),
    (
        "a duplicate outcome in return",
        edit("(SUCCESS | FAIL)", "(SUCCESS | FAIL | SUCCESS)"),
        ["line 5, column 28: outcome SUCCESS is listed twice in the return of action ci"],
    ),
    (
        "a flow name that is no workflow name",
        edit("flow_run build_flow", "flow_run _build"),
        [
            "line 8, column 10: flow_run _build becomes the workflow name '-build', which is "
            "not valid: lowercase letters, digits and '-' (written '_' in FSL), starting and "
            "ending with a letter or digit, at most 63 characters"
        ],
    ),
    (
        "a bad version",
        edit("flow_run build_flow\n", 'flow_run build_flow\nversion = "1.2";\n'),
        [
            "line 9, column 11: version: invalid semantic version '1.2': expected "
            "MAJOR.MINOR.PATCH like 1.2.0"
        ],
    ),
    (
        "a step named done",
        edit("step B", "step done").replace("-> B", "-> done"),
        ["line 13, column 6: 'done' is reserved: it ends the flow, it cannot name a step"],
    ),
    (
        "a step nothing enters",
        edit("SUCCESS -> B", "SUCCESS -> done"),
        [
            "line 13, column 6: step B is never entered: no other step's transition leads to "
            "it (a flow starts at its first step only)"
        ],
    ),
    (
        "a step without an action",
        edit('    action = "ci";\n    args = (project = "weir", retries = 3);\n', ""),
        ['line 9, column 6: step A has no action (action = "NAME";)'],
    ),
    (
        "an action without addr and return",
        edit('addr = "http://localhost:18080/ci";\n', "").replace(
            "return = (SUCCESS | FAIL);\n", ""
        ),
        [
            'line 1, column 8: action ci has no addr (addr = "http://host/path";)',
            "line 1, column 8: action ci has no return (return = (SUCCESS | FAIL);)",
        ],
    ),
    (
        "every problem at once, in order",
        edit('action = "ci";', 'action = "deploy";')
        .replace("method = http;", "method = grpc;")
        .replace("retries = 1", 'retries = "1"')
        .replace("FAIL -> B)", "FAIL -> C)"),
        [
            "line 3, column 10: method of action ci must be http (weir calls FSL actions over "
            "HTTP), found 'grpc'",
            "line 10, column 14: unknown action 'deploy' in step A",
            "line 13, column 38: unknown step 'C' after 'FAIL ->' in step B "
            "(a target is a step or done)",
            "line 15, column 41: arg retries of action ci is int, got a string",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(t, e) for _, t, e in INVALID], ids=[name for name, _, _ in INVALID]
)
def test_invalid_inputs(text: str, expected: list[str]) -> None:
    assert issues(text) == expected


def test_errors_reach_every_loader_with_the_source(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fsl"
    bad.write_text(edit('"http://localhost:18080/ci";', '"http://localhost:18080/ci"'))
    with pytest.raises(DefinitionError) as caught:
        load_file(bad)
    assert str(caught.value) == f"{bad}: line 3, column 1: expected ';' after addr, found 'method'"
    assert caught.value.issues[0].path == "line 3, column 1"
    # A .fsl file is read as FSL even when it does not start like FSL: no YAML error.
    typo = tmp_path / "typo.fsl"
    typo.write_text("acton ci\n")
    with pytest.raises(DefinitionError, match="line 1, column 1: expected 'action' or 'flow_run'"):
        load_file(typo)


def test_a_tree_built_in_code_is_checked_too() -> None:
    tree = FslFile(
        (Action("a", "http://h/", returns=("OK",)),),
        Flow("f", (Step("s", (Transition("OK", "t"),), "a"),)),
    )
    with pytest.raises(DefinitionError) as caught:
        fsl.to_document(tree)
    assert [str(i) for i in caught.value.issues] == [
        "unknown step 't' after 'OK ->' in step s (a target is a step or done)"
    ]


# --- round trips ---------------------------------------------------------------------------------

_KEYWORDS = {"done", "end", "true", "false"}
_LOWER, _UPPER, _DIGITS = "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"


def words(first: str, rest: str, max_size: int) -> st.SearchStrategy[str]:
    return st.builds(operator.add, st.sampled_from(first), st.text(rest, max_size=max_size))


names = words(_LOWER + _UPPER + "_", _LOWER + _UPPER + _DIGITS + "_", 9).filter(
    lambda n: n not in _KEYWORDS
)
outcomes = words(_UPPER, _UPPER + _DIGITS + "_", 7)
flow_names = st.builds(
    operator.add, words(_LOWER, _LOWER + _DIGITS + "_", 20), st.sampled_from(_LOWER + _DIGITS)
)
texts = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="$")
    | st.sampled_from(['"', "\\", "\n", "\t"]),
    max_size=20,
) | st.sampled_from(["${execution.id}", "run ${execution.workflow}", "$${not a template}"])
LITERALS: dict[str, st.SearchStrategy[Any]] = {
    "str": texts,
    "int": st.integers(-(2**53), 2**53),
    "float": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-1000, 1000),
    "bool": st.booleans(),
}


PARAMS = st.lists(
    st.tuples(st.sampled_from(fsl.TYPES), names), max_size=4, unique_by=lambda p: p[1]
)
RETURNS = st.lists(outcomes, min_size=1, max_size=4, unique=True)
ADDRS = st.sampled_from(["http://localhost:18080/", "https://actions.example/v1/"])
VERSIONS = st.none() | st.sampled_from(["0.1.0", "1.2.3", "2.0.0-rc.1"])


@st.composite
def trees(draw: st.DrawFn) -> FslFile:
    """Valid trees: every step but the first is entered by the step before it."""
    actions = [
        Action(
            name,
            draw(ADDRS) + name,
            "http",
            tuple(Param(t, n) for t, n in draw(PARAMS)),
            tuple(draw(RETURNS)),
        )
        for name in draw(st.lists(names, min_size=1, max_size=4, unique=True))
    ]
    step_names = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    targets = st.sampled_from([*step_names, fsl.DONE])
    steps = []
    for i, name in enumerate(step_names):
        action = draw(st.sampled_from(actions))
        chosen = draw(st.lists(st.sampled_from(action.returns), min_size=1, unique=True))
        goes = [draw(targets) for _ in chosen]
        if i + 1 < len(step_names):
            goes[0] = step_names[i + 1]
        args = [Arg(p.name, draw(LITERALS[p.type])) for p in action.args]
        steps.append(
            Step(
                name,
                tuple(Transition(o, t) for o, t in zip(chosen, goes, strict=True)),
                action.name,
                tuple(draw(st.permutations(args))),
            )
        )
    flow = Flow(draw(flow_names), tuple(steps), draw(VERSIONS), draw(st.none() | texts))
    return FslFile(tuple(actions), flow)


def typed(tree: FslFile) -> list[tuple[type, Any]]:
    """The literals with their types: True == 1 and 1.0 == 1 would hide a lost type."""
    return [(type(a.value), a.value) for s in tree.flow.steps for a in s.args]


@settings(max_examples=100, deadline=None)
@given(trees())
def test_render_then_parse_gives_the_tree(tree: FslFile) -> None:
    text = fsl.render(tree)
    parsed = fsl.parse(text)
    assert parsed == tree
    assert typed(parsed) == typed(tree)


@settings(max_examples=100, deadline=None)
@given(trees())
def test_fsl_and_its_yaml_give_the_same_model(tree: FslFile) -> None:
    text = fsl.render(tree)
    document = fsl.to_document(fsl.parse(text))
    model = from_document(document)
    assert loads(yaml.safe_dump(document, sort_keys=False)) == model
    assert loads(dump_yaml(document)) == model  # weir convert's YAML
    assert loads(text) == model  # FSL straight through the loader
    assert len(model.nodes) in (len(tree.flow.steps), len(tree.flow.steps) + 1)


def test_render_writes_every_literal() -> None:
    assert [literal(v) for v in ('a"b\\c\n', 3, -1.5, 1e16, True)] == [
        '"a\\"b\\\\c\\n"',
        "3",
        "-1.5",
        "1e+16",
        "true",
    ]
    with pytest.raises(ValueError, match="no literal for inf"):
        literal(float("inf"))
