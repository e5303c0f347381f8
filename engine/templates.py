"""``${...}`` templates: parsing, compiling to Lua expressions, rendering, and static references.

A string that is exactly ``${expr}`` takes the value and type of ``expr``; any other string with
``${...}`` in it interpolates (``nil`` renders as the empty string, tables as JSON). ``$${`` is a
literal ``${``. Templates are compiled once, when a definition is loaded: a subtree without any
expression becomes a ``Const`` and costs nothing at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.lua import ESCALATE, LuaCode, LuaLimits, LuaSandbox, Scope


class TemplateSyntaxError(ValueError):
    """A template string could not be split into literal text and expressions."""


@dataclass(frozen=True, slots=True)
class Const:
    value: Any


@dataclass(frozen=True, slots=True)
class Expr:
    code: LuaCode


@dataclass(frozen=True, slots=True)
class Interp:
    parts: tuple[str | LuaCode, ...]


@dataclass(frozen=True, slots=True)
class DictT:
    items: tuple[tuple[str, Template], ...]


@dataclass(frozen=True, slots=True)
class ListT:
    items: tuple[Template, ...]


Template = Const | Expr | Interp | DictT | ListT


def split(text: str) -> list[str | tuple[str]]:
    """Split ``text`` into literal strings and 1-tuples holding the source of each expression."""
    parts: list[str | tuple[str]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            literal.append("${")
            i += 3
        elif text.startswith("${", i):
            end = _matching_brace(text, i + 2)
            expr = text[i + 2 : end].strip()
            if not expr:
                raise TemplateSyntaxError(f"empty expression at character {i + 1}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append((expr,))
            i = end + 1
        else:
            literal.append(text[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


def _matching_brace(text: str, start: int) -> int:
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            i = _skip_quoted(text, i)
            continue
        if text.startswith("[[", i) or re.match(r"\[=+\[", text[i:]):
            i = _skip_long_bracket(text, i)
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise TemplateSyntaxError(f"unclosed '${{' at character {start - 1}")


def _skip_quoted(text: str, i: int) -> int:
    quote = text[i]
    i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return i


def _skip_long_bracket(text: str, i: int) -> int:
    match = re.match(r"\[(=*)\[", text[i:])
    assert match is not None
    close = "]" + match.group(1) + "]"
    end = text.find(close, i + len(match.group(0)))
    return len(text) if end < 0 else end + len(close)


def compile_template(value: Any, chunkname: str) -> Template:
    """Compile a JSON-like value whose strings may hold templates; raise TemplateSyntaxError."""
    if isinstance(value, str):
        if "${" not in value:
            return Const(value)
        parts = split(value)
        if len(parts) == 1 and isinstance(parts[0], tuple):
            return Expr(LuaCode(parts[0][0], chunkname, expression=True))
        if all(isinstance(p, str) for p in parts):
            return Const("".join(p for p in parts if isinstance(p, str)))
        return Interp(
            tuple(
                p if isinstance(p, str) else LuaCode(p[0], chunkname, expression=True)
                for p in parts
            )
        )
    if isinstance(value, Mapping):
        items = tuple((str(k), compile_template(v, f"{chunkname}.{k}")) for k, v in value.items())
        if all(isinstance(t, Const) for _, t in items):
            return Const(dict(value))
        return DictT(items)
    if isinstance(value, list | tuple):
        elems = tuple(compile_template(v, f"{chunkname}[{i}]") for i, v in enumerate(value))
        if all(isinstance(t, Const) for t in elems):
            return Const(list(value))
        return ListT(elems)
    return Const(value)


def expressions(template: Template) -> Iterator[LuaCode]:
    """Every Lua expression inside ``template``."""
    if isinstance(template, Expr):
        yield template.code
    elif isinstance(template, Interp):
        yield from (p for p in template.parts if isinstance(p, LuaCode))
    elif isinstance(template, DictT):
        for _, t in template.items:
            yield from expressions(t)
    elif isinstance(template, ListT):
        for t in template.items:
            yield from expressions(t)


def to_text(value: Any) -> str:
    """How an interpolated value reads: nil is empty, booleans are Lua's, tables are JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render_inline(template: Template, scope: Scope, sandbox: LuaSandbox, limits: LuaLimits) -> Any:
    """Render on the calling thread; return ``ESCALATE`` when an expression needs the pool."""
    if isinstance(template, Const):
        return template.value
    if isinstance(template, Expr):
        return sandbox.run_inline(template.code, scope, limits)
    if isinstance(template, Interp):
        out = []
        for part in template.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = sandbox.run_inline(part, scope, limits)
            if value is ESCALATE:
                return ESCALATE
            out.append(to_text(value))
        return "".join(out)
    if isinstance(template, DictT):
        result = {}
        for key, sub in template.items:
            value = render_inline(sub, scope, sandbox, limits)
            if value is ESCALATE:
                return ESCALATE
            result[key] = value
        return result
    items = []
    for sub in template.items:
        value = render_inline(sub, scope, sandbox, limits)
        if value is ESCALATE:
            return ESCALATE
        items.append(value)
    return items


async def render(template: Template, scope: Scope, sandbox: LuaSandbox, limits: LuaLimits) -> Any:
    """Render ``template``, running any expression that outgrows the inline slice in the pool."""
    if isinstance(template, Const):
        return template.value
    if isinstance(template, Expr):
        return await sandbox.run(template.code, scope, limits)
    if isinstance(template, Interp):
        out = [
            part if isinstance(part, str) else to_text(await sandbox.run(part, scope, limits))
            for part in template.parts
        ]
        return "".join(out)
    if isinstance(template, DictT):
        return {key: await render(sub, scope, sandbox, limits) for key, sub in template.items}
    return [await render(sub, scope, sandbox, limits) for sub in template.items]


# --- static references, for validation -------------------------------------------------------

_STRINGS_AND_COMMENTS = re.compile(
    r"--\[(=*)\[.*?\]\1\]|--[^\n]*|\[(=*)\[.*?\]\2\]|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'",
    re.DOTALL,
)


def references(source: str, table: str) -> set[str]:
    """Names read from ``table`` in Lua ``source`` (``inputs.x``, ``inputs["x"]``).

    Used to report undeclared inputs and unknown nodes before anything runs; names inside string
    literals and comments are ignored.
    """
    names = set(
        m.group(2)
        for m in re.finditer(rf"(?<![\w.:]){table}\s*\[\s*([\"'])([^\"'\n]+)\1\s*\]", source)
    )
    code = _STRINGS_AND_COMMENTS.sub(lambda m: " " * len(m.group(0)), source)
    names.update(re.findall(rf"(?<![\w.:]){table}\s*\.\s*([A-Za-z_]\w*)", code))
    return names
