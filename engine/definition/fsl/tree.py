"""The FSL syntax tree: frozen dataclasses, one per construct of the language.

Every node carries the position of the text it came from (``Pos``, 1-based line and column) so
that checks can point at it; positions are not part of equality, so a tree parsed from text
equals one built in code with the same content (the round-trip tests rely on that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Value = str | int | float | bool
"""An FSL literal: a string, an integer, a float, ``true`` or ``false``."""

TYPES = ("str", "int", "float", "bool")
"""The arg types an action may declare. The seed uses ``str`` and ``int``; weir adds the others."""

DONE = "done"
"""The transition target that ends the flow (weir's ``end``)."""


@dataclass(frozen=True, slots=True)
class Pos:
    """A place in the source text: 1-based line and column (a column counts characters)."""

    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"line {self.line}, column {self.col}"


_NOWHERE = Pos()


@dataclass(frozen=True, slots=True)
class Param:
    """One declared arg of an action: ``int version`` (``at`` is the type's position)."""

    type: str
    name: str
    at: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Action:
    """``action NAME addr = ...; method = http; args = (...); return = (...); action_end``."""

    name: str
    addr: str
    method: str = "http"
    args: tuple[Param, ...] = ()
    returns: tuple[str, ...] = ()
    at: Pos = field(default=_NOWHERE, compare=False)
    addr_at: Pos = field(default=_NOWHERE, compare=False)
    method_at: Pos = field(default=_NOWHERE, compare=False)
    returns_at: tuple[Pos, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Transition:
    """``OUTCOME -> TARGET`` in a step's head; ``at`` is the outcome's position."""

    outcome: str
    target: str
    at: Pos = field(default=_NOWHERE, compare=False)
    target_at: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Arg:
    """``key = literal`` in a step's ``args``; ``at`` is the key's position."""

    key: str
    value: Value
    at: Pos = field(default=_NOWHERE, compare=False)
    value_at: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Step:
    """``step NAME => (OUT -> NEXT | ...) { action = "NAME"; args = (k = v, ...); };``."""

    name: str
    transitions: tuple[Transition, ...]
    action: str
    args: tuple[Arg, ...] = ()
    at: Pos = field(default=_NOWHERE, compare=False)
    action_at: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Flow:
    """``flow_run NAME ... flow_run_end`` with weir's optional ``version`` and ``description``."""

    name: str
    steps: tuple[Step, ...]
    version: str | None = None
    description: str | None = None
    at: Pos = field(default=_NOWHERE, compare=False)
    version_at: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class FslFile:
    """A whole FSL file: any number of actions and exactly one flow."""

    actions: tuple[Action, ...]
    flow: Flow
