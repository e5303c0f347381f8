"""FSL, the flow language of the FSL seed, read into weir definitions (docs/fsl.md).

    text --lexer.py--> tokens --parser.py--> tree.py's FslFile --checks.py--> problems
                                                  \\--convert.py--> definition document (dict)

``convert(text)`` is what ``engine.definition.parser.loads`` calls when ``is_fsl(text)``;
``render`` writes a tree back as FSL text. Every error is a ``DefinitionError`` whose issues are
paths ``line L, column C`` (1-based) with what was expected and what was found.
"""

from __future__ import annotations

import re
from typing import Any

from engine.definition.fsl.checks import check, to_issues, workflow_name
from engine.definition.fsl.convert import DEFAULT_VERSION, to_document
from engine.definition.fsl.lexer import FslSyntaxError
from engine.definition.fsl.parser import parse_text
from engine.definition.fsl.render import render
from engine.definition.fsl.tree import (
    DONE,
    TYPES,
    Action,
    Arg,
    Flow,
    FslFile,
    Param,
    Pos,
    Step,
    Transition,
    Value,
)
from engine.errors import DefinitionError, Issue

__all__ = [
    "DEFAULT_VERSION",
    "DONE",
    "TYPES",
    "Action",
    "Arg",
    "Flow",
    "FslFile",
    "Param",
    "Pos",
    "Step",
    "Transition",
    "Value",
    "check",
    "convert",
    "is_fsl",
    "parse",
    "render",
    "to_document",
    "workflow_name",
]

_HEAD = re.compile(r"(?:action|flow_run)\s+[A-Za-z_]")


def is_fsl(text: str) -> bool:
    """Whether ``text`` is FSL: its first token, past whitespace and comments, is ``action NAME``
    or ``flow_run NAME`` (a YAML or JSON definition never starts that way)."""
    i = 0
    while True:
        while i < len(text) and (text[i].isspace() or text[i] == "\ufeff"):
            i += 1
        if not (text.startswith("#", i) or text.startswith("//", i)):
            return _HEAD.match(text, i) is not None
        i = text.find("\n", i)
        if i < 0:
            return False


def parse(text: str, *, source: str = "<definition>") -> FslFile:
    """Parse and check FSL ``text``.

    Raises ``DefinitionError``: the first syntax error, or else every problem found.
    """
    try:
        tree, problems = parse_text(text)
    except FslSyntaxError as exc:
        raise DefinitionError([Issue(str(exc.at), exc.message)], source=source) from None
    problems = sorted(problems + check(tree), key=lambda p: (p[0].line, p[0].col))
    if problems:
        raise DefinitionError(to_issues(problems), source=source)
    return tree


def convert(text: str, *, source: str = "<definition>") -> dict[str, Any]:
    """The weir definition document of FSL ``text`` (``parse`` then ``to_document``)."""
    return to_document(parse(text, source=source), source=source)
