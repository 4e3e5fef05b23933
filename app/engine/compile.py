"""EQL query text -> fast predicates, for the subset seqwatch implements exactly.

The text is parsed by the `eql` package's own grammar (its Lark parser), and the parse tree
is compiled here rather than eql's AST: eql's optimiser folds `process.name : "MSBuild.exe"`
into `process.name == "MSBuild.exe"` and `not x like "a"` into `x != "a"`, erasing the
case-insensitivity that is the point of `:` in Elasticsearch EQL, and the AST carries no
source positions for error messages. Literal values are still decoded by eql's walker.

Semantics are Elasticsearch's query translation (docs/semantics.md): a comparison on a
missing field is false, `not` is plain negation (so `not cidrmatch(...)` is true when the
address is missing or unparsable), and an array matches when any element does.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eql.errors import EqlError
from eql.parser import LarkToEQL, elasticsearch_syntax, lark_parser
from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedInput

from app.durations import parse_duration
from app.engine.mapping import Mapping, version_key
from app.engine.normalise import DERIVED_FIELDS, View
from app.engine.timestamps import parse_timestamp_ms, parse_timestamp_ns
from app.engine.values import (
    BOOLEAN_FUNCTIONS,
    CASE_FUNCTIONS,
    FUNCTIONS,
    Arith,
    Call,
    FieldValue,
    Literal,
    ValueExpr,
    as_number,
    compare,
    parse_ip,
)
from app.errors import ConfigError

Predicate = Callable[[View], bool]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Characters JSON may write as a two-character escape (\" \\ \/ \b \f \n \r \t): a prefilter
# fragment never spans them, so a fragment found in a value is found verbatim in the record.
_UNSAFE_IN_FRAGMENT = re.compile(r'[^\x20-\x7e]|["\\/]')


class QueryError(ConfigError):
    """The query uses syntax or a construct seqwatch does not implement; one line."""


@dataclass(frozen=True)
class FieldRef:
    """A field path, split once at compile time."""

    path: str
    parts: tuple[str, ...]
    optional: bool = False
    """`?field`: as a join key, a missing value is null and joins other nulls."""

    @classmethod
    def of(cls, path: str, optional: bool = False) -> FieldRef:
        return cls(path, tuple(path.split(".")), optional)


# -- intermediate representation -----------------------------------------------------------


class Node:
    """A boolean expression over one event."""

    def compile(self) -> Predicate:
        raise NotImplementedError

    def required(self) -> frozenset[str] | None:
        """Lower-case ASCII fragments, one of which occurs in every record this matches.

        None means no such guarantee (the prefilter must let everything through).
        """
        return None

    def clauses(self) -> list[frozenset[str]]:
        """Fragment sets each of which must have a member in every record this matches
        (a conjunction: a RuleSet offers a record to a rule only if all are met)."""
        required = self.required()
        return [required] if required else []

    def anchor(self) -> Anchor | None:
        """A field whose value (as text, lower-cased) must be one of a few exact strings in
        every record this matches, for a RuleSet's value index; None if there is none."""
        return None

    def fields(self) -> set[str]:
        return set()


@dataclass(frozen=True)
class Anchor:
    """`Node.anchor()`: a record matches only if some value of `ref`, as `_as_text` gives
    it and lower-cased, is in `values` (sound for `==`, `:`, `in~` and `like~` alike)."""

    ref: FieldRef
    values: frozenset[str]

    @property
    def rank(self) -> tuple[int, int]:
        """Lower is more selective: fields most records share a value of come last."""
        return (self.ref.path in BROAD_FIELDS, len(self.values))


BROAD_FIELDS = frozenset(
    {
        "event.category",
        "event.type",
        "event.kind",
        "event.outcome",
        "event.dataset",
        "event.module",
        "host.os.type",
        "host.os.family",
        "host.os.name",
        "host.os.platform",
        "agent.type",
        "network.direction",
        "network.transport",
        "network.protocol",
        "data_stream.dataset",
    }
)
"""Fields whose values most records share: a stage is indexed on another field if it can."""


@dataclass(frozen=True)
class Const(Node):
    value: bool

    def compile(self) -> Predicate:
        value = self.value
        return lambda view: value


@dataclass(frozen=True)
class And(Node):
    terms: tuple[Node, ...]

    def compile(self) -> Predicate:
        preds = tuple(t.compile() for t in self.terms)
        if len(preds) == 2:
            a, b = preds
            return lambda view: a(view) and b(view)
        return lambda view: all(p(view) for p in preds)

    def clauses(self) -> list[frozenset[str]]:
        return [clause for term in self.terms for clause in term.clauses()]

    def anchor(self) -> Anchor | None:
        anchors = [a for a in (t.anchor() for t in self.terms) if a is not None]
        return min(anchors, key=lambda a: a.rank) if anchors else None

    def required(self) -> frozenset[str] | None:
        # Any one term's requirement holds for the conjunction; keep the most selective.
        best: frozenset[str] | None = None
        for term in self.terms:
            req = term.required()
            if req is not None and (best is None or _selectivity(req) > _selectivity(best)):
                best = req
        return best

    def fields(self) -> set[str]:
        return set().union(*(t.fields() for t in self.terms))


