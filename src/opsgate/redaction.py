"""Keep secrets out of every output: by value (in any encoding) and by name.

A ``Redactor`` knows the secret values of a run (everything expanded from ``${VAR}`` and the
literal values of sensitive headers) and the patterns of sensitive names.

``text()`` masks, in any string:

* every known value, raw; URL-encoded, HTML-escaped, JSON- or Python-escaped, in any mix and up
  to three layers deep (``&amp;lt;``, ``\\u00e9``, ``%C3%A9``, ``\\xa0``); base64-encoded
  (standard or URL-safe, padded or not, alone or anywhere inside a longer base64 string such
  as ``user:secret``: the whole base64 token is masked). Overlapping values are masked as the
  union of their spans, so a value containing another leaves no tail. A value cut by a
  truncation (``abc...`` or ``...xyz``, as pytest and the evidence cut long text) is masked
  too when at least ``MIN_PARTIAL_LENGTH`` characters of it remain;
* by name, values that are not known in advance: URL passwords (``scheme://user:PASSWORD@``),
  sensitive query or form parameters (``?token=...``, ``&amp;api_key=...``), quoted key-value
  pairs (``"access_token": "..."``, ``'password': '...'``), ``Name: value`` and
  ``name = value`` lines (headers, ``--showlocals``) and ``Bearer``/``Basic`` credentials.

``data()`` walks JSON-like structures, applies ``text()`` to every string and key, and masks
every value under a sensitive key at any depth.

All known values are matched by one precompiled regular expression (a trie of every form,
longest first), rebuilt lazily after ``add()``; its cost is measured in
``tests/unit/test_redaction.py``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import fnmatch
import html
import re
import string
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 4
MIN_PARTIAL_LENGTH = 4
MAX_DECODE_LEVELS = 3
DEFAULT_SENSITIVE_NAMES = (
    "authorization", "proxy-authorization", "cookie", "set-cookie",
    "*secret*", "*token*", "*key*", "*password*", "*passwd*", "*session*", "*credential*",
    "*signature*",
)

Span = tuple[int, int]

# ---------------------------------------------------------------- building the value matcher
_END = ""
_MAX_NESTING = 32
_MAX_FANOUT = 24
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")


def trie_pattern(words: Iterable[str]) -> str:
    """One regular expression for all ``words``: at any position the longest matches first.

    A trie with its single-child chains written as literals, so the engine follows one branch
    per character instead of trying every word; nesting is bounded, wide nodes are split into
    character-class guarded groups.
    """
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[_END] = {}
    return _trie_node(root, 0) if root else "(?!)"


def _trie_node(node: dict[str, Any], nesting: int) -> str:
    literal = []
    while len(node) == 1 and _END not in node:
        (char, node), = node.items()
        literal.append(re.escape(char))
    children = sorted(key for key in node if key != _END)
    if not children:
        return "".join(literal)
    if nesting >= _MAX_NESTING:
        rest = sorted(_words_below(node), key=len, reverse=True)
        body = "|".join(re.escape(word) for word in rest if word)
        return "".join(literal) + f"(?:{body})" + ("?" if "" in rest else "")
    branches = [(char, re.escape(char) + _trie_node(node[char], nesting + 1))
                for char in children]
    body = _branches(branches)
    return "".join(literal) + (f"(?:{body})?" if _END in node else f"(?:{body})")


def _branches(branches: list[tuple[str, str]]) -> str:
    """``a|b|c`` for a few branches; character-class guarded groups for many."""
    if len(branches) <= _MAX_FANOUT:
        return "|".join(regex for _, regex in branches)
    size = max(_MAX_FANOUT, int(len(branches) ** 0.5) + 1)
    groups = []
    for start in range(0, len(branches), size):
        chunk = branches[start:start + size]
        chars = "".join(_class_char(char) for char, _ in chunk)
        groups.append(f"(?=[{chars}])(?:{_branches(chunk)})")
    return "|".join(groups)


def _class_char(char: str) -> str:
    return "\\" + char if char in "\\]^-[" else char


def _words_below(node: dict[str, Any]) -> Iterator[str]:
    stack = [("", node)]
    while stack:
        prefix, current = stack.pop()
        for char, child in current.items():
            if char == _END:
                yield prefix
            else:
                stack.append((prefix + char, child))


def variants(secret: str) -> set[str]:
    """The values a secret can also take: URL-decoded, ``+`` for spaces, and what the decoded
    views of a text make of it when it looks escaped itself (``%d0`` in a secret is decoded in
    the view of that text as in the view of the text around it)."""
    found = {secret}
    if _PERCENT.search(secret):
        found |= {unquote(secret), unquote_plus(secret)}
    value = secret
    for _ in range(MAX_DECODE_LEVELS):
        if not _ESCAPES.search(value):
            break
        value = _View(value).text
        found.add(value)
    found |= {value.replace(" ", "+") for value in found if " " in value}
    return found


def base64_cores(value: str) -> set[str]:
    """Base64 text that appears wherever ``value``'s bytes are base64-encoded.

    Inside a longer string the value's bytes start at one of three offsets modulo 3; for each,
    the characters whose 6 bits come only from the value are the same whatever surrounds it.
    Standard and URL-safe alphabets, UTF-8 and (when it differs) Latin-1 bytes.
    """
    encodings = [value.encode("utf-8", "surrogatepass")]
    try:
        latin = value.encode("latin-1")
    except UnicodeEncodeError:
        latin = encodings[0]
    if latin != encodings[0]:
        encodings.append(latin)
    cores = set()
    for data in encodings:
        for offset in range(3):
            encoded = base64.b64encode(b"\0" * offset + data + b"\0\0").decode("ascii")
            first = -(-8 * offset // 6)
            last = 8 * (offset + len(data)) // 6
            core = encoded[first:last]
            cores.update({core, core.replace("+", "-").replace("/", "_")})
    return {core for core in cores if len(core) >= MIN_SECRET_LENGTH}


def python_reprs(value: str) -> set[str]:
    """``value`` as Python's ``repr`` writes it, without the quotes (pytest shows this)."""
    text = repr(value)[1:-1]
    return {text, text.replace("\\'", "'")}


