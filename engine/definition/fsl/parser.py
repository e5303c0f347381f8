"""A recursive-descent parser from FSL tokens to the syntax tree (``tree.py``).

The first syntax error stops the parse (``FslSyntaxError``: what was expected, what was found).
A statement given twice does not stop it: that problem is collected as a ``(Pos, message)`` pair
and returned with the tree (the last one wins), so it is reported together with the problems
``checks.py`` finds. A missing statement leaves its field empty for ``checks.py`` to report.
"""

from __future__ import annotations

from engine.definition.fsl.lexer import FslSyntaxError, Kind, Token, tokenize
from engine.definition.fsl.tree import (
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

Problem = tuple[Pos, str]
"""A problem found at a place: reported as ``line L, column C: message``."""

_BLOCK_STARTS = ("action", "flow_run")


def parse_text(text: str) -> tuple[FslFile, list[Problem]]:
    """Parse ``text``; raise ``FslSyntaxError`` at the first syntax error.

    Returns the tree and the problems that did not stop the parse.
    """
    parser = _Parser(tokenize(text))
    return parser.file(), parser.problems


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.problems: list[Problem] = []

    # --- tokens ------------------------------------------------------------------------------

    def peek(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind is not Kind.EOF:
            self.i += 1
        return token

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token.kind is Kind.NAME and token.text in words

    def at_punct(self, punct: str) -> bool:
        token = self.peek()
        return token.kind is Kind.PUNCT and token.text == punct

    def expected(self, what: str) -> FslSyntaxError:
        token = self.peek()
        return FslSyntaxError(token.at, f"expected {what}, found {token.describe()}")

    def punct(self, punct: str, where: str) -> Token:
        if not self.at_punct(punct):
            raise self.expected(f"'{punct}' {where}")
        return self.advance()

    def name(self, what: str) -> Token:
        if self.peek().kind is not Kind.NAME:
            raise self.expected(what)
        return self.advance()

    def string(self, what: str) -> Token:
        if self.peek().kind is not Kind.STRING:
            raise self.expected(what)
        return self.advance()

    def at_block_boundary(self) -> bool:
        return self.peek().kind is Kind.EOF or self.at_punct("/") or self.at_word(*_BLOCK_STARTS)

    def once(self, seen: dict[str, Pos], keyword: Token, owner: str) -> None:
        """Note a statement that may appear once; a repeat is a problem, the last one wins."""
        first = seen.get(keyword.text)
        if first is not None:
            message = f"{keyword.text} is given twice in {owner} (first at line {first.line})"
            self.problems.append((keyword.at, message))
        else:
            seen[keyword.text] = keyword.at

    # --- blocks ------------------------------------------------------------------------------

    def file(self) -> FslFile:
        actions: list[Action] = []
        flows: list[Flow] = []
        while True:
            if self.at_word("action"):
                actions.append(self.action())
            elif self.at_word("flow_run"):
                if flows:
                    raise FslSyntaxError(
                        self.peek().at,
                        f"a second flow_run: a file holds exactly one "
                        f"(flow_run {flows[0].name} is at line {flows[0].at.line})",
                    )
                flows.append(self.flow())
            elif flows or actions:
                raise self.expected("'action' or 'flow_run' after '/'")
            else:
                raise self.expected("'action' or 'flow_run'")
            if self.peek().kind is Kind.EOF:
                break
            self.punct("/", "between blocks")
            if self.peek().kind is Kind.EOF:
                break
        if not flows:
            raise self.expected("a flow_run block (a file holds exactly one)")
        return FslFile(tuple(actions), flows[0])

    def action(self) -> Action:
        self.advance()
        name = self.name("the action's name after 'action'")
        owner = f"action {name.text}"
        seen: dict[str, Pos] = {}
        addr, method = "", "http"
        args: tuple[Param, ...] = ()
        returns: tuple[str, ...] = ()
        addr_at = method_at = Pos()
        returns_at: tuple[Pos, ...] = ()
        while not self.at_word("action_end"):
            if self.at_block_boundary():
                raise self.expected(f"action_end to close {owner} (line {name.at.line})")
            if not self.at_word("addr", "method", "args", "return"):
                raise self.expected(f"addr, method, args, return or action_end in {owner}")
            keyword = self.advance()
            self.once(seen, keyword, owner)
            self.punct("=", f"after {keyword.text}")
            if keyword.text == "addr":
                value = self.string("the action's URL as a string after 'addr ='")
                addr, addr_at = str(value.value), value.at
            elif keyword.text == "method":
                value = self.name("a method (http) after 'method ='")
                method, method_at = value.text, value.at
            elif keyword.text == "args":
                args = self.params()
            else:
                returns, returns_at = self.returns()
            self.punct(";", f"after {keyword.text}")
        self.advance()
        return Action(
            name.text,
            addr,
            method,
            args,
            returns,
            at=name.at,
            addr_at=addr_at,
            method_at=method_at,
            returns_at=returns_at,
        )

    def params(self) -> tuple[Param, ...]:
        self.punct("(", "after 'args ='")
        params: list[Param] = []
        while not self.at_punct(")"):
            if params:
                self.punct(",", "or ')' between args")
            kind = self.name("an arg's type (str, int, float or bool)")
            name = self.name(f"the arg's name after its type '{kind.text}'")
            params.append(Param(kind.text, name.text, at=kind.at))
        self.advance()
        return tuple(params)

    def returns(self) -> tuple[tuple[str, ...], tuple[Pos, ...]]:
        self.punct("(", "after 'return ='")
        names = [self.name("an outcome name in return")]
        while not self.at_punct(")"):
            self.punct("|", "or ')' between outcomes")
            names.append(self.name("an outcome name after '|'"))
        self.advance()
        return tuple(n.text for n in names), tuple(n.at for n in names)

    def flow(self) -> Flow:
        self.advance()
        name = self.name("the flow's name after 'flow_run'")
        owner = f"flow_run {name.text}"
        seen: dict[str, Pos] = {}
        steps: list[Step] = []
        texts: dict[str, str] = {}
        version_at = Pos()
        while not self.at_word("flow_run_end"):
            if self.at_word("step"):
                steps.append(self.step())
                continue
            if self.at_block_boundary():
                raise self.expected(f"flow_run_end to close {owner} (line {name.at.line})")
            if not self.at_word("version", "description"):
                raise self.expected(f"step, version, description or flow_run_end in {owner}")
            keyword = self.advance()
            self.once(seen, keyword, owner)
            self.punct("=", f"after {keyword.text}")
            value = self.string(f"a string after '{keyword.text} ='")
            texts[keyword.text] = str(value.value)
            if keyword.text == "version":
                version_at = value.at
            self.punct(";", f"after {keyword.text}")
        self.advance()
        return Flow(
            name.text,
            tuple(steps),
            texts.get("version"),
            texts.get("description"),
            at=name.at,
            version_at=version_at,
        )

    def step(self) -> Step:
        self.advance()
        name = self.name("the step's name after 'step'")
        owner = f"step {name.text}"
        self.punct("=>", f"after {owner}")
        self.punct("(", "after '=>'")
        transitions = [self.transition()]
        while not self.at_punct(")"):
            self.punct("|", "or ')' between transitions")
            transitions.append(self.transition())
        self.advance()
        self.punct("{", f"after the transitions of {owner}")
        seen: dict[str, Pos] = {}
        action: Token | None = None
        args: tuple[Arg, ...] = ()
        while not self.at_punct("}"):
            if not self.at_word("action", "args"):
                raise self.expected(f"action, args or '}}' in {owner}")
            keyword = self.advance()
            self.once(seen, keyword, owner)
            self.punct("=", f"after {keyword.text}")
            if keyword.text == "action":
                if self.peek().kind not in (Kind.STRING, Kind.NAME):
                    raise self.expected("the action's name after 'action =' (\"ci\")")
                action = self.advance()
            else:
                args = self.args()
            self.punct(";", f"after {keyword.text}")
        self.advance()
        self.punct(";", f"after the '}}' of {owner}")
        action_name = ""
        if action is not None:
            action_name = str(action.value) if action.kind is Kind.STRING else action.text
        return Step(
            name.text,
            tuple(transitions),
            action_name,
            args,
            at=name.at,
            action_at=name.at if action is None else action.at,
        )

    def transition(self) -> Transition:
        outcome = self.name("an outcome name")
        self.punct("->", f"after outcome {outcome.text}")
        target = self.name(f"a step or done after '{outcome.text} ->'")
        return Transition(outcome.text, target.text, at=outcome.at, target_at=target.at)

    def args(self) -> tuple[Arg, ...]:
        self.punct("(", "after 'args ='")
        args: list[Arg] = []
        while not self.at_punct(")"):
            if args:
                self.punct(",", "or ')' between args")
            key = self.name("an arg's name")
            self.punct("=", f"after arg {key.text}")
            value, value_at = self.literal(f"a value for arg {key.text}")
            args.append(Arg(key.text, value, at=key.at, value_at=value_at))
        self.advance()
        return tuple(args)

    def literal(self, what: str) -> tuple[Value, Pos]:
        token = self.peek()
        if token.kind in (Kind.STRING, Kind.INT, Kind.FLOAT) and token.value is not None:
            self.advance()
            return token.value, token.at
        if self.at_word("true", "false"):
            self.advance()
            return token.text == "true", token.at
        raise self.expected(f"{what} (a string, a number, true or false)")
