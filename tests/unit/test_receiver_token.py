"""Tests for the reference platform's tokens: every login issues one, `--require-token`
checks it on each report."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from receiver.app import create_app
from receiver.cli import parse_args
from tests.integration.stack import SPEC_PAYLOAD

LOGIN = {"dev_sno": "D1", "hex_mac": "0xe0a509000e6d"}
HEADERS = {"Content-Type": "application/json; charset=utf-8", "X-Report-Id": "SN-b-1"}


def login(client: FlaskClient, dev_sno: str = "D1") -> str:
    answer = client.get("/api/gateway/login", query_string={**LOGIN, "dev_sno": dev_sno})
    assert answer.status_code == 200
    token = answer.get_json()["token"]
    assert isinstance(token, str)
    return token


def report(client: FlaskClient, **query: str) -> int:
    return client.post("/DeviceStatus", data=json.dumps(SPEC_PAYLOAD), headers=HEADERS,
                       query_string=query).status_code


class TestRequireToken:
    def test_each_login_issues_a_new_token(self) -> None:
        """Two logins, two different tokens."""
        client = create_app().test_client()

        assert login(client) != login(client)

    def test_report_without_the_current_token_is_401(self) -> None:
        """No token, a wrong one, another dev_sno's, or one a newer login replaced: 401."""
        client = create_app(require_token=True).test_client()
        old = login(client)
        new = login(client)
        other = login(client, "D2")

        assert report(client) == 401
        assert report(client, token="nope", dev_sno="D1") == 401
        assert report(client, token=old, dev_sno="D1") == 401
        assert report(client, token=other, dev_sno="D1") == 401
        assert report(client, token=new) == 401  # dev_sno is part of the pair
        assert report(client, token=new, dev_sno="D1") == 200

    def test_without_the_flag_any_report_is_taken(self) -> None:
        """Without --require-token nothing about tokens is checked."""
        assert report(create_app().test_client()) == 200

    def test_flag_is_parsed(self) -> None:
        """`--require-token` is off by default and on when given."""
        assert parse_args([]).require_token is False
        assert parse_args(["--require-token"]).require_token is True
