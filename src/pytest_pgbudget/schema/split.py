"""Split a PostgreSQL schema script into individually executable statements.

Tokenizing is delegated to :mod:`sqlparse`, with its PostgreSQL blind spots
corrected here:

* every quoted construct (``'...'``, ``E'...'``, ``"..."``, ``$tag$...$tag$``
  and ``/* ... */``) is re-measured with PostgreSQL's rules, so backslashes in
  standard-conforming strings, nested block comments and unterminated quotes
  are handled the way the server handles them;
* ``#`` is PostgreSQL's XOR operator, not a MySQL line comment.

Statement boundaries are decided here rather than by ``sqlparse.split``,
whose block heuristics are built for T-SQL and PL/SQL: it treats
``BEGIN ISOLATION LEVEL SERIALIZABLE;`` as the start of a block and
swallows the rest of the file.  PostgreSQL only has two places where a
``;`` does not end a statement outside quotes: inside parentheses
(``CREATE RULE ... DO (...; ...)``) and in ``BEGIN ATOMIC ... END`` function
bodies, and both are tracked below.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum, auto

from sqlparse import lexer
from sqlparse import tokens as T

__all__ = ["SchemaSyntaxError", "Statement", "split_sql"]


class SchemaSyntaxError(ValueError):
    """A schema script that cannot be split into SQL statements."""

    def __init__(self, message: str, *, source: str, line: int) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a schema script."""

    sql: str
    """The statement text, stripped, without the trailing ``;``."""
    source: str
    """The file name (or other label) the statement came from."""
    line: int
    """1-based line on which the statement's first non-comment token starts."""
    transactional: bool
    """``False`` for statements PostgreSQL refuses to run in a transaction block."""


def split_sql(text: str, source: str = "<string>") -> list[Statement]:
    """Split ``text`` into statements, skipping empty and comment-only ones.

    Raises :class:`SchemaSyntaxError` for psql meta-commands (``\\connect``,
    ``\\i``, ...) and for unterminated strings, identifiers or comments.
    """
    script = _Script(text, source)
    statements = []
    for tokens in _split_on_semicolons(_tokenize(script)):
        code = [token for token in tokens if token.kind is not _Kind.TRIVIA]
        if code:
            statements.append(
                Statement(
                    sql=text[code[0].start : code[-1].end],
                    source=source,
                    line=script.line_of(code[0].start),
                    transactional=not _refuses_transaction_block(code),
                )
            )
    return statements


class _Kind(Enum):
    """The token categories the splitter distinguishes."""

    TRIVIA = auto()  # whitespace and comments
    WORD = auto()  # keywords and unquoted names
    PUNCTUATION = auto()
    OTHER = auto()  # literals, quoted names, operators, ...


@dataclass(frozen=True)
class _Token:
    """A token and its offset in the script."""

    kind: _Kind
    value: str
    start: int

    @property
    def end(self) -> int:
        """The offset just past the token."""
        return self.start + len(self.value)

    @property
    def word(self) -> str:
        """The upper-cased value, so keywords compare case-insensitively."""
        return self.value.upper()


class _Script:
    """The text being split, with its source label, for error reporting."""

    _LINE_BREAK = re.compile(r"\r\n|\r|\n")

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self._line_starts = [0, *(m.end() for m in self._LINE_BREAK.finditer(text))]

    def line_of(self, offset: int) -> int:
        """The 1-based line number of the character at ``offset``."""
        return bisect_right(self._line_starts, offset)

    def error(self, message: str, offset: int) -> SchemaSyntaxError:
        """A :class:`SchemaSyntaxError` pointing at the line of ``offset``."""
        return SchemaSyntaxError(message, source=self.source, line=self.line_of(offset))


def _tokenize(script: _Script) -> Iterator[_Token]:
    """Tokenize the whole script, re-lexing after every token sqlparse mis-measured."""
    offset = 0
    while offset < len(script.text):
        offset = yield from _tokenize_from(script, offset)


def _tokenize_from(script: _Script, start: int) -> Generator[_Token, None, int]:
    """Yield sqlparse's tokens from ``start`` until one disagrees with PostgreSQL.

    The corrected token is yielded in its place and the generator returns the
    offset at which lexing has to resume, or the end of the text.
    """
    offset = start
    for ttype, value in lexer.tokenize(script.text[start:]):  # type: ignore[no-untyped-call]
        token = _Token(_kind_of(ttype), value, offset)
        corrected = _as_postgres_lexes_it(token, script)
        yield corrected
        if corrected.end != token.end:
            return corrected.end
        offset = token.end
    return len(script.text)


def _kind_of(ttype: T._TokenType) -> _Kind:
    """Map sqlparse's token type onto the categories the splitter needs."""
    if ttype in T.Whitespace or ttype in T.Comment:
        return _Kind.TRIVIA
    if ttype in T.Keyword or ttype is T.Name or ttype is T.Name.Builtin:
        return _Kind.WORD
    if ttype is T.Punctuation:
        return _Kind.PUNCTUATION
    return _Kind.OTHER


_E_STRING = re.compile(r"'(?:[^'\\]|\\.|'')*'", re.DOTALL)
_STANDARD_STRING = re.compile(r"'(?:[^']|'')*'")
_QUOTED_IDENTIFIER = re.compile(r'"(?:[^"]|"")*"')
_DOLLAR_QUOTE_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_E_PREFIX = re.compile(r"(?<![\w$])[eE]\Z")
_IDENTIFIER_CHAR = re.compile(r"[\w$]")


