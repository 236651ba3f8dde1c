"""Limits on the JSON a client or caller sends: nesting depth and integers beyond 64 bits.

Every JSON document that comes from outside (a frame, a ``channel_data`` or ``user_data`` string, a
REST body) is read with :func:`loads`, which refuses what orjson would read but the engine cannot
keep or send on:

* nesting deeper than ``max_depth`` (``REALTIME_MAX_JSON_DEPTH``): orjson reads 1024 levels but
  writes only 254, and a deep document costs memory and time everywhere it is copied.
  ``{}`` and ``[]`` are one level, ``{"a": [1]}`` two; a frame counts as a whole (its ``data`` is
  one level below it).
* an integer outside ``[-2**63, 2**64 - 1]``: orjson reads it as a float, silently losing digits
  (``18446744073709551616`` becomes ``1.8446744073709552e19``), and cannot write it.

Both checks are cheap for the common document: the depth is only measured when the document has
more opening brackets than ``max_depth`` (and then by orjson's writer, in C), and integers are only
looked at when it has a run of 19 digits.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import orjson

from websocket_realtime_engine.errors import LimitError, ProtocolError

DEFAULT_MAX_DEPTH = 32
SMALLEST_INTEGER = -(2**63)
LARGEST_INTEGER = 2**64 - 1
# an integer literal outside the range above has at least 19 digits
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_NINETEEN_DIGITS = b"0" * 19


class InvalidJsonError(ProtocolError):
    """The text is not JSON at all (syntax, encoding): error 4000, REST ``invalid_json``."""


class TooDeepError(LimitError):
    """Nesting deeper than the limit: error 4020, REST ``limit_exceeded``."""


class IntegerRangeError(ProtocolError):
    """An integer beyond 64 bits: error 4000, REST ``invalid_request``."""


class _OutOfRange(Exception):
    pass


def loads(text: str | bytes, max_depth: int, what: str = "frame") -> Any:
    """``text`` as a JSON value within the limits; raises one of the errors above naming ``what``."""
    value = decode(text, max_depth, what)
    check(value, text, max_depth, what)
    return value


def decode(text: str | bytes, max_depth: int, what: str = "frame") -> Any:
    """``text`` as JSON, limits not yet checked (:func:`check`); :class:`InvalidJsonError` if it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):  # past orjson's own 1024 levels
            raise TooDeepError(f"{what} nests deeper than {max_depth} levels") from None
        raise InvalidJsonError(f"{what} is not valid JSON ({exc})") from None


def check(value: Any, text: str | bytes, max_depth: int, what: str = "frame") -> None:
    """Refuse ``value`` (read from ``text``) when it is too deep or holds an integer beyond 64 bits."""
    if _count_brackets(text) > max_depth and deeper_than(value, max_depth):
        raise TooDeepError(f"{what} nests deeper than {max_depth} levels")
    if has_integer_beyond_64_bits(text):
        raise IntegerRangeError(f"{what} has an integer beyond 64 bits (from {SMALLEST_INTEGER} to {LARGEST_INTEGER})")


def _count_brackets(text: str | bytes) -> int:
    if isinstance(text, str):
        return text.count("{") + text.count("[")
    return text.count(b"{") + text.count(b"[")


def deeper_than(value: Any, max_depth: int) -> bool:
    """Whether ``value`` (as orjson reads JSON) has more than ``max_depth`` levels of objects and arrays.

    orjson's writer counts the levels in C, ten times faster than a walk in Python (a 50 KB frame of
    5,000 small objects: 0.16 ms instead of 1.7 ms): it writes at most :func:`writable_depth` levels,
    so ``value`` wrapped in ``writable_depth() - max_depth`` arrays cannot be written exactly when it
    is deeper than ``max_depth``.
    """
    if not isinstance(value, dict | list):
        return False
    extra = writable_depth() - max_depth
    if extra < 0:
        return _walk_deeper_than(value, max_depth)
    wrapped = value
    for _ in range(extra):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError as exc:
        return "ecursion" in str(exc) or _walk_deeper_than(value, max_depth)  # "Recursion limit reached"
    return False


@functools.cache
def writable_depth() -> int:
    """The most levels of arrays orjson writes (254 in orjson 3), found once by trying."""
    value: list[Any] = []
    depth = 1
    while depth < 10_000:
        try:
            orjson.dumps([value])
        except orjson.JSONEncodeError:
            return depth
        value, depth = [value], depth + 1
    return depth


def _walk_deeper_than(value: Any, max_depth: int) -> bool:
    """:func:`deeper_than` by a walk, level by level, for values orjson cannot tell about."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(max_depth):
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below += [child for child in children if isinstance(child, dict | list)]
        if not below:
            return False
        level = below
    return True


def has_integer_beyond_64_bits(text: str | bytes) -> bool:
    """Whether the JSON ``text`` (already known to be valid) has an integer literal beyond 64 bits."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _NINETEEN_DIGITS not in data.translate(_DIGITS_AS_ZEROS):
        return False
    try:
        json.loads(text, parse_int=_checked_int)  # the precise reading: digits in strings are not integers
    except _OutOfRange:
        return True
    except ValueError:  # not reachable for text orjson accepted; nothing more to say about it
        return False
    return False


def _checked_int(literal: str) -> int:
    if len(literal) > 20:  # every literal in range has at most 20 characters (int() refuses past 4300 digits)
        raise _OutOfRange
    number = int(literal)
    if not SMALLEST_INTEGER <= number <= LARGEST_INTEGER:
        raise _OutOfRange
    return number