@dataclass(frozen=True)
class Or(Node):
    terms: tuple[Node, ...]

    def compile(self) -> Predicate:
        preds = tuple(t.compile() for t in self.terms)
        return lambda view: any(p(view) for p in preds)

    def required(self) -> frozenset[str] | None:
        union: set[str] = set()
        for term in self.terms:
            req = term.required()
            if req is None:
                return None
            union |= req
        return frozenset(union)

    def anchor(self) -> Anchor | None:
        anchors = [t.anchor() for t in self.terms]
        first = anchors[0]
        if first is None or any(a is None or a.ref != first.ref for a in anchors):
            return None
        return Anchor(first.ref, frozenset().union(*(a.values for a in anchors)))  # type: ignore[union-attr]

    def fields(self) -> set[str]:
        return set().union(*(t.fields() for t in self.terms))


@dataclass(frozen=True)
class Not(Node):
    term: Node

    def compile(self) -> Predicate:
        pred = self.term.compile()
        return lambda view: not pred(view)

    def fields(self) -> set[str]:
        return self.term.fields()


def _as_text(value: Any) -> str | None:
    """A field value as the string a keyword field would index, or None (no string form)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return None


_BOOL_TEXT = {"true": True, "false": False}


@dataclass(frozen=True)
class Compare(Node):
    """`field == v`, `field in (...)`, `field in~ (...)` or `field : (...)` (any value)."""

    ref: FieldRef
    values: tuple[Any, ...]
    mode: str  # "eq" (case-sensitive), "ieq" (in~), "wild" (:, case-insensitive, * and ?)

    def compile(self) -> Predicate:
        path, parts = self.ref.path, self.ref.parts
        if self.mode == "wild":
            exact = frozenset(v.lower() for v in self.values if not _has_wildcard(v))
            patterns = tuple(_wildcard_regex(v) for v in self.values if _has_wildcard(v))

            def wild(view: View) -> bool:
                for value in view.values(path, parts):
                    text = _as_text(value)
                    if text is None:
                        continue
                    low = text.lower()
                    if low in exact or any(p.fullmatch(low) for p in patterns):
                        return True
                return False

            return wild
        strings = frozenset(
            (v.lower() if self.mode == "ieq" else v) for v in self.values if isinstance(v, str)
        )
        numbers = tuple(v for v in self.values if isinstance(v, int | float) and v is not True)
        numbers = tuple(v for v in numbers if not isinstance(v, bool))
        booleans = frozenset(v for v in self.values if isinstance(v, bool))
        fold = self.mode == "ieq"

        def eq(view: View) -> bool:
            for value in view.values(path, parts):
                if strings:
                    text = _as_text(value)
                    if text is not None and (text.lower() if fold else text) in strings:
                        return True
                if numbers:
                    number = as_number(value)
                    if number is not None and number in numbers:
                        return True
                if booleans:
                    if isinstance(value, bool) and value in booleans:
                        return True
                    if isinstance(value, str) and _BOOL_TEXT.get(value.lower()) in booleans:
                        return True
            return False

        return eq

    def required(self) -> frozenset[str] | None:
        if self.ref.path in DERIVED_FIELDS:
            return None
        fragments: set[str] = set()
        for value in self.values:
            if isinstance(value, bool):
                fragment = "true" if value else "false"
            elif isinstance(value, str):
                fragment = _longest_fragment(value.lower(), wildcards=self.mode == "wild")
            else:
                return None  # numbers have many spellings (1, 1.0, 1e0)
            if not fragment:
                return None
            fragments.add(fragment)
        return frozenset(fragments)

    def anchor(self) -> Anchor | None:
        if not self.values or not all(isinstance(v, str) for v in self.values):
            return None  # numbers and booleans have several spellings
        if self.mode == "wild" and any(_has_wildcard(v) for v in self.values):
            return None
        return Anchor(self.ref, frozenset(v.lower() for v in self.values))

    def fields(self) -> set[str]:
        return {self.ref.path}


@dataclass(frozen=True)
class IsNull(Node):
    """`field == null` (no non-null value), as Elasticsearch's must-not-exists."""

    ref: FieldRef

    def compile(self) -> Predicate:
        path, parts = self.ref.path, self.ref.parts
        return lambda view: not view.values(path, parts)

    def fields(self) -> set[str]:
        return {self.ref.path}


@dataclass(frozen=True)
class CidrMatch(Node):
    """`cidrmatch(field, a, b/n, ...)`: any value inside any network (bare address = itself)."""

    ref: FieldRef
    networks: tuple[IPNetwork, ...]

    def compile(self) -> Predicate:
        path, parts = self.ref.path, self.ref.parts
        v4 = tuple(n for n in self.networks if n.version == 4)
        v6 = tuple(n for n in self.networks if n.version == 6)

        def cidr(view: View) -> bool:
            for value in view.values(path, parts):
                if not isinstance(value, str):
                    continue
                address = parse_ip(value)
                if address is None:
                    continue  # unparsable behaves as missing
                nets = v4 if address.version == 4 else v6
                if any(address in n for n in nets):
                    return True
            return False

        return cidr

    def fields(self) -> set[str]:
        return {self.ref.path}


