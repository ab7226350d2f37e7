"""Fingerprint SQL statements so that executions of the same query group together.

:func:`normalize` reduces a statement to its shape:

* constants and bind parameters become ``?``: numbers, string literals (also
  ``E''``, ``B''``, ``X''``, ``U&''`` and dollar-quoted ones) and the
  placeholders of every driver style (``$1``, ``%s``, ``%(name)s``,
  ``:name`` and ``?``), with a leading sign folded in (``= -1`` is ``= ?``);
* ``TRUE``, ``FALSE`` and ``NULL`` are kept: they are written into the query
  by its author rather than passed in, and they change plans (partial
  indexes, ``IS NULL``) where an ordinary value does not;
* a list of constants after ``IN`` or in ``ARRAY[...]`` becomes ``(?, ...)``
  whatever its length, and repeated identical ``VALUES`` rows become one row;
* casts keep their type (``'{}'::jsonb`` is ``?::jsonb``);
* comments are dropped, whitespace is collapsed, unquoted words are
  lower-cased, quoted identifiers keep their case (and lose their quotes when
  they are not needed, so ``"users"."id"`` is ``users.id``), and trailing
  semicolons are removed.

The statements come from every query a test suite runs, so this module uses
one compiled regular expression instead of :mod:`sqlparse`, whose general
purpose lexer is about ten times slower.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterator
from functools import lru_cache

__all__ = ["fingerprint", "normalize"]

_TOKEN = re.compile(
    r"""
      (?P<space> \s+ | --[^\r\n]* )
    | (?P<block_comment> /\* )
    | (?P<string>
          [eE]' (?: [^'\\] | \\. | '' )* '?
        | (?: [uU]& | [bBxXnN] )? ' (?: [^'] | '' )* '?
      )
    | (?P<dollar_quote> \$ (?: [^\W\d] \w* )? \$ )
    | (?P<quoted_name> (?: [uU]& )? " (?: [^"] | "" )* "? )
    | (?P<cast> :: )
    | (?P<parameter>
          \$ \d+
        | % (?: \( [^)]* \) )? [sbt]
        | (?<! [:\w] ) : [^\W\d] \w*
        | \? (?! [|&] )
      )
    | (?P<number>
          0 [xX] [\da-fA-F_]+ | 0 [oO] [0-7_]+ | 0 [bB] [01_]+
        | (?: \d [\d_]* (?: \. [\d_]* )? | \. \d [\d_]* ) (?: [eE] [+-]? \d+ )?
      )
    | (?P<word> [^\W\d] [\w$]* )
    | (?P<operator>
          (?: (?! -- | /\* | % (?: \( [^)]* \) )? [sbt] | \? (?! [|&] ) ) [-+*/<>=~!@\#%^&|`?] )+
      )
    | (?P<other> . )
    """,
    re.VERBOSE | re.DOTALL,
)

_CONSTANT = "?"
_ELLIPSIS = "..."
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_PLAIN_NAME = re.compile(r'"([a-z_][a-z0-9_$]*)"')
_OPERATOR_WITHOUT_SIGN_TRIM = re.compile(r"[~!@#%^&|`?]")

# Keywords that may stand before "(" or a signed constant: the output reads
# "in (" rather than "in(", and "then -1" folds like "= -1" does.
# fmt: off
_KEYWORDS = frozenset((
    "all", "and", "any", "as", "between", "by", "case", "conflict", "do", "else",
    "except", "exists", "from", "having", "in", "intersect", "into", "is", "join",
    "key", "like", "limit", "not", "offset", "on", "or", "over", "returning",
    "select", "set", "some", "then", "union", "using", "values", "when", "where",
    "with",
))
# fmt: on

_LIST_OWNERS = {"(": "in", "[": "array"}
_CLOSING = {")": "(", "]": "["}


@lru_cache(maxsize=4096)
def normalize(sql: str) -> str:
    """Return the shape of ``sql``, without its constants, comments and layout."""
    shape = _Shape()
    for token in _tokens(sql):
        shape.add(token)
    return shape.text()


def fingerprint(sql: str) -> str:
    """Return a 16 hex digit id, equal for statements of the same shape."""
    return hashlib.blake2b(normalize(sql).encode(), digest_size=8).hexdigest()


def _tokens(sql: str) -> Iterator[str]:
    """Yield the normalized tokens of ``sql``, dropping whitespace and comments."""
    position = 0
    while position < len(sql):
        match = _TOKEN.match(sql, position)
        assert match is not None, "the 'other' alternative matches any character"
        kind, token = match.lastgroup, match.group()
        position = match.end()
        if kind == "block_comment":
            position = _block_comment_end(sql, match.start())
        elif kind == "dollar_quote":
            closing = sql.find(token, position)
            position = len(sql) if closing == -1 else closing + len(token)
            yield _CONSTANT
        elif kind == "operator":
            operator = _trim_trailing_sign(token)
            position = match.start() + len(operator)
            yield operator
        elif kind != "space":
            yield _normalize_token(kind, token)


def _normalize_token(kind: str | None, token: str) -> str:
    """Map a constant to ``?`` and fold the case of an unquoted word."""
    if kind in ("string", "parameter", "number"):
        return _CONSTANT
    if kind == "word":
        return token.translate(_ASCII_LOWER)  # PostgreSQL folds ASCII letters only
    if kind == "quoted_name":
        plain = _PLAIN_NAME.fullmatch(token)
        return plain.group(1) if plain and plain.group(1) not in _KEYWORDS else token
    return token


def _block_comment_end(sql: str, start: int) -> int:
    """The offset after the comment at ``start`` (they nest), or the end of ``sql``."""
    depth = 0
    for delimiter in re.finditer(r"/\*|\*/", sql[start:]):
        depth += 1 if delimiter.group() == "/*" else -1
        if depth == 0:
            return start + delimiter.end()
    return len(sql)


def _trim_trailing_sign(operator: str) -> str:
    """Split ``=-`` into ``=`` and ``-`` the way PostgreSQL's lexer does.

    A multi-character operator cannot end in ``+`` or ``-`` unless it also
    contains one of ``~ ! @ # % ^ & | ` ?``, so ``x=-1`` means ``x = -1``.
    """
    if _OPERATOR_WITHOUT_SIGN_TRIM.search(operator):
        return operator
    return operator.rstrip("+-") or operator[0]


class _Shape:
    """Accumulates normalized tokens, folding signs and collapsing lists."""

    def __init__(self) -> None:
        self._tokens: list[str] = []
        self._open_brackets: list[int] = []

    def add(self, token: str) -> None:
        tokens = self._tokens
        if token == _CONSTANT and self._follows_unary_sign():
            tokens.pop()
        tokens.append(token)
        if token in _LIST_OWNERS:
            self._open_brackets.append(len(tokens) - 1)
        elif token in _CLOSING and self._open_brackets:
            opening = self._open_brackets.pop()
            if tokens[opening] == _CLOSING[token]:
                self._collapse_constant_list(opening)
                self._collapse_repeated_row(opening)

    def text(self) -> str:
        """Render the tokens with canonical spacing and without trailing ``;``."""
        tokens = self._tokens
        end = len(tokens)
        while end and tokens[end - 1] == ";":
            end -= 1
        parts: list[str] = []
        for index in range(end):
            if index and _spaced(tokens[index - 1], tokens[index]):
                parts.append(" ")
            parts.append(tokens[index])
        return "".join(parts)

    def _follows_unary_sign(self) -> bool:
        """Whether the last token is a ``-``/``+`` applied to what comes next."""
        tokens = self._tokens
        if not tokens or tokens[-1] not in ("-", "+"):
            return False
        return len(tokens) == 1 or not _ends_operand(tokens[-2])

    def _collapse_constant_list(self, opening: int) -> None:
        """``IN (?, ?, ?)`` and ``ARRAY[?, ?]`` become ``IN (?, ...)`` and ``ARRAY[?, ...]``."""
        tokens = self._tokens
        if opening == 0 or tokens[opening - 1] != _LIST_OWNERS[tokens[opening]]:
            return
        items = _split_items(tokens[opening + 1 : -1])
        first = items[0]
        if first[:1] == [_CONSTANT] and all(item == first for item in items):
            tokens[opening + 1 : -1] = [*first, ",", _ELLIPSIS]

    def _collapse_repeated_row(self, opening: int) -> None:
        """``VALUES (?, ?), (?, ?)`` becomes ``VALUES (?, ?)``, as rows of ``IN``."""
        tokens = self._tokens
        row = tokens[opening:]
        previous = opening - 1 - len(row)
        if previous < 1 or tokens[opening - 1] != "," or tokens[previous : opening - 1] != row:
            return
        before = tokens[previous - 1]
        if before == "values" or (before == "(" and tokens[previous - 2 : previous - 1] == ["in"]):
            del tokens[opening - 1 :]


def _split_items(tokens: list[str]) -> list[list[str]]:
    """Split a bracketed list's tokens at its top-level commas."""
    items: list[list[str]] = [[]]
    depth = 0
    for token in tokens:
        if token == "," and depth == 0:
            items.append([])
            continue
        depth += (token in _LIST_OWNERS) - (token in _CLOSING)
        items[-1].append(token)
    return items


def _ends_operand(token: str) -> bool:
    """Whether ``token`` can end an operand, making a following ``-`` binary."""
    if token in (_CONSTANT, ")", "]") or token.startswith('"'):
        return True
    return (token[:1].isalpha() or token[:1] == "_") and token not in _KEYWORDS


def _spaced(previous: str, token: str) -> bool:
    """Whether the rendered text has a space between ``previous`` and ``token``."""
    if previous in ("(", "[", ".", "::") or token in (")", "]", ",", ".", "::", "[", ";"):
        return False
    if token == "(":
        return previous in _KEYWORDS or not _ends_operand(previous)
    return True