@dataclass(frozen=True)
class _Matcher:
    """Everything compiled from the current set of secrets."""

    pattern: re.Pattern[str]
    cores: frozenset[str]
    longest: int
    partials: tuple[str, ...]  # sorted forms, for prefix tests
    partial_longest: int
    reversed_partials: tuple[str, ...]  # sorted reversed forms, for suffix tests
    grams: frozenset[str]  # every MIN_PARTIAL_LENGTH-long piece of every form

    @classmethod
    def build(cls, secrets: Iterable[str]) -> _Matcher:
        literals: set[str] = set()
        cores: set[str] = set()
        partial_forms: set[str] = set()
        for secret in secrets:
            for value in variants(secret):
                literals.add(value)
                cores |= base64_cores(value)
                partial_forms |= {value, *python_reprs(value)}
        words = {word for word in literals | cores if len(word) >= MIN_SECRET_LENGTH}
        grams = {form[i:i + MIN_PARTIAL_LENGTH] for form in partial_forms
                 for i in range(len(form) - MIN_PARTIAL_LENGTH + 1)}
        return cls(pattern=re.compile(trie_pattern(words)), cores=frozenset(cores - literals),
                   longest=max(map(len, words), default=0),
                   partials=tuple(sorted(partial_forms)),
                   partial_longest=max(map(len, partial_forms), default=0),
                   reversed_partials=tuple(sorted(form[::-1] for form in partial_forms)),
                   grams=frozenset(grams))


_EMPTY = _Matcher.build(())

# ---------------------------------------------------------------- decoding escaped text
_ESCAPES = re.compile(  # each alternative starts with a literal: the engine skips to % \\ &
    r"%[0-9A-Fa-f]{2}(?:%[0-9A-Fa-f]{2})*"
    r"|\\(?:[xX][0-9A-Fa-f]{2}|[0-3][0-7]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[\\/\"'bfnrt])"
    r"(?:\\(?:[xX][0-9A-Fa-f]{2}|[0-3][0-7]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[\\/\"'bfnrt]))*"
    r"|&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_SIMPLE = {"\\": "\\", "/": "/", '"': '"', "'": "'", "b": "\b", "f": "\f", "n": "\n",
           "r": "\r", "t": "\t"}
_NAME_CHARS = frozenset("\"'=:&?/@")

Decoded = list[tuple[str, int, int]]  # characters with the source span each came from