@dataclass(frozen=True)
class Relation(Node):
    """`a op b` over value expressions (comparisons, functions, arithmetic)."""

    left: ValueExpr
    op: str
    right: ValueExpr

    def compile(self) -> Predicate:
        lg, rg, op = self.left.getter(), self.right.getter(), self.op
        both_optional = all(
            isinstance(e, FieldValue) and e.optional for e in (self.left, self.right)
        )
        if both_optional and op == "==":

            def optional_equal(view: View) -> bool:
                lefts, rights = lg(view), rg(view)
                if not lefts and not rights:
                    return True  # null == null
                return any(compare(a, b, op) for a in lefts for b in rights)

            return optional_equal

        def relation(view: View) -> bool:
            rights = rg(view)
            return any(compare(a, b, op) for a in lg(view) for b in rights)

        return relation

    def fields(self) -> set[str]:
        return self.left.fields() | self.right.fields()


@dataclass(frozen=True)
class VersionRelation(Node):
    """`field < "1.5.0"` on a field an index maps as `version` (`--mapping`)."""

    expr: ValueExpr
    op: str
    key: tuple[Any, ...]

    def compile(self) -> Predicate:
        getter, op, key = self.expr.getter(), self.op, self.key

        def relation(view: View) -> bool:
            for value in getter(view):
                mine = version_key(value)
                if mine is not None and compare(mine, key, op):
                    return True
            return False

        return relation

    def fields(self) -> set[str]:
        return self.expr.fields()


@dataclass(frozen=True)
class NullCheck(Node):
    """`expr == null`: the expression has no value (a function of a missing field, ...);
    `null : (a > b)`: the comparison is null, because a side of it is."""

    exprs: tuple[ValueExpr, ...]

    def compile(self) -> Predicate:
        getters = tuple(e.getter() for e in self.exprs)
        return lambda view: any(not g(view) for g in getters)

    def fields(self) -> set[str]:
        return set().union(*(e.fields() for e in self.exprs))


@dataclass(frozen=True)
class Truthy(Node):
    """A boolean function as a condition (`startsWith(...)`): true if any result is."""

    expr: ValueExpr
    fragment: str | None = None  # a literal every match contains (for the prefilter)

    def compile(self) -> Predicate:
        getter = self.expr.getter()
        return lambda view: any(v is True for v in getter(view))

    def required(self) -> frozenset[str] | None:
        return frozenset({self.fragment}) if self.fragment else None

    def fields(self) -> set[str]:
        return self.expr.fields()


@dataclass(frozen=True)
class StringMatch(Node):
    """`like` / `like~` (wildcards) and `regex` / `regex~` (anchored, Lucene-style)."""

    expr: ValueExpr
    patterns: tuple[str, ...]
    kind: str  # "like" or "regex"
    insensitive: bool

    def compile(self) -> Predicate:
        flags = re.DOTALL | (re.IGNORECASE if self.insensitive else 0)
        if self.kind == "like":
            regexes = [
                _wildcard_regex(p, fold=self.insensitive, flags=flags) for p in self.patterns
            ]
        else:
            regexes = [re.compile(p, flags) for p in self.patterns]
        getter = self.expr.getter()
        insensitive = self.insensitive and self.kind == "like"

        def match(view: View) -> bool:
            for value in getter(view):
                text = _as_text(value)
                if text is None:
                    continue
                subject = text.lower() if insensitive else text
                if any(r.fullmatch(subject) for r in regexes):
                    return True
            return False

        return match

    def required(self) -> frozenset[str] | None:
        if self.kind != "like" or not isinstance(self.expr, FieldValue):
            return None
        if self.expr.path in DERIVED_FIELDS:
            return None
        fragments = {_longest_fragment(p.lower(), wildcards=True) for p in self.patterns}
        return None if "" in fragments else frozenset(fragments)

    def anchor(self) -> Anchor | None:
        # like~ is left out: re.IGNORECASE also folds characters str.lower() keeps (U+017F).
        if self.kind != "like" or self.insensitive or not self.patterns:
            return None
        if not isinstance(self.expr, FieldValue) or self.expr.path == "@timestamp":
            return None
        if any(_has_wildcard(p) for p in self.patterns):
            return None
        return Anchor(FieldRef.of(self.expr.path), frozenset(p.lower() for p in self.patterns))

    def fields(self) -> set[str]:
        return self.expr.fields()


def _has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _wildcard_regex(pattern: str, fold: bool = True, flags: int = re.DOTALL) -> re.Pattern[str]:
    """`*` any run, `?` one character, everything else literal; on lower case if `fold`."""
    parts = []
    for char in pattern.lower() if fold else pattern:
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return re.compile("".join(parts), flags)


