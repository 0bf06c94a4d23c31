"""Configured PromQL must parse: checked with promql-parser before a query is sent to Prometheus.

promql-parser is a Rust port of Prometheus's own parser (Python bindings). Parsing catches syntax
errors, unknown functions, wrong argument counts and types, ranges on anything but a selector,
zero durations, empty selectors and bad regular expressions. It does not know which metrics
exist, so a query on a misspelled metric parses and later returns nothing (the probe reports that
as no data).

The parser follows recent Prometheus. Functions that Prometheus marks experimental (for example
``mad_over_time``, ``sort_by_label``, ``info``, ``limitk``) are refused unless
``allow_experimental=True``: a Prometheus started without
``--enable-feature=promql-experimental-functions``, and older ones such as 2.42, reject them.
"""

from __future__ import annotations

import promql_parser

# Aggregations Prometheus gates behind promql-experimental-functions; the parser does not flag them.
_EXPERIMENTAL_AGGREGATIONS = frozenset({"limitk", "limit_ratio"})

# ValueType members are not hashable: compare them in turn.
_VALUE_TYPES = (
    (promql_parser.ValueType.Vector, "vector"),
    (promql_parser.ValueType.Scalar, "scalar"),
    (promql_parser.ValueType.Matrix, "matrix"),
    (promql_parser.ValueType.String, "string"),
)


class InvalidPromql(ValueError):
    """The PromQL query is empty, does not parse, or uses a function that is not enabled."""


def check_promql(query: str, *, allow_experimental: bool = False) -> None:
    """Raise :class:`InvalidPromql`, with the parser's reason, unless ``query`` is valid PromQL."""
    expression = _parse(query)
    if not allow_experimental:
        _refuse_experimental(expression, query)


def result_type(query: str) -> str:
    """What ``query`` evaluates to: ``"vector"``, ``"matrix"`` (a range vector), ``"scalar"`` or
    ``"string"``. Raises :class:`InvalidPromql` when it does not parse."""
    return _type_of(_parse(query))


def is_range_vector_result(query: str) -> bool:
    """True when ``query`` returns a range vector (``x[5m]``, a subquery): Prometheus refuses
    those as range queries, and an instant query returns them as a matrix, not as samples."""
    return result_type(query) == "matrix"


def _parse(query: str) -> promql_parser.Expr:
    if not query.strip():
        raise InvalidPromql("The PromQL query is empty; configure an expression such as up == 1.")
    try:
        return promql_parser.parse(query)
    except ValueError as error:
        raise InvalidPromql(_not_parsed(query, str(error))) from None
    except BaseException as error:
        # A Rust panic inside the parser (for example on `x offset Inf`) arrives as pyo3's
        # PanicException, which derives from BaseException: report it as a bad query.
        if type(error).__name__ != "PanicException":
            raise
        raise InvalidPromql(_not_parsed(query, str(error))) from None


def _not_parsed(query: str, reason: str) -> str:
    return f"The PromQL query {_excerpt(query)} does not parse: {reason}; fix the expression."


def _excerpt(query: str, limit: int = 80) -> str:
    text = " ".join(query.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _refuse_experimental(expression: promql_parser.Expr, query: str) -> None:
    found: list[str] = []
    promql_parser.walk(expression, pre_visit=lambda node: _note_experimental(node, found))
    if found:
        raise InvalidPromql(
            f"The PromQL query {_excerpt(query)} uses the experimental function {found[0]}, "
            "which Prometheus refuses unless started with "
            "--enable-feature=promql-experimental-functions; use a stable function instead."
        )


def _note_experimental(node: promql_parser.Expr, found: list[str]) -> None:
    if isinstance(node, promql_parser.Call) and node.func.experimental:
        found.append(f"{node.func.name}()")
    elif isinstance(node, promql_parser.AggregateExpr):
        operator = str(node.op).lower()
        if operator in _EXPERIMENTAL_AGGREGATIONS:
            found.append(operator)


def _type_of(expression: promql_parser.Expr) -> str:
    while isinstance(expression, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        expression = expression.expr
    if isinstance(expression, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
        return "matrix"
    if isinstance(expression, promql_parser.NumberLiteral):
        return "scalar"
    if isinstance(expression, promql_parser.StringLiteral):
        return "string"
    if isinstance(expression, promql_parser.Call):
        return _value_type(expression.func.return_type)
    if isinstance(expression, promql_parser.BinaryExpr):
        sides = {_type_of(expression.lhs), _type_of(expression.rhs)}
        return "scalar" if sides == {"scalar"} else "vector"
    return "vector"


def _value_type(value_type: promql_parser.ValueType) -> str:
    return next((name for member, name in _VALUE_TYPES if member == value_type), "vector")
