"""Value expressions of EQL conditions: fields, literals, functions and arithmetic.

Each expression compiles to a getter returning every value it takes on one event (a
multi-valued field gives several; a missing field, or a function of one, gives none).
Conditions over them (compile.Relation, compile.Truthy, compile.StringMatch) hold when
any combination of values satisfies them, as Elasticsearch's term and range queries do
for multi-valued fields; a missing value makes a comparison false (and its negation
true), as a query on a missing field does.

The functions are Elasticsearch EQL's (x-pack/plugin/eql, `function/scalar`): string
functions take a `~` suffix for case-insensitive matching.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.engine.normalise import View
from app.engine.timestamps import parse_timestamp_ns

Getter = Callable[[View], list[Any]]


class ValueExpr:
    def getter(self) -> Getter:
        raise NotImplementedError

    def fields(self) -> set[str]:
        return set()


@dataclass(frozen=True)
class FieldValue(ValueExpr):
    path: str
    parts: tuple[str, ...]
    optional: bool = False
    """`?field`: missing, it is null, and `?x == ?y` holds when both are (as in ES)."""
    nanos: bool = False
    """`@timestamp` mapped as `date_nanos` (`--mapping`): compared in nanoseconds."""

    def getter(self) -> Getter:
        path, parts = self.path, self.parts
        if path == "@timestamp" and self.nanos:

            def timestamp_ns(view: View) -> list[Any]:
                ns = parse_timestamp_ns(view.doc.get("@timestamp"))
                return [] if ns is None else [ns]

            return timestamp_ns
        if path == "@timestamp":  # a date: compared as ms (string literals are parsed)

            def timestamp(view: View) -> list[Any]:
                ms = view.timestamp_ms()
                return [] if ms is None else [ms]

            return timestamp
        return lambda view: view.values(path, parts)

    def fields(self) -> set[str]:
        return {self.path}


@dataclass(frozen=True)
class Literal(ValueExpr):
    value: Any

    def getter(self) -> Getter:
        values = [] if self.value is None else [self.value]
        return lambda view: values


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def as_number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return None
    return None


@lru_cache(maxsize=65536)
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address, IPv4-mapped IPv6 folded to IPv4 as Elasticsearch stores it; None if bad."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def _fold(text: str, insensitive: bool) -> str:
    return text.lower() if insensitive else text


def _starts_with(s: Any, prefix: Any, ci: bool = False) -> bool | None:
    a, b = _text(s), _text(prefix)
    return None if a is None or b is None else _fold(a, ci).startswith(_fold(b, ci))


def _ends_with(s: Any, suffix: Any, ci: bool = False) -> bool | None:
    a, b = _text(s), _text(suffix)
    return None if a is None or b is None else _fold(a, ci).endswith(_fold(b, ci))


def _contains(s: Any, sub: Any, ci: bool = False) -> bool | None:
    a, b = _text(s), _text(sub)
    return None if a is None or b is None else _fold(b, ci) in _fold(a, ci)


def _length(s: Any, ci: bool = False) -> int | None:
    a = _text(s)
    return None if a is None else len(a)


def _substring(s: Any, start: Any, end: Any = None, ci: bool = False) -> str | None:
    a = _text(s)
    first, last = as_number(start), None if end is None else as_number(end)
    if a is None or not isinstance(first, int) or (end is not None and not isinstance(last, int)):
        return None
    return a[first:last]


def _index_of(s: Any, sub: Any, start: Any = 0, ci: bool = False) -> int | None:
    a, b, at = _text(s), _text(sub), 0 if start is None else as_number(start)
    if a is None or b is None or not isinstance(at, int):
        return None
    found = _fold(a, ci).find(_fold(b, ci), max(0, at))
    return None if found < 0 else found


def _between(s: Any, left: Any, right: Any, greedy: Any = False, ci: bool = False) -> str | None:
    a, lo, hi = _text(s), _text(left), _text(right)
    if a is None or lo is None or hi is None:
        return None
    hay = _fold(a, ci)
    i = hay.find(_fold(lo, ci))
    if i < 0:
        return ""
    i += len(lo)
    j = hay.rfind(_fold(hi, ci)) if greedy is True else hay.find(_fold(hi, ci), i)
    return "" if j < i else a[i:j]


def _concat(*args: Any, ci: bool = False) -> str | None:
    texts = [_text(a) for a in args]
    return None if any(t is None for t in texts) else "".join(t for t in texts if t is not None)


def _to_number(s: Any, base: Any = 10, ci: bool = False) -> int | float | None:
    if isinstance(s, int | float) and not isinstance(s, bool):
        return s
    a, radix = _text(s), 10 if base is None else as_number(base)
    if a is None or not isinstance(radix, int):
        return None
    try:
        return int(a, radix) if radix != 10 or not any(c in a for c in ".eE") else float(a)
    except ValueError:
        return None


def _to_string(s: Any, ci: bool = False) -> str | None:
    return _text(s)


def _arith(op: str) -> Callable[..., Any]:
    def apply(a: Any, b: Any, ci: bool = False) -> int | float | None:
        x, y = as_number(a), as_number(b)
        if x is None or y is None:
            return None
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if y == 0:
            return None
        if op == "/":
            return x // y if isinstance(x, int) and isinstance(y, int) else x / y
        return math.fmod(x, y) if isinstance(x, float) or isinstance(y, float) else x % y

    return apply


def _cidr(address: Any, *args: Any, ci: bool = False) -> bool | None:
    text = _text(address)
    ip = None if text is None else parse_ip(text)
    if ip is None:
        return None
    for net in args:
        try:
            if ip in ipaddress.ip_network(str(net), strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    # name (lower case): (implementation, least arguments, most arguments)
    "startswith": (_starts_with, 2, 2),
    "endswith": (_ends_with, 2, 2),
    "stringcontains": (_contains, 2, 2),
    "length": (_length, 1, 1),
    "substring": (_substring, 2, 3),
    "indexof": (_index_of, 2, 3),
    "between": (_between, 3, 4),
    "concat": (_concat, 1, 64),
    "number": (_to_number, 1, 2),
    "string": (_to_string, 1, 1),
    "add": (_arith("+"), 2, 2),
    "subtract": (_arith("-"), 2, 2),
    "multiply": (_arith("*"), 2, 2),
    "divide": (_arith("/"), 2, 2),
    "modulo": (_arith("%"), 2, 2),
    "cidrmatch": (_cidr, 2, 256),
}
BOOLEAN_FUNCTIONS = frozenset({"startswith", "endswith", "stringcontains", "cidrmatch"})
CASE_FUNCTIONS = frozenset({"startswith", "endswith", "stringcontains", "indexof", "between"})
"""The functions that take a `~` (case-insensitive) form."""


@dataclass(frozen=True)
class Call(ValueExpr):
    """A function over the values of its arguments: for each value of the first
    argument, with the first value of each other argument (a multi-valued first
    argument gives several results, any of which may satisfy the condition)."""

    name: str
    args: tuple[ValueExpr, ...]
    insensitive: bool = False

    def getter(self) -> Getter:
        function = FUNCTIONS[self.name][0]
        getters = tuple(a.getter() for a in self.args)
        ci = self.insensitive
        if self.name == "concat":  # every argument's first value

            def concat(view: View) -> list[Any]:
                firsts = []
                for g in getters:
                    values = g(view)
                    if not values:
                        return []
                    firsts.append(values[0])
                result = function(*firsts, ci=ci)
                return [] if result is None else [result]

            return concat
        first, rest = getters[0], getters[1:]
        # A literal null argument is passed as None (`number(x, null)`: the default base);
        # any other argument without a value makes the result null.
        nullable = tuple(isinstance(a, Literal) and a.value is None for a in self.args[1:])

        def call(view: View) -> list[Any]:
            others = []
            for g, literal_null in zip(rest, nullable, strict=True):
                values = g(view)
                if not values:
                    if literal_null:
                        others.append(None)
                        continue
                    return []
                others.append(values[0])
            out = []
            for value in first(view):
                result = function(value, *others, ci=ci)
                if result is not None:
                    out.append(result)
            return out

        return call

    def fields(self) -> set[str]:
        return set().union(*(a.fields() for a in self.args))


@dataclass(frozen=True)
class Arith(ValueExpr):
    op: str
    left: ValueExpr
    right: ValueExpr

    def getter(self) -> Getter:
        function = _arith(self.op)
        lg, rg = self.left.getter(), self.right.getter()

        def arith(view: View) -> list[Any]:
            out = []
            for a in lg(view):
                for b in rg(view):
                    result = function(a, b)
                    if result is not None:
                        out.append(result)
            return out

        return arith

    def fields(self) -> set[str]:
        return self.left.fields() | self.right.fields()


def compare(a: Any, b: Any, op: str) -> bool:
    """`a op b`: numbers as numbers (a digit string against a number too), strings as
    strings (case-sensitive, like keyword fields), booleans only for == and !=."""
    if isinstance(a, bool) or isinstance(b, bool):
        if op in ("==", "!="):
            equal = isinstance(a, bool) and isinstance(b, bool) and a == b
            return equal if op == "==" else not equal
        return False
    if (isinstance(a, str) and isinstance(b, str)) or (
        isinstance(a, tuple) and isinstance(b, tuple)  # version keys (app.engine.mapping)
    ):
        x: Any = a
        y: Any = b
    else:
        x, y = as_number(a), as_number(b)
        if x is None or y is None:
            return op == "!="
    if op in ("==", "="):
        return bool(x == y)
    if op == "!=":
        return bool(x != y)
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    if op == ">=":
        return bool(x >= y)
    raise ValueError(op)