def _longest_fragment(lowered: str, *, wildcards: bool) -> str:
    """The longest run of `lowered` that is plain printable ASCII, free of JSON escapes."""
    text = re.sub(r"[*?]", "\x00", lowered) if wildcards else lowered
    pieces = _UNSAFE_IN_FRAGMENT.split(text)
    return max(pieces, key=len) if pieces else ""


def _selectivity(req: frozenset[str]) -> int:
    return min(len(f) for f in req) * 1000 - len(req)


# -- the compiled query ----------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One `[category where condition] [by keys]` of the sequence (or its `until`).

    `keys` are the stage's whole join key: the sequence's `by` fields, then its own.
    A `with runs=N` stage is N stages here; a missing-event stage (`![...]`) has `missing`.
    """

    index: int
    category: str | None
    node: Node
    predicate: Predicate
    required: frozenset[str] | None
    fields: frozenset[str]
    text: str
    keys: tuple[FieldRef, ...] = ()
    missing: bool = False
    condition: Predicate | None = None
    """The condition alone, without the category test (a RuleSet tests categories once)."""
    clauses: tuple[frozenset[str], ...] = ()
    """`Node.clauses()` of the condition: what a record must contain to match it."""
    anchor: Anchor | None = None
    """`Node.anchor()` of the condition: a RuleSet's value index."""


@dataclass(frozen=True)
class CompiledQuery:
    """`sequence [by keys] [with maxspan=...] [stage] [stage] ... [until [stage]]`, or an
    event query (`category where condition`: one stage, no keys), ready to evaluate."""

    keys: tuple[FieldRef, ...]
    maxspan_ms: int | None
    stages: tuple[Stage, ...]
    fields: frozenset[str] = field(default_factory=frozenset)
    kind: str = "sequence"
    until: Stage | None = None
    pipes: tuple[tuple[str, int], ...] = ()
    """`| head N` / `| tail N` over the result set, in order: `seqwatch detect` applies
    them to its answer; the worker refuses them (a stream has no result set)."""

    @property
    def is_event(self) -> bool:
        return self.kind == "event"

    @property
    def matchable(self) -> tuple[Stage, ...]:
        """Every stage an event is tested against: the stages, then `until` (if any)."""
        return self.stages if self.until is None else (*self.stages, self.until)

    @property
    def positive(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if not s.missing)

    @property
    def is_pair(self) -> bool:
        """A plain two-stage `sequence by` whose stages no event can both match.

        This shape runs on the eager matcher (`sequence.Matcher`), which alerts as soon as
        both halves are known, in any arrival order; any other sequence runs on the
        ordered one (`ordered.OrderedMatcher`), which waits for the watermark.
        """
        if self.kind != "sequence" or len(self.stages) != 2 or self.until is not None:
            return False
        first, second = self.stages
        return (
            bool(self.keys)
            and not any(s.missing for s in self.stages)
            and first.keys == self.keys == second.keys
            and not any(k.optional for k in self.keys)
            and first.category is not None
            and second.category is not None
            and first.category.lower() != second.category.lower()
        )


# A string literal (skipped), or a field name starting with `@` outside of one.
_AT_FIELD = re.compile(
    r'"""(?:.|\n)*?"""|\?"(?:[^"\\]|\\.)*"|"(?:[^"\\]|\\.)*"|`[^`]*`|(?<![\w.])@(\w[\w.]*)'
)


def _quote_at_fields(text: str) -> str:
    """`@timestamp` as `` `@timestamp` ``: Elasticsearch's grammar takes field names that
    start with `@`, the `eql` package's needs them escaped."""
    return _AT_FIELD.sub(lambda m: f"`@{m.group(1)}`" if m.group(1) else m.group(0), text)