def _as_postgres_lexes_it(token: _Token, script: _Script) -> _Token:
    """Return ``token``, or the token PostgreSQL would lex at the same offset."""
    text, start = script.text, token.start
    if text.startswith("\\", start):
        command = token.value.split()[0] if token.value.strip() else "\\"
        raise script.error(f"psql meta-command {command!r} is not SQL", start)
    if text.startswith("#", start) and token.kind is _Kind.TRIVIA:
        return _Token(_Kind.OTHER, "#", start)
    if text.startswith("/*", start):
        return _Token(_Kind.TRIVIA, text[start : _block_comment_end(script, start)], start)
    if text.startswith("'", start):
        is_e_string = _E_PREFIX.search(text, max(0, start - 2), start) is not None
        pattern = _E_STRING if is_e_string else _STANDARD_STRING
        return _Token(_Kind.OTHER, _quoted(script, pattern, start, "string"), start)
    if text.startswith('"', start):
        return _Token(_Kind.OTHER, _quoted(script, _QUOTED_IDENTIFIER, start, "identifier"), start)
    if text.startswith("$", start):
        return _dollar_quoted(script, start) or token
    return token


def _quoted(script: _Script, pattern: re.Pattern[str], start: int, what: str) -> str:
    """The quoted ``what`` at ``start``, as far as ``pattern`` says it reaches."""
    match = pattern.match(script.text, start)
    if match is None:
        raise script.error(f"unterminated quoted {what}", start)
    return match.group()


def _block_comment_end(script: _Script, start: int) -> int:
    """The offset after the ``*/`` closing the comment at ``start``; they nest."""
    depth = 0
    for delimiter in re.finditer(r"/\*|\*/", script.text[start:]):
        depth += 1 if delimiter.group() == "/*" else -1
        if depth == 0:
            return start + delimiter.end()
    raise script.error("unterminated /* comment", start)


def _dollar_quoted(script: _Script, start: int) -> _Token | None:
    """The dollar-quoted string at ``start``, or ``None`` if ``$`` starts none."""
    text = script.text
    opener = _DOLLAR_QUOTE_TAG.match(text, start)
    if opener is None or (start and _IDENTIFIER_CHAR.match(text, start - 1)):
        return None  # a positional parameter such as $1, or part of a name
    closer = text.find(opener.group(), opener.end())
    if closer == -1:
        raise script.error(f"unterminated dollar-quoted string {opener.group()}", start)
    return _Token(_Kind.OTHER, text[start : closer + len(opener.group())], start)


def _split_on_semicolons(tokens: Iterable[_Token]) -> Iterator[list[_Token]]:
    """Group tokens into statements, dropping the terminating semicolons."""
    boundary = _Boundary()
    statement: list[_Token] = []
    for token in tokens:
        if boundary.terminates(token):
            yield statement
            boundary, statement = _Boundary(), []
        else:
            statement.append(token)
    yield statement


class _Boundary:
    """Tracks the nesting that keeps a ``;`` from ending the current statement."""

    def __init__(self) -> None:
        self._parentheses = 0
        self._atomic_blocks = 0  # BEGIN ATOMIC bodies and the CASE ... ENDs in them
        self._previous_word = ""

    def terminates(self, token: _Token) -> bool:
        """Feed the next token; return whether it is the statement's final ``;``."""
        if token.kind is _Kind.PUNCTUATION:
            return self._punctuation(token.value)
        if token.kind is _Kind.WORD:
            self._word(token.word)
        return False

    def _punctuation(self, value: str) -> bool:
        if value == "(":
            self._parentheses += 1
        elif value == ")":
            self._parentheses = max(0, self._parentheses - 1)
        return value == ";" and self._parentheses == 0 and self._atomic_blocks == 0

    def _word(self, word: str) -> None:
        opens_block = word == "ATOMIC" and self._previous_word == "BEGIN"
        if opens_block or (self._atomic_blocks and word == "CASE"):
            self._atomic_blocks += 1
        elif self._atomic_blocks and word.split()[0] == "END":
            self._atomic_blocks -= 1
        self._previous_word = word


_REFUSING_PREFIXES = (
    ("CREATE", "INDEX", "CONCURRENTLY"),
    ("CREATE", "UNIQUE", "INDEX", "CONCURRENTLY"),
    ("DROP", "INDEX", "CONCURRENTLY"),
    ("VACUUM",),
    ("CREATE", "DATABASE"),
    ("DROP", "DATABASE"),
    ("CREATE", "TABLESPACE"),
    ("DROP", "TABLESPACE"),
    ("ALTER", "SYSTEM"),
)
"""Statements that start with these words refuse to run in a transaction block."""

_REINDEX_TARGETS = frozenset({"INDEX", "TABLE", "SCHEMA", "DATABASE", "SYSTEM"})
_REINDEX_TARGETS_REFUSING = frozenset({"SCHEMA", "DATABASE", "SYSTEM"})


def _refuses_transaction_block(code: list[_Token]) -> bool:
    """Whether PostgreSQL raises "cannot run inside a transaction block" for it."""
    words = _leading_words(code)
    if any(tuple(words[: len(prefix)]) == prefix for prefix in _REFUSING_PREFIXES):
        return True
    if words[:1] == ["REINDEX"]:
        target = next((word for word in words if word in _REINDEX_TARGETS), "")
        return target in _REINDEX_TARGETS_REFUSING or "CONCURRENTLY" in words
    return words[:2] == ["ALTER", "DATABASE"] and words[3:5] == ["SET", "TABLESPACE"]


def _leading_words(code: list[_Token], limit: int = 12) -> list[str]:
    """The first tokens upper-cased, multi-word keywords such as ``IF NOT EXISTS`` split up."""
    return [
        word
        for token in code[:limit]
        for word in (token.word.split() if token.kind is _Kind.WORD else [token.value])
    ]
