"""Split FSL text into tokens, each with its line and column.

Tokens: names (``[A-Za-z_][A-Za-z0-9_]*``; keywords are names the parser recognises by place),
double-quoted strings (escapes ``\\"``, ``\\\\``, ``\\n``, ``\\t``; a string ends on its line),
integers and floats (optionally negative), and the punctuation ``; = ( ) , | { } / -> =>``.
Whitespace is free-form; ``#`` and ``//`` start a comment that runs to the end of the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from engine.definition.fsl.tree import Pos, Value


class Kind(Enum):
    """What a token is; punctuation tokens are ``PUNCT`` and told apart by their text."""

    NAME = "name"
    STRING = "string"
    INT = "integer"
    FLOAT = "float"
    PUNCT = "punctuation"
    EOF = "end of file"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, the text it was written as, its value (literals) and position."""

    kind: Kind
    text: str
    at: Pos
    value: Value | None = None

    def describe(self) -> str:
        """How an error message names this token: ``'method'``, ``the string "x"``."""
        if self.kind is Kind.EOF:
            return "the end of the file"
        if self.kind is Kind.STRING:
            return f"the string {self.text}"
        return f"'{self.text}'"


class FslSyntaxError(Exception):
    """The text is not FSL: what was expected at ``at`` and what was found."""

    def __init__(self, at: Pos, message: str) -> None:
        super().__init__(f"{at}: {message}")
        self.at = at
        self.message = message


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WORD_TAIL = re.compile(r"[A-Za-z0-9_.]*")
_PUNCT = ("->", "=>", ";", "=", "(", ")", ",", "|", "{", "}", "/")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with one ``EOF`` token; raise ``FslSyntaxError``."""
    return list(_Lexer(text).tokens())


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.line_start = 0

    def pos(self, i: int | None = None) -> Pos:
        return Pos(self.line, (self.i if i is None else i) - self.line_start + 1)

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        text = self.text
        while True:
            self.skip_space()
            if self.i >= len(text):
                out.append(Token(Kind.EOF, "", self.pos()))
                return out
            out.append(self.token())

    def skip_space(self) -> None:
        text = self.text
        while self.i < len(text):
            ch = text[self.i]
            if ch == "\n":
                self.i += 1
                self.line += 1
                self.line_start = self.i
            elif ch in " \t\r\f\v\ufeff":
                self.i += 1
            elif ch == "#" or text.startswith("//", self.i):
                end = text.find("\n", self.i)
                self.i = len(text) if end < 0 else end
            else:
                return

    def token(self) -> Token:
        text, at = self.text, self.pos()
        ch = text[self.i]
        if ch == '"':
            return self.string()
        if match := _NAME.match(text, self.i):
            self.i = match.end()
            return Token(Kind.NAME, match.group(), at)
        if match := _NUMBER.match(text, self.i):
            return self.number(match)
        for punct in _PUNCT:
            if text.startswith(punct, self.i):
                self.i += len(punct)
                return Token(Kind.PUNCT, punct, at)
        shown = ch if ch.isprintable() else repr(ch)[1:-1]
        raise FslSyntaxError(at, f"unexpected character '{shown}'")

    def number(self, match: re.Match[str]) -> Token:
        at, written = self.pos(), match.group()
        self.i = match.end()
        tail = _WORD_TAIL.match(self.text, self.i)
        if tail and tail.group():
            raise FslSyntaxError(at, f"invalid number '{written}{tail.group()}'")
        if match.group(1) or match.group(2):
            return Token(Kind.FLOAT, written, at, float(written))
        return Token(Kind.INT, written, at, int(written))

    def string(self) -> Token:
        text, at, start = self.text, self.pos(), self.i
        chars: list[str] = []
        i = self.i + 1
        while i < len(text) and text[i] != "\n":
            ch = text[i]
            if ch == '"':
                self.i = i + 1
                return Token(Kind.STRING, text[start : self.i], at, "".join(chars))
            if ch == "\\":
                escaped = text[i + 1 : i + 2]
                if escaped not in _ESCAPES:
                    shown = escaped if escaped.isprintable() else ""
                    raise FslSyntaxError(
                        self.pos(i),
                        f"unknown escape '\\{shown}' in a string "
                        '(write \\" for a quote, \\\\ for a backslash, \\n, \\t)',
                    )
                chars.append(_ESCAPES[escaped])
                i += 2
                continue
            chars.append(ch)
            i += 1
        raise FslSyntaxError(at, "unterminated string: no closing '\"' on its line")