class _Compiler:
    def __init__(self, text: str, mapping: Mapping | None = None) -> None:
        self.version_fields = mapping.version_fields if mapping is not None else frozenset()
        self.nanos = mapping is not None and mapping.types.get("@timestamp") == "date_nanos"
        text = _quote_at_fields(text) if "@" in text else text
        self.text = text if text.endswith("\n") else text + "\n"
        with elasticsearch_syntax:  # the walker reads the dialect when it is made
            self.walker = LarkToEQL(self.text)

    # errors ------------------------------------------------------------------------------
    def _where(self, node: Tree | Token) -> str:
        if isinstance(node, Token):
            line, column = node.line, node.column
        else:
            line, column = node.meta.line, node.meta.column
        return f"at line {line}, column {column} of the query"

    def _snippet(self, node: Tree | Token) -> str:
        if isinstance(node, Token):
            return str(node)
        snippet = self.text[node.meta.start_pos : node.meta.end_pos]
        snippet = " ".join(snippet.split())
        return snippet if len(snippet) <= 60 else snippet[:57] + "..."

    def reject(self, what: str, node: Tree | Token) -> QueryError:
        snippet = self._snippet(node)
        shown = f"unsupported {what}" if snippet in what else f"unsupported {what} `{snippet}`"
        return QueryError(
            f"{shown} {self._where(node)} (supported: event queries; sequences with by,"
            " maxspan, until, runs, ![...]; and/or/not, comparisons, in, in~, :, like,"
            " regex, functions)"
        )

    # structure ---------------------------------------------------------------------------
    def query(self) -> CompiledQuery:
        try:
            tree = lark_parser.parse(self.text, start="piped_query")
        except UnexpectedInput as exc:
            token = getattr(exc, "token", None)
            near = f" near `{token}`" if token else ""
            raise QueryError(
                f"invalid EQL syntax{near} at line {exc.line}, column {exc.column} of the query"
            ) from None
        except LarkError as exc:
            raise QueryError(f"invalid EQL syntax: {str(exc).splitlines()[0]}") from None
        base, pipes = tree.children[0], tree.children[1] if len(tree.children) > 1 else None
        if base is None:
            raise QueryError("the query has no sequence")
        body = base.children[0]
        if isinstance(body, Tree) and body.data == "event_query":
            stage = self.event_stage(body, 0, body)
            compiled = CompiledQuery((), None, (stage,), stage.fields, kind="event")
        elif not isinstance(body, Tree) or body.data != "sequence":
            kind = body.data if isinstance(body, Tree) else "query"
            raise self.reject(str(kind), body)
        else:
            compiled = self.sequence(body)
        if pipes is None:
            return compiled
        return dataclasses.replace(compiled, pipes=self.pipes(pipes))

    def pipes(self, node: Tree) -> tuple[tuple[str, int], ...]:
        """Elasticsearch's pipes: `head N` and `tail N` (the others are Endgame's)."""
        out: list[tuple[str, int]] = []
        for pipe in node.children:
            name = self.name(pipe.children[0]).lower()
            args = pipe.children[1].children if len(pipe.children) > 1 and pipe.children[1] else []
            args = [a for a in args if a is not None]
            if name not in ("head", "tail"):
                raise self.reject(f"pipe `{name}` (Elasticsearch runs `head` and `tail`)", pipe)
            value = self.literal(args[0]) if len(args) == 1 else None
            if type(value) is not int or value < 0:
                raise self.reject(f"`{name}` argument (expected a count, e.g. {name} 10)", pipe)
            out.append((name, value))
        return tuple(out)

    def sequence(self, node: Tree) -> CompiledQuery:
        keys: tuple[FieldRef, ...] = ()
        maxspan: int | None = None
        parts: list[tuple[Tree, tuple[FieldRef, ...], int, bool]] = []
        until: tuple[Tree, tuple[FieldRef, ...]] | None = None
        for child in node.children:
            if child is None:
                continue
            if child.data == "join_values":
                keys = self.join_keys(child)
            elif child.data == "with_params":
                maxspan = self.maxspan(child)
            elif child.data == "subquery_by":
                parts.append(self.stage_parts(child))
            elif child.data == "until_subquery_by":
                subquery, stage_keys, runs, missing = self.stage_parts(child.children[0])
                if runs != 1 or missing:
                    raise self.reject("`with runs` or `![...]` in `until`", child)
                until = (subquery, stage_keys)
            else:
                raise self.reject(f"sequence parameter ({child.data})", child)
        widths = {len(stage_keys) for _, stage_keys, _, _ in parts}
        if until is not None:
            widths.add(len(until[1]))
        if len(widths) > 1:
            raise QueryError(
                f"inconsistent number of join keys across stages {self._where(node)}"
                " (every stage, and `until`, must have as many `by` fields)"
            )
        stages: list[Stage] = []
        for subquery, stage_keys, runs, missing in parts:
            for _ in range(runs):
                stage = self.event_stage(subquery.children[-1], len(stages), subquery)
                stages.append(_keyed(stage, keys + stage_keys, missing))
        if len(stages) < 2:
            raise QueryError(
                f"a sequence needs at least 2 stages, found {len(stages)} {self._where(node)}"
            )
        if all(s.missing for s in stages):
            raise QueryError(
                f"a sequence needs at least one stage that is not `![...]` {self._where(node)}"
            )
        if any(s.missing for s in stages) and maxspan is None:
            raise QueryError(
                f"a sequence with missing-event stages `![...]` needs `with maxspan`"
                f" {self._where(node)} (without it, absence is never decided)"
            )
        until_stage = None
        if until is not None:
            subquery, stage_keys = until
            until_stage = _keyed(
                self.event_stage(subquery.children[-1], len(stages), subquery),
                keys + stage_keys,
                False,
            )
        everything = [*stages, *([until_stage] if until_stage else [])]
        fields = frozenset().union(
            *(s.fields for s in everything), (k.path for s in everything for k in s.keys)
        )
        return CompiledQuery(keys, maxspan, tuple(stages), fields, until=until_stage)

    def join_keys(self, node: Tree) -> tuple[FieldRef, ...]:
        (expressions,) = node.children
        return tuple(self.field(expr) for expr in expressions.children if expr is not None)

    def maxspan(self, node: Tree) -> int:
        time_range = next(c for c in node.children if isinstance(c, Tree))
        number, unit = [*time_range.children, None][:2]
        amount = self.literal(number)
        unit_name = self.name(unit) if unit is not None else ""
        if not isinstance(amount, int) or unit_name not in ("ms", "s", "m", "h", "d"):
            raise self.reject("maxspan (expected e.g. 30s, 5m, 500ms)", time_range)
        return parse_duration(f"{amount}{unit_name}", what="maxspan")

    def stage_parts(self, node: Tree) -> tuple[Tree, tuple[FieldRef, ...], int, bool]:
        """(subquery, the stage's own `by` fields, runs, missing) of a `subquery_by`."""
        subquery, *extras = node.children
        stage_keys: tuple[FieldRef, ...] = ()
        runs = 1
        for extra in extras:
            if extra is None:
                continue
            if extra.data == "join_values":
                stage_keys = self.join_keys(extra)
            elif extra.data == "repeated_sequence":
                count = next(c for c in extra.children if str(c) != "=")
                runs = int(str(count))
                if not 1 <= runs <= 100:
                    raise QueryError(
                        f"`with runs={runs}` {self._where(extra)}: runs must be 1 to 100"
                    )
            else:
                label = {"fork_param": "`fork`", "sequence_alias": "alias"}.get(
                    extra.data, str(extra.data)
                )
                raise self.reject(label, extra)
        missing = any(
            isinstance(c, Token) and c.type == "MISSING_EVENT_OPEN" for c in subquery.children
        )
        return subquery, stage_keys, runs, missing

    def event_stage(self, event_query: Tree, index: int, span: Tree) -> Stage:
        """`category where condition` as a stage; `span` is the text the stage shows."""
        name_node, condition = event_query.children
        category = self.name(name_node) if name_node is not None else None
        if category == "any":
            category = None
        cond = self.expr(condition)
        node_ir: Node = cond
        if category is not None:
            node_ir = And((Compare(FieldRef.of("event.category"), (category,), "eq"), cond))
        snippet = " ".join(self.text[span.meta.start_pos : span.meta.end_pos].split())
        return Stage(
            index=index,
            category=category,
            node=node_ir,
            predicate=node_ir.compile(),
            required=node_ir.required(),
            fields=frozenset(node_ir.fields()),
            text=snippet,
            condition=cond.compile(),
            clauses=tuple(cond.clauses()),
            anchor=cond.anchor(),
        )

    # expressions -------------------------------------------------------------------------
    def expr(self, node: Tree | Token) -> Node:
        if isinstance(node, Token):
            raise self.reject("token", node)
        kind = node.data
        if kind == "or_expr":
            return Or(tuple(self.expr(c) for c in node.children))
        if kind == "and_expr":
            return And(tuple(self.expr(c) for c in node.children))
        if kind == "not_expr":
            nots = [c for c in node.children if isinstance(c, Token) and c.type == "NOT_OP"]
            inner = self.expr(node.children[-1])
            return Not(inner) if len(nots) % 2 else inner
        if kind == "comparison":
            return self.comparison(node)
        if kind in ("in_set", "not_in_set"):
            return self.membership(node, negate=kind == "not_in_set")
        if kind == "string_predicate":
            return self.string_predicate(node)
        if kind == "function_call":
            return self.function(node)
        if kind == "literal":
            value = self.literal(node)
            if isinstance(value, bool):
                return Const(value)
            raise self.reject("non-boolean condition", node)
        if kind in ("field", "base_field"):
            return Truthy(self.value(node))  # true when the field's value is true
        raise self.reject(_CONSTRUCT_NAMES.get(kind, f"construct ({kind})"), node)

    def comparison(self, node: Tree) -> Node:
        left, op, right = node.children
        op_text = "==" if str(op) == "=" else str(op)
        for a, b in ((left, right), (right, left)):
            if (
                op_text in ("==", "!=")
                and self._is_literal(a)
                and self.literal(a) is None
                and isinstance(b, Tree)
                and b.data == "comparison"
            ):
                null = self.null_of(b)  # `null == (a > b)`: the comparison is null
                return Not(null) if op_text == "!=" else null
        if self._is_literal(left) and not self._is_literal(right):
            left, right = right, left
            op_text = _FLIPPED.get(op_text, op_text)
        if op_text in ("==", "!=") and self._is_field(left) and self._is_literal(right):
            ref = self.field(left)
            value = self.literal(right)
            if ref.path == "@timestamp":
                return Relation(self.value(left), op_text, self.time_literal(right))
            test: Node = IsNull(ref) if value is None else Compare(ref, (value,), "eq")
            return Not(test) if op_text == "!=" else test
        if op_text in ("==", "!=") and self._is_literal(right) and self.literal(right) is None:
            null = NullCheck((self.value(left),))
            return Not(null) if op_text == "!=" else null
        if op_text not in _FLIPPED and op_text not in ("==", "!="):
            raise self.reject(f"operator `{op_text}`", op)
        timestamp = self._is_field(left) and self.field(left).path == "@timestamp"
        if timestamp and self._is_literal(right):
            return Relation(self.value(left), op_text, self.time_literal(right))
        if (
            op_text in _FLIPPED
            and self._is_field(left)
            and self.field(left).path in self.version_fields
            and self._is_literal(right)
            and isinstance(self.literal(right), str)
        ):
            key = version_key(self.literal(right))
            assert key is not None
            return VersionRelation(self.value(left), op_text, key)
        return Relation(self.value(left), op_text, self.value(right))

    def time_literal(self, node: Tree | Token) -> Literal:
        """A literal compared with `@timestamp`: a date string or epoch milliseconds."""
        value = self.literal(node)
        scale = 1_000_000 if self.nanos else 1
        if isinstance(value, str):
            when = parse_timestamp_ns(value) if self.nanos else parse_timestamp_ms(value)
            if when is None:
                raise QueryError(f"invalid date {value!r} {self._where(node)}")
            return Literal(when)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Literal(value * scale)  # epoch milliseconds
        raise self.reject("value compared with @timestamp (a date or epoch ms)", node)

    def null_of(self, node: Tree) -> Node:
        """Whether the comparison `node` is null: one of its sides has no value."""
        left, _, right = node.children
        return NullCheck((self.value(left), self.value(right)))

    def membership(self, node: Tree, *, negate: bool) -> Node:
        left, in_token, expressions = node.children[:3]
        if not self._is_field(left):
            values = tuple(self.value(c) for c in expressions.children if c is not None)
            target = self.value(left)
            test_any: Node = Or(tuple(Relation(target, "==", v) for v in values))
            return Not(test_any) if negate else test_any
        ref = self.field(left)
        values = tuple(self.literal(c) for c in expressions.children if c is not None)
        if any(v is None for v in values):
            raise self.reject("null inside `in (...)`", expressions)
        insensitive = str(in_token) == "in~"
        if insensitive and not all(isinstance(v, str) for v in values):
            raise self.reject("non-string value in `in~ (...)`", expressions)
        test = Compare(ref, values, "ieq" if insensitive else "eq")
        return Not(test) if negate else test

    def string_predicate(self, node: Tree) -> Node:
        left, operator, *literals = node.children
        op = str(operator)
        if (
            op == ":"
            and self._is_literal(left)
            and self.literal(left) is None
            and len(literals) == 1
            and isinstance(literals[0], Tree)
            and literals[0].data == "comparison"
        ):
            return self.null_of(literals[0])  # `null : (exit_code > -1)`
        values = tuple(self.literal(c) for c in literals if c is not None)
        if op == ":":
            if self._is_field(left):
                ref = self.field(left)
                if all(isinstance(v, str) for v in values):
                    return Compare(ref, values, "wild")
                if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                    return Compare(ref, values, "eq")
                raise self.reject("pattern for `:` mixing strings and other values", node)
            if not all(isinstance(v, str) for v in values):
                raise self.reject("non-string pattern for `:`", node)
            return StringMatch(self.value(left), values, "like", True)
        if not all(isinstance(v, str) for v in values):
            raise self.reject(f"non-string pattern for `{op}`", node)
        kind, insensitive = op.rstrip("~"), op.endswith("~")
        if kind == "regex":
            for pattern, literal in zip(values, literals, strict=False):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise QueryError(
                        f"invalid regex {pattern!r} {self._where(literal)}: {exc}"
                    ) from None
        return StringMatch(self.value(left), values, kind, insensitive)

    def function(self, node: Tree) -> Node:
        name_token = node.children[0]
        name = str(name_token).lower()
        args_node = node.children[1] if len(node.children) > 1 else None
        args = [c for c in args_node.children if c is not None] if args_node else []
        if name != "cidrmatch" or not (args and self._is_field(args[0])):
            call = self.call(node)
            if call.name not in BOOLEAN_FUNCTIONS:
                raise self.reject(f"non-boolean function `{name_token}` as a condition", node)
            fragment = None
            if (
                call.name in ("startswith", "endswith", "stringcontains")
                and isinstance(call.args[0], FieldValue)
                and call.args[0].path not in DERIVED_FIELDS
                and isinstance(call.args[1], Literal)
                and isinstance(call.args[1].value, str)
            ):
                fragment = _longest_fragment(call.args[1].value.lower(), wildcards=False) or None
            return Truthy(call, fragment)
        if len(args) < 2:
            raise self.reject("cidrmatch without addresses", node)
        ref = self.field(args[0])
        networks: list[IPNetwork] = []
        for arg in args[1:]:
            value = self.literal(arg)
            try:
                if not isinstance(value, str):
                    raise ValueError(value)
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise QueryError(
                    f"invalid address or CIDR {value!r} in cidrmatch {self._where(arg)}"
                ) from None
        return CidrMatch(ref, tuple(networks))

    def value(self, node: Tree | Token) -> ValueExpr:
        """A value expression: field, literal, function call, arithmetic, signed value."""
        if self._is_field(node):
            ref = self.field(node)
            nanos = self.nanos and ref.path == "@timestamp"
            return FieldValue(ref.path, ref.parts, ref.optional, nanos)
        if self._is_literal(node):
            return Literal(self.literal(node))
        if isinstance(node, Tree) and node.data == "function_call":
            return self.call(node)
        if isinstance(node, Tree) and node.data in ("sum_expr", "mul_expr"):
            items = node.children
            expr = self.value(items[0])
            for op, operand in zip(items[1::2], items[2::2], strict=True):
                expr = Arith(str(op), expr, self.value(operand))
            return expr
        if isinstance(node, Tree) and node.data == "value":
            sign, inner = node.children
            expr = self.value(inner)
            return Arith("*", Literal(-1), expr) if str(sign) == "-" else expr
        if isinstance(node, Tree) and node.data in _CONSTRUCT_NAMES:
            raise self.reject(_CONSTRUCT_NAMES[node.data], node)
        raise self.reject("expression", node)

    def call(self, node: Tree) -> Call:
        raw = str(node.children[0])
        insensitive = raw.endswith("~")
        name = raw.rstrip("~").lower()
        if name not in FUNCTIONS:
            raise self.reject(f"function `{raw}`", node)
        if insensitive and name not in CASE_FUNCTIONS:
            raise self.reject(f"case-insensitive form of `{name}`", node)
        args_node = node.children[1] if len(node.children) > 1 else None
        args = tuple(
            self.value(c) for c in (args_node.children if args_node else ()) if c is not None
        )
        _, least, most = FUNCTIONS[name]
        if not least <= len(args) <= most:
            raise QueryError(
                f"function `{raw}` takes {least}"
                + (f" to {most}" if most != least else "")
                + f" arguments, not {len(args)}, {self._where(node)}"
            )
        return Call(name, args, insensitive)

    # leaves ------------------------------------------------------------------------------
    def _is_literal(self, node: Tree | Token) -> bool:
        return isinstance(node, Tree) and node.data in ("literal", "number")

    def _is_field(self, node: Tree | Token) -> bool:
        return isinstance(node, Tree) and node.data in ("field", "base_field")

    def field(self, node: Tree | Token) -> FieldRef:
        if not self._is_field(node):
            if isinstance(node, Tree) and node.data == "function_call":
                raise self.reject(f"function `{node.children[0]}`", node)
            if isinstance(node, Tree) and node.data in _CONSTRUCT_NAMES:
                raise self.reject(_CONSTRUCT_NAMES[node.data], node)
            raise self.reject("expression where a field was expected", node)
        assert isinstance(node, Tree)
        if node.data == "base_field":
            inner = node.children[0]
            if isinstance(inner, Tree) and inner.data == "escaped_name":
                escaped = str(inner.children[0])
                return FieldRef.of(escaped[1:-1].replace("``", "`"))
            return FieldRef.of(self.name(inner))
        token = node.children[0]
        text = str(token)
        optional = text.startswith("?")
        if optional:
            text = text[1:]  # in a condition, a missing field is null as for any field
        if "`" in text or "[" in text or any(c.isspace() for c in text):
            raise self.reject("escaped or indexed field", node)
        return FieldRef.of(text, optional)

    def name(self, node: Tree | Token) -> str:
        if isinstance(node, Token):
            return str(node)
        return str(node.children[0])

    def literal(self, node: Tree | Token) -> Any:
        if not (isinstance(node, Tree) and node.data in ("literal", "number")):
            if isinstance(node, Tree) and node.data in _CONSTRUCT_NAMES:
                raise self.reject(_CONSTRUCT_NAMES[node.data], node)
            raise self.reject("expression where a literal was expected", node)
        try:
            with elasticsearch_syntax:
                info = self.walker.visit(node)
        except EqlError as exc:
            first = str(exc).splitlines()
            detail = first[1] if len(first) > 1 else first[0]
            raise QueryError(f"invalid literal {self._where(node)}: {detail}") from None
        node_value = getattr(info, "node", info)
        return (
            node_value
            if isinstance(node_value, int | float)
            else getattr(node_value, "value", None)
        )


_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
"""A comparison with its sides swapped (`5 < x` is `x > 5`)."""

_CONSTRUCT_NAMES = {
    "method_chain": "method call",
    "named_subquery": "subquery",
    "varpath": "variable",
}


def _keyed(stage: Stage, keys: tuple[FieldRef, ...], missing: bool) -> Stage:
    return Stage(
        index=stage.index,
        category=stage.category,
        node=stage.node,
        predicate=stage.predicate,
        required=stage.required,
        fields=stage.fields,
        text=stage.text,
        keys=keys,
        missing=missing,
        condition=stage.condition,
        clauses=stage.clauses,
        anchor=stage.anchor,
    )


def compile_query(text: str, mapping: Mapping | None = None) -> CompiledQuery:
    """Parse and compile `text`; raises QueryError (one line) for anything unsupported.
    `mapping`: the index mapping the fields are read as (`app.engine.mapping`)."""
    if not text or not text.strip():
        raise QueryError("the rule has an empty query")
    return _Compiler(text, mapping).query()