def _decode_escape(match: re.Match[str]) -> Decoded:
    """The characters one run of escapes stands for, each with its span in the source."""
    token, start = match.group(), match.start()
    if token[0] == "&":
        chars = html.unescape(token)  # a few entities stand for two characters
        return [(char, start, match.end()) for char in chars] if chars != token else []
    if token[0] == "%":
        units = [(int(token[i + 1:i + 3], 16), start + i, start + i + 3)
                 for i in range(0, len(token), 3)]
        return _from_bytes(units)
    return _from_backslashes(token, start)


def _from_backslashes(token: str, start: int) -> Decoded:
    """``\\xNN`` and ``\\ooo`` runs are bytes, ``\\uNNNN`` runs code units, the rest chars."""
    chars: Decoded = []
    run: list[tuple[int, int, int]] = []
    kind = ""
    index = 0
    while index < len(token):
        letter = token[index + 1]
        if letter in "xX":
            unit, width, unit_kind = int(token[index + 2:index + 4], 16), 4, "byte"
        elif letter in "0123":
            unit, width, unit_kind = int(token[index + 1:index + 4], 8), 4, "byte"
        elif letter in "uU":
            width = 6 if letter == "u" else 10
            unit, unit_kind = int(token[index + 2:index + width], 16), "code"
        else:
            unit, width, unit_kind = ord(_SIMPLE[letter]), 2, "char"
        if unit_kind != kind and run:
            chars += _from_bytes(run) if kind == "byte" else _from_code_units(run)
            run = []
        kind = unit_kind
        run.append((unit, start + index, start + index + width))
        index += width
    chars += _from_bytes(run) if kind == "byte" else _from_code_units(run)
    return chars


def _from_bytes(units: list[tuple[int, int, int]]) -> Decoded:
    """UTF-8 characters from byte units; a byte that is not UTF-8 stands for itself (Latin-1)."""
    chars: Decoded = []
    data = bytes(unit for unit, _, _ in units)
    index = 0
    while index < len(data):
        lead = data[index]
        size = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        try:
            char = data[index:index + size].decode("utf-8")
        except UnicodeDecodeError:
            char = ""
        if len(char) != 1:
            char, size = chr(lead), 1
        chars.append((char, units[index][1], units[index + size - 1][2]))
        index += size
    return chars


def _from_code_units(units: list[tuple[int, int, int]]) -> Decoded:
    """Characters from code units, joining UTF-16 surrogate pairs (``\\ud83d\\ude00``)."""
    chars: Decoded = []
    index = 0
    while index < len(units):
        code, first, last = units[index]
        if (0xD800 <= code < 0xDC00 and index + 1 < len(units)
                and 0xDC00 <= units[index + 1][0] < 0xE000):
            code = 0x10000 + ((code - 0xD800) << 10) + (units[index + 1][0] - 0xDC00)
            last = units[index + 1][2]
            index += 1
        chars.append((chr(code) if code <= 0x10FFFF else "\ufffd", first, last))
        index += 1
    return chars


class _View:
    """``source`` with one layer of escapes decoded, and the way back to source positions."""

    def __init__(self, source: str):
        pieces: list[str] = []
        self.starts: list[int] = []  # view index where each piece begins
        self.origins: list[tuple[int, int, bool]] = []  # source start, end, literal?
        self.decoded: list[int] = []  # view indexes of decoded characters
        length, done = 0, 0
        for match in _ESCAPES.finditer(source):
            chars = _decode_escape(match)
            if not chars:
                continue
            if match.start() > done:
                self._piece(pieces, source[done:match.start()], length, done, done, True)
                length += match.start() - done
            for char, first, last in chars:
                self.decoded.append(length)
                self._piece(pieces, char, length, first, last, False)
                length += 1
            done = match.end()
        if done < len(source):
            self._piece(pieces, source[done:], length, done, len(source), True)
        self.text = "".join(pieces)

    def _piece(self, pieces: list[str], text: str, at: int, first: int, last: int,
               literal: bool) -> None:
        pieces.append(text)
        self.starts.append(at)
        self.origins.append((first, last, literal))

    def decoded_any(self, chars: frozenset[str]) -> bool:
        """Whether decoding produced one of ``chars``."""
        text = self.text
        return any(text[index] in chars for index in self.decoded)

    def source_span(self, start: int, end: int) -> Span:
        """The source span that view characters ``start:end`` came from."""
        return self._source(start)[0], self._source(end - 1)[1]

    def _source(self, index: int) -> Span:
        piece = bisect.bisect_right(self.starts, index) - 1
        first, last, literal = self.origins[piece]
        if literal:
            position = first + index - self.starts[piece]
            return position, position + 1
        return first, last


