"""What a served model is asked, checked strictly (`serving.requests`): each request body
is parsed here by MLflow's own scoring-server parsers, as the server parses it for a model
logged without an input schema, so the frames have the dtypes the model really sees."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc.scoring_server import infer_and_parse_data, parse_csv_input

from movierec.errors import DataError
from movierec.serving.requests import (
    integer_column,
    request_form,
    request_frame,
    topk_options,
)


def _json(columns: list[str], *rows: list) -> pd.DataFrame:
    body = json.loads(json.dumps({"dataframe_split": {"columns": columns, "data": list(rows)}}))
    return request_frame(infer_and_parse_data(body))


def _csv(text: str) -> pd.DataFrame:
    return request_frame(parse_csv_input(io.StringIO(text)))


def _parquet(frame: pd.DataFrame) -> pd.DataFrame:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return request_frame(pd.read_parquet(io.BytesIO(buffer.getvalue())))


@pytest.mark.parametrize(
    ("frame", "column", "message"),
    [
        (_json(["userId", "k"], [True, 2]), "userId", "row 0 has true"),
        (_json(["userId", "k"], [1, 2], [False, 2]), "userId", "row 1 has false"),
        (_json(["userId", "movieId"], [1, "31"]), "movieId", "row 0 has '31'"),
        (_json(["userId", "k"], [1.5, 2]), "userId", "row 0 has 1.5"),
        (_json(["userId", "movieId"], [1, None]), "movieId", "row 0 has no value"),
        (_json(["userId", "k"], [[1, 2], 2]), "userId", "row 0 has [1, 2]"),
        (_json(["userId", "k"], [2**70, 2]), "userId", f"row 0 has {2**70}"),
        (_csv("userId,k\ntrue,2\n"), "userId", "row 0 has true"),
        (_csv("userId,k\nabc,2\n"), "userId", "row 0 has 'abc'"),
        (_parquet(pd.DataFrame({"userId": [1, 2], "k": [True, False]})), "k", "row 0 has true"),
    ],
)
def test_ids_and_k_must_be_integers(frame, column, message):
    with pytest.raises(DataError) as err:
        integer_column(frame, column)
    assert f"column {column} must hold integers; {message} (" in str(err.value)


def test_integral_ids_are_read_from_every_body():
    for frame in (
        _json(["userId", "movieId"], [1, 31], [2, None]).iloc[:1],  # float64 beside a null
        _json(["userId", "movieId"], [1, 31.0]),
        _csv("userId,movieId\n1,31\n"),
        _parquet(pd.DataFrame({"userId": np.array([1], dtype=np.uint32), "movieId": [31]})),
    ):
        assert integer_column(frame, "userId").tolist() == [1]
        assert integer_column(frame, "movieId").tolist() == [31]
        assert integer_column(frame, "movieId").dtype == np.int64


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_json(["userId", "k", "exclude_rated"], [1, 2, "false"]), "row 0 has 'false'"),
        (_json(["userId", "k", "exclude_rated"], [1, 2, True], [1, 2, "no"]), "row 1 has 'no'"),
        (_json(["userId", "k", "exclude_rated"], [1, 2, 0]), "row 0 has 0"),
        (_csv("userId,k,exclude_rated\n1,2,maybe\n"), "row 0 has 'maybe'"),
        (_parquet(pd.DataFrame({"userId": [1], "k": [2], "exclude_rated": ["false"]})),
         "row 0 has 'false'"),
    ],
)  # fmt: skip
def test_exclude_rated_must_be_a_boolean(frame, message):
    with pytest.raises(DataError) as err:
        topk_options(frame)
    assert f"exclude_rated must hold true or false (JSON booleans); {message}" in str(err.value)


def test_options_take_booleans_text_and_defaults_as_sent():
    frame = _json(
        ["userId", "k", "exclude_rated", "genre"], [1, 2, False, "Drama"], [2, 2, None, None]
    )
    options = topk_options(frame)
    assert options["exclude_rated"].tolist() == [False, True]  # missing: the default
    assert options["genre"].tolist() == ["Drama", None]
    assert options["fallback"].tolist() == [None, None]
    assert topk_options(_csv("userId,k,exclude_rated\n1,2,false\n"))["exclude_rated"][0] is False
    with pytest.raises(DataError, match="column genre must hold text; row 0 has 5"):
        topk_options(_json(["userId", "k", "genre"], [1, 2, 5]))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_json(["userId", "k", "bogus"], [1, 2, 3]), "unknown column(s) bogus; send either"),
        (_json(["userId", "k", "userId"], [1, 2, 3]), "column(s) userId given more than once"),
        (_csv("userId,k\n1,2,3\n"), "a row has more values than there are column names"),
        (request_frame({"userId": np.array([1]), "k": np.array([2]), "x": np.array([0])}),
         "unknown column(s) x"),
    ],
)  # fmt: skip
def test_request_columns_are_checked(frame, message):
    with pytest.raises(DataError) as err:
        request_form(frame)
    assert message in str(err.value)
    if "unknown" in message:  # the allowed columns are named
        assert "(columns userId, k and optionally exclude_rated, genre, fallback)" in str(err.value)


def test_a_body_that_is_not_a_table_is_refused():
    with pytest.raises(DataError, match="the request is a ndarray, not a table"):
        request_frame(np.array([[1, 2]]))


def test_a_failure_inside_the_model_is_a_500_without_its_traceback(caplog):
    """MLflow answers any exception but its own with a 400 carrying the stack trace (server
    paths included): the served model answers an internal failure with a 500 naming only
    the exception's type, and logs the traceback on the server."""
    from types import SimpleNamespace

    from mlflow.exceptions import MlflowException

    from movierec.serving.pyfunc import RequestAnswerer
    from movierec.tracking.pyfunc_model import ServedModel

    def broken(users, movies):
        raise RuntimeError("failed in /srv/secret/path.py")

    served = ServedModel(load=None)
    served.answer = RequestAnswerer(SimpleNamespace(model=SimpleNamespace(predict_ratings=broken)))
    with pytest.raises(MlflowException) as err:
        served.predict(None, pd.DataFrame({"userId": [1], "movieId": [2]}))
    assert err.value.get_http_status_code() == 500
    assert err.value.message == (
        "the model failed on this request (RuntimeError); the server's log has the details"
    )
    assert "stack_trace" not in err.value.serialize_as_json()
    assert "/srv/secret/path.py" in caplog.text  # the server's log keeps the details
