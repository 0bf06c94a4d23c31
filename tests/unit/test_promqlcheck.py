"""Configured PromQL parses before it is sent; the parser's reason is in the message."""

import pytest

from opsgate.config.promqlcheck import (
    InvalidPromql,
    check_promql,
    is_range_vector_result,
    result_type,
)

VALID = [
    'histogram_quantile(0.95, sum by (le, route) '
    '(rate(http_request_duration_seconds_bucket{job="opsgate-demo"}[5m])))',
    'histogram_quantile(0.95,\n  sum by (le) (rate(http_request_duration_seconds_bucket'
    '{job="opsgate-demo"}[5m])))',
    'sum(rate(http_requests_total{job="opsgate-demo",status=~"5.."}[5m]))\n'
    '/ sum(rate(http_requests_total{job="opsgate-demo"}[5m]))',
    "max(time() - last_success) < 60",
    'ALERTS{alertstate="firing",severity="critical"}',
    "deriv(lag[15m])",
    "increase(x[1h]) == 0",
    "rate(x[5m] offset 1h)",
    "x offset -5m",
    "x @ 1609746000",
    "rate(x[5m] @ end())",
    "x @ start() offset 1m",
    "max_over_time(rate(x[5m])[15m:1m])",
    "max_over_time(rate(x[5m])[15m:])",
    "up == 0",
    "sum by (job) (up) < bool 1",
    "count(up{job=~\"api|worker\"} == 0) or vector(0)",
    "x / on(instance) group_left(version) build_info",
    'label_replace(up, "host", "$1", "instance", "(.*):.*")',
    "absent(up{job=\"worker\"})",
    "predict_linear(node_filesystem_free_bytes[1h], 4 * 3600) < 0",
    "topk(3, sum by (route) (rate(http_requests_total[5m])))",
    "1",
    "rate(x[5m]) # a comment",
]


@pytest.mark.parametrize("query", VALID)
def test_valid_queries_pass(query):
    check_promql(query)


@pytest.mark.parametrize(("query", "reason"), [
    ("sum(rate(x[5m])", "unclosed left parenthesis"),
    ("foo_bar(x)", "unknown function with name 'foo_bar'"),
    ("rate(x)", "expected type matrix"),
    ("sum(x)[5m]", "ranges only allowed for vector selectors"),
    ("rate(sum(x)[5m])", "ranges only allowed for vector selectors"),
    ("(x)[5m]", "ranges only allowed for vector selectors"),
    ("x{", "unexpected end of input inside braces"),
    ("{}", "at least one non-empty matcher"),
    ('x{a=~"("}', "illegal regex"),
    ("rate(x[0s])", "greater than 0"),
    ("time(1)", "expected 0 argument(s)"),
    ("topk(x)", "wrong number of arguments"),
    ("1 +", "invalid promql query"),
])
def test_invalid_queries_give_the_parser_reason(query, reason):
    with pytest.raises(InvalidPromql) as caught:
        check_promql(query)
    message = str(caught.value)
    assert reason in message
    assert "does not parse" in message


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_invalid(query):
    with pytest.raises(InvalidPromql, match="empty"):
        check_promql(query)


@pytest.mark.parametrize("query", ["x offset Inf", "x offset NaN", "x offset 1e999"])
def test_a_parser_panic_is_an_invalid_query(query):
    # promql-parser panics (pyo3 PanicException, a BaseException) on these durations.
    with pytest.raises(InvalidPromql, match="does not parse"):
        check_promql(query)


def test_invalid_promql_is_a_value_error():
    with pytest.raises(ValueError):
        check_promql("sum(")


@pytest.mark.parametrize("query", [
    "mad_over_time(x[5m])", 'sort_by_label(x, "instance")', "limitk(2, x)",
    "sum(limit_ratio(0.5, x))", "info(up)",
])
def test_experimental_functions_are_refused_unless_allowed(query):
    with pytest.raises(InvalidPromql, match="promql-experimental-functions"):
        check_promql(query)
    check_promql(query, allow_experimental=True)


@pytest.mark.parametrize(("query", "kind"), [
    ("x[5m]", "matrix"), ("(x[5m] offset 1h)", "matrix"), ("rate(x[5m])[15m:1m]", "matrix"),
    ("rate(x[5m])", "vector"), ("max(time() - last_success) < 60", "vector"),
    ("1", "scalar"), ("-1", "scalar"), ("time()", "scalar"), ("scalar(up) * 2", "scalar"),
    ("1 > bool 2", "scalar"), ('"text"', "string"), ("up", "vector"),
])
def test_result_type(query, kind):
    assert result_type(query) == kind
    assert is_range_vector_result(query) is (kind == "matrix")


def test_result_type_of_a_bad_query_raises():
    with pytest.raises(InvalidPromql):
        result_type("rate(")