# ---------------------------------------------------------------- sensitive names in text
_USERINFO = re.compile(r"://[^\s/?#@:\"'<>\\]*:(?P<value>[^\s/?#\"'<>\\]*)@")
_PARAMETER = re.compile(  # starts with the delimiter, so the engine skips to candidates
    r"[?&;\s,(\[{](?P<name>[^\s=&?#;,\"'<>()\[\]{}]{1,100})=(?P<value>[^&#\s\"'<>;,()\[\]{}]*)")
_QUOTED = re.compile(
    r"(?P<q>[\"'])(?P<name>[^\"'\\\n]{1,100})(?P=q)[ \t]*[:=][ \t]*"
    r"(?P<q2>[\"'])(?P<value>(?:\\.|(?!(?P=q2))[^\\\n])*)(?P=q2)")
_LINE = re.compile(r"(?m)^[ \t]*(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,63})[ \t]*(?::|[ \t]=)"
                   r"[ \t]*(?P<value>[^\r\n]*)")
_SCHEME = re.compile(r"(?i)\b(?P<scheme>bearer|basic)[ \t]+(?P<value>[A-Za-z0-9\-._~+/]{8,}=*)")
_SCHEMES = ("bearer", "basic")
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-")
_BASE64_TAIL = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _name_gate(patterns: Iterable[str]) -> tuple[str, ...] | None:
    """A quick test that text may hold a sensitive name: one literal piece of every pattern.

    ``None`` when some pattern has no literal piece (``*``): then every text is examined.
    """
    pieces = set()
    for pattern in patterns:
        literal = max(re.split(r"[*?\[\]]+", pattern), key=len)
        if not literal:
            return None
        pieces.add(literal)
    return tuple(piece for piece in pieces
                 if not any(other in piece for other in pieces if other != piece))


def _is_credential(scheme: str, value: str) -> bool:
    """A Bearer token has a character other than a letter (prose: "Bearer authentication");
    a Basic one decodes to ``user:password``."""
    if scheme.lower() != "basic":
        return not value.isalpha()
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_")
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


