"""Standard Webhooks signing (the `webhook` receiver's default): our signatures are what the
`standardwebhooks` package verifies, and a secret it would read differently is refused."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks

from monitor.alerts.signing import sign_standard, standard_headers, verify_standard
from monitor.config import ConfigError, parse_config
from monitor.config.alerts import ReceiverConfig
from monitor.config.types import standard_webhook_key

KEY = b"webcare-unit-test-signing-key-32"
SECRET = "whsec_" + base64.b64encode(KEY).decode()  # padded: ...MzI=
BODY = b'{"schema":"webcare.alert.v1","delivery_id":"d-1","items":[]}'
T = 1_704_715_200  # 2024-01-08T12:00:00Z


@pytest.mark.parametrize(
    "secret",
    [
        SECRET,
        SECRET.rstrip("="),  # unpadded base64 is accepted by the package too
        "whsec_" + base64.b64encode(bytes(range(40))).decode(),  # with "+" and "/"
    ],
)
def test_our_signature_is_the_one_the_package_computes(secret: str) -> None:
    when = datetime.fromtimestamp(T, UTC)
    package = standardwebhooks.Webhook(secret)

    assert sign_standard(secret, "msg-1", BODY, T) == package.sign("msg-1", when, BODY)


def test_the_package_verifies_our_headers_and_refuses_tampering_and_old_ones() -> None:
    now = int(time.time())
    headers = standard_headers(SECRET, "warning:acme-fb:1042.team", BODY, now)
    package = standardwebhooks.Webhook(SECRET)

    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "warning:acme-fb:1042.team"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"].startswith("v1,")
    assert package.verify(BODY, headers) == {
        "schema": "webcare.alert.v1",
        "delivery_id": "d-1",
        "items": [],
    }
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        package.verify(BODY.replace(b"d-1", b"d-2"), headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        package.verify(BODY, {**headers, "webhook-id": "another-delivery"})
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="too old"):
        package.verify(BODY, standard_headers(SECRET, "m", BODY, now - 301))


def test_verify_standard_agrees_with_the_package_on_a_clock_of_our_choosing() -> None:
    headers = standard_headers(SECRET, "m", BODY, T)
    rotated = {**headers, "webhook-signature": f"v1,{'A' * 44} {headers['webhook-signature']}"}
    upper = {k.upper(): v for k, v in headers.items()}

    assert verify_standard(SECRET, BODY, headers, now=T)
    assert verify_standard(SECRET, BODY, headers, now=T + 300)
    assert verify_standard(SECRET, BODY, rotated, now=T)
    assert verify_standard(SECRET, BODY, upper, now=T)  # header names are case-insensitive
    assert not verify_standard(SECRET, BODY, headers, now=T + 301)
    assert not verify_standard(SECRET, BODY, headers, now=T - 301)
    assert not verify_standard(SECRET, BODY + b" ", headers, now=T)
    assert not verify_standard(SECRET, BODY, {**headers, "webhook-timestamp": "x"}, now=T)
    assert not verify_standard(SECRET, BODY, {}, now=T)
    assert not verify_standard(SECRET, BODY, standard_headers(None, "m", BODY, T), now=T)


def test_unsigned_without_a_secret_but_with_the_stable_id() -> None:
    assert standard_headers(None, "dlv-1", BODY, T) == {
        "webhook-id": "dlv-1",
        "webhook-timestamp": str(T),
    }


def test_the_key_is_what_the_package_decodes() -> None:
    assert standard_webhook_key(SECRET) == KEY
    assert standard_webhook_key(SECRET.rstrip("=")) == KEY


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("receiver-signing-secret", "does not start with whsec_"),
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(), "not base64"),
        ("whsec_not base64!", "not base64"),
        ("whsec_" + base64.b64encode(b"short key").decode(), "9 bytes, too short"),
    ],
)
def test_a_secret_the_package_would_read_otherwise_is_refused_without_showing_it(
    secret: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        standard_webhook_key(secret)
    assert secret.removeprefix("whsec_") not in str(info.value)
    assert 'signature = "legacy"' in str(info.value)


def _config(receiver: dict[str, Any]) -> dict[str, Any]:
    source = {
        "type": "facebook_page",
        "name": "acme_fb",
        "brand": "acme",
        "page_id": "1",
        "access_token": "EAAtokenvalue",
    }
    return {"sources": [source], "receivers": [receiver]}


def test_a_webhook_signs_the_standard_way_by_default_and_legacy_on_request() -> None:
    url = "https://hooks.example/webcare"
    standard = parse_config(_config({"name": "a", "type": "webhook", "url": url, "secret": SECRET}))
    legacy = parse_config(
        _config(
            {
                "name": "b",
                "type": "webhook",
                "url": url,
                "secret": "any text",
                "signature": "legacy",
            }
        )
    )

    assert standard.receivers[0].signature == "standard"
    assert legacy.receivers[0].signature == "legacy"
    # Alertmanager keeps X-Webcare-Signature, whatever its secret looks like.
    manager = ReceiverConfig.model_validate(
        {"name": "am", "type": "alertmanager", "url": url, "secret": "any text"}
    )
    assert manager.secret is not None


def test_check_config_says_how_to_fix_an_old_secret_without_showing_it() -> None:
    old = "receiver-signing-secret-8c1f"
    with pytest.raises(ConfigError) as info:
        parse_config(
            _config({"name": "a", "type": "webhook", "url": "https://h.example/x", "secret": old})
        )

    (problem,) = info.value.problems
    assert problem.startswith("receivers[0]: the secret does not start with whsec_")
    assert 'signature = "legacy"' in problem
    assert old not in problem


def test_signature_is_for_webhook_receivers_only() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            _config(
                {
                    "name": "s",
                    "type": "slack",
                    "url": "https://hooks.slack.com/services/T0/B0/x",
                    "signature": "legacy",
                }
            )
        )
    assert info.value.problems == [
        "receivers[0]: `signature` is for webhook receivers (an alertmanager receiver signs"
        " X-Webcare-Signature, as before)"
    ]