# ---------------------------------------------------------------- the redactor
class Redactor:
    """Removes known secret values and masks values of sensitive names.

    ``secrets``: values to remove wherever they appear. ``sensitive_names``: the default name
    patterns (``fnmatch``, case-insensitive); ``names``: more patterns on top of them (the
    environment file's ``redact: {names: [...]}``).
    """

    def __init__(self, secrets: Iterable[str] = (),
                 sensitive_names: Iterable[str] = DEFAULT_SENSITIVE_NAMES, *,
                 names: Iterable[str] = ()):
        self._secrets: set[str] = set()
        self._patterns: tuple[str, ...] = ()
        self._matcher: _Matcher = _EMPTY
        self._stale = False
        self._lock = threading.Lock()
        self.add_names([*sensitive_names, *names])
        for secret in secrets:
            self.add(secret)

    # ------------------------------------------------------------ configuration
    def add(self, secret: str) -> None:
        """Treat ``secret`` as secret from now on (values shorter than 4 chars are ignored)."""
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        # Tools strip what surrounds a value (pytest's diff drops trailing spaces): the
        # stripped secret is as secret as the whole one.
        stripped = secret.strip()
        variants = {secret} | ({stripped} if len(stripped) >= MIN_SECRET_LENGTH else set())
        with self._lock:
            if not variants <= self._secrets:
                self._secrets |= variants
                self._stale = True

    def add_names(self, names: Iterable[str]) -> None:
        """Treat keys, headers, columns and parameters matching ``names`` as sensitive."""
        added = tuple(str(name).lower() for name in names)
        self._patterns = tuple(dict.fromkeys((*self._patterns, *added)))
        self._cache: dict[str, bool] = {}
        self._name_gate = _name_gate(self._patterns)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def is_sensitive(self, name: str) -> bool:
        """Whether a header, key, column or parameter called ``name`` holds a secret."""
        lowered = str(name).lower()
        known = self._cache.get(lowered)
        if known is None:
            known = any(fnmatch.fnmatchcase(lowered, pattern) for pattern in self._patterns)
            if len(self._cache) < 10_000:
                self._cache[lowered] = known
        return known

    def _current(self) -> _Matcher:
        if self._stale:
            with self._lock:
                if self._stale:
                    self._matcher = _Matcher.build(self._secrets)
                    self._stale = False
        return self._matcher

    # ------------------------------------------------------------ redaction
    def text(self, value: str) -> str:
        """``value`` with every known secret (in any form) and every sensitive value masked."""
        if not value:
            return value
        if not isinstance(value, str):
            value = str(value)
        spans = self.spans(value)
        return _apply(value, spans) if spans else value

    def spans(self, value: str) -> list[Span]:
        """Where ``text()`` would mask: merged, sorted spans."""
        matcher = self._current()
        found = self._value_spans(value, matcher) + self._name_spans(value)
        source, chain = value, []
        for _ in range(MAX_DECODE_LEVELS):
            if not _ESCAPES.search(source):
                break
            view = _View(source)
            if not view.decoded:
                break
            chain.append(view)
            found += [_back(chain, span) for span in
                      self._view_spans(view, matcher) + _partial_spans(view.text, matcher)]
            source = view.text  # escapes left in it were formed by decoding: ``\\&quot;``
        return _merge(found + _partial_spans(value, matcher))

    def url(self, value: str) -> str:
        """A URL with its password and sensitive query parameters masked (as ``text()``)."""
        return self.text(value)

    def data(self, value: Any, key: str | None = None) -> Any:
        """A deep copy of JSON-like ``value`` with secrets removed and sensitive keys masked."""
        if key is not None and self.is_sensitive(key) and value not in (None, "", [], {}):
            return MASK
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    # ------------------------------------------------------------ finding spans
    def _value_spans(self, text: str, matcher: _Matcher, start: int = 0,
                     end: int | None = None) -> list[Span]:
        if matcher.longest == 0:
            return []
        end = len(text) if end is None else end
        pattern, spans = matcher.pattern, []
        position = start
        while match := pattern.search(text, position, end):
            span = match.span()
            if match.group() in matcher.cores:
                span = _base64_token(text, span)
            spans.append(span)
            position = match.start() + 1
        return spans

    def _view_spans(self, view: _View, matcher: _Matcher) -> list[Span]:
        """Matches in a decoded view that involve a decoded character (others were found)."""
        spans = self._name_spans(view.text) if view.decoded_any(_NAME_CHARS) else []
        reach = matcher.longest
        windows: list[Span] = []
        for index in view.decoded:
            low, high = max(0, index - reach + 1), min(len(view.text), index + reach)
            if windows and low <= windows[-1][1]:
                windows[-1] = (windows[-1][0], high)
            else:
                windows.append((low, high))
        for low, high in windows:
            spans += self._value_spans(view.text, matcher, low, high)
        return spans

    def _name_spans(self, text: str) -> list[Span]:
        spans: list[Span] = []
        if "://" in text:
            spans += [m.span("value") for m in _USERINFO.finditer(text) if m.group("value")]
        lowered = text.lower()
        if self._name_gate is None or any(piece in lowered for piece in self._name_gate):
            if "=" in text:
                spans += self._named(_PARAMETER, " " + text, unquote_plus, shift=-1)
            if "'" in text or '"' in text:
                spans += self._named(_QUOTED, text)
            if ":" in text or "=" in text:
                spans += self._named(_LINE, text)
        if any(scheme in lowered for scheme in _SCHEMES):
            spans += [m.span("value") for m in _SCHEME.finditer(text)
                      if _is_credential(m.group("scheme"), m.group("value"))]
        return spans

    def _named(self, pattern: re.Pattern[str], text: str,
               normalise: Callable[[str], str] = str, shift: int = 0) -> list[Span]:
        spans = []
        for match in pattern.finditer(text):
            value = match.group("value")
            if value and value != MASK and self.is_sensitive(normalise(match.group("name"))):
                start, end = match.span("value")
                spans.append((start + shift, end + shift))
        return spans


def _base64_token(text: str, span: Span) -> Span:
    """The whole base64 token around ``span`` (``user:secret`` leaves no ``user``)."""
    start = span[0]
    while start > 0 and text[start - 1] in _BASE64_CHARS:
        start -= 1
    tail = _BASE64_TAIL.match(text, span[1])
    return start, tail.end() if tail else span[1]


def _back(chain: list[_View], span: Span) -> Span:
    """A span of the innermost view mapped back to the original text."""
    for view in reversed(chain):
        span = view.source_span(*span)
    return span


def _partial_spans(text: str, matcher: _Matcher) -> list[Span]:
    """The part of a secret that a truncation (``...``) left before or after it.

    A cut may also split an escape (``\\u00`` before the ellipsis in a decoded view): such a
    fragment is skipped, and masked with the piece.
    """
    if not ("..." in text or "\u2026" in text) or not matcher.partial_longest:
        return []
    spans = []
    reach = matcher.partial_longest
    for match in _ELLIPSIS.finditer(text):
        before, after = match.start(), match.end()
        fragment = _TRAILING_FRAGMENT.search(text, max(0, before - 12), before)
        for end in {before, fragment.start() if fragment else before}:
            if text[max(0, end - MIN_PARTIAL_LENGTH):end] not in matcher.grams:
                continue
            head = text[max(0, end - reach):end]
            length = _longest(len(head), lambda n, w=head: w[len(w) - n:], matcher.partials)
            if length:
                spans.append((end - length, before))
        tail = _tail_span(text, after, matcher)
        if tail:
            spans.append(tail)
    return spans


_ELLIPSIS = re.compile(r"\.\.\.|\u2026")
_TRAILING_FRAGMENT = re.compile(
    r"(?:\\+(?:u[0-9A-Fa-f]{0,3}|U[0-9A-Fa-f]{0,7}|x[0-9A-Fa-f]?|[0-3][0-7]?)?"
    r"|%[0-9A-Fa-f]?|&#?[A-Za-z0-9]{0,31})\Z")


def _tail_span(text: str, after: int, matcher: _Matcher) -> Span | None:
    """The end of a secret that follows an ellipsis at ``after``, if any.

    Either right after it (a cut escape's hex digits may come first), or ending at a closing
    quote: pytest (``reprlib``) shortens ``'abcdefgh'`` to ``'ab...gh'`` by taking the end of
    the repr of a shortened string, which may start with a few more characters of the value.
    """
    reach = matcher.partial_longest
    end = after
    for skip in range(_leading_hex(text, after) + 1):
        start = after + skip
        if text[start:start + MIN_PARTIAL_LENGTH] in matcher.grams:
            window = text[start:start + reach]
            length = _longest(len(window), lambda n, w=window: w[:n][::-1],
                              matcher.reversed_partials)
            end = max(end, start + length if length else end)
    for quote in _QUOTE.finditer(text, after + MIN_PARTIAL_LENGTH, after + reach + 1):
        if text[quote.start() - MIN_PARTIAL_LENGTH:quote.start()] in matcher.grams:
            window = text[after:quote.start()]
            if _longest(len(window), lambda n, w=window: w[len(w) - n:][::-1],
                        matcher.reversed_partials):
                end = max(end, quote.start())
    return (after, end) if end > after else None


_QUOTE = re.compile(r"[\"']")


def _leading_hex(text: str, start: int) -> int:
    """How many hex digits begin ``text`` at ``start`` (the tail of a cut escape), at most 7."""
    count = 0
    while count < 7 and start + count < len(text) and text[start + count] in string.hexdigits:
        count += 1
    return count


def _longest(limit: int, piece: Callable[[int], str], forms: tuple[str, ...]) -> int:
    """The largest ``n <= limit`` (at least ``MIN_PARTIAL_LENGTH``) whose ``piece(n)`` begins
    one of the sorted ``forms``; 0 when there is none."""
    best = 0
    for length in range(MIN_PARTIAL_LENGTH, limit + 1):
        candidate = piece(length)
        at = bisect.bisect_left(forms, candidate)
        if at < len(forms) and forms[at].startswith(candidate):
            best = length
    return best


def _merge(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _apply(text: str, spans: list[Span]) -> str:
    out, done = [], 0
    for start, end in spans:
        out += [text[done:start], MASK]
        done = end
    out.append(text[done:])
    return "".join(out)
