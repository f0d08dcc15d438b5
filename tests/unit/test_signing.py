"""Webhook signatures: sign/verify, tampering, replay window, and the recipe in SCHEMA.md."""

from __future__ import annotations

import ast
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import monitor.alerts
from monitor.alerts.signing import sign, verify

SECRET = "whsec-3b1f0c9e7a"
BODY = b'{"schema":"webcare.alert.v1","delivery_id":"d-1","items":[]}'
T = 1_704_715_200  # 2024-01-08T12:00:00Z
SCHEMA_DOC = Path(monitor.alerts.__file__).with_name("SCHEMA.md")

Verifier = Callable[..., bool]


def python_block(defining: str) -> str:
    """The ```python block of SCHEMA.md that defines `defining`, verbatim."""
    blocks = re.findall(r"```python\n(.*?)```", SCHEMA_DOC.read_text(encoding="utf-8"), re.S)
    (snippet,) = [b for b in blocks if f"def {defining}(" in b]
    return str(snippet)


def documented_verifier() -> Verifier:
    """Exec the legacy recipe of SCHEMA.md verbatim and return its function."""
    snippet = python_block("verify_webcare_signature")
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(SCHEMA_DOC), "exec"), namespace)
    function: Verifier = namespace["verify_webcare_signature"]
    return function


def test_header_format_and_known_vector() -> None:
    header = sign(SECRET, BODY, T)

    expected = hmac.new(SECRET.encode(), b"1704715200." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1704715200,v1={expected}"
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)


def test_round_trip() -> None:
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T)
    assert verify(SECRET, b"", sign(SECRET, b"", T), now=T + 10)


def test_tampered_body_wrong_secret_and_moved_timestamp_fail() -> None:
    header = sign(SECRET, BODY, T)

    assert not verify(SECRET, BODY.replace(b"d-1", b"d-2"), header, now=T)
    assert not verify(SECRET, BODY + b" ", header, now=T)
    assert not verify("another-secret", BODY, header, now=T)
    # The timestamp is inside the HMAC: refreshing it to dodge the replay window breaks it.
    assert not verify(SECRET, BODY, header.replace(f"t={T}", f"t={T + 600}"), now=T + 600)


@pytest.mark.parametrize(("skew", "ok"), [(0, True), (300, True), (301, False), (-301, False)])
def test_replay_window(skew: int, ok: bool) -> None:
    header = sign(SECRET, BODY, T)

    assert verify(SECRET, BODY, header, now=T + skew) is ok


def test_custom_tolerance() -> None:
    header = sign(SECRET, BODY, T)

    assert not verify(SECRET, BODY, header, now=T + 61, tolerance=60)
    assert verify(SECRET, BODY, header, now=T + 3600, tolerance=3600)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "v1=" + "0" * 64,
        f"t={T}",
        f"t=abc,v1={'0' * 64}",
        f"t={T},v1=ünïcode",
        f"t={T},v1=",
        f"t={T},v0={'0' * 64}",
    ],
)
def test_malformed_headers_are_rejected_without_raising(header: str) -> None:
    assert verify(SECRET, BODY, header, now=T) is False


def test_several_v1_values_for_secret_rotation() -> None:
    old = sign("old-secret", BODY, T).split(",")[1]
    header = f"{sign(SECRET, BODY, T)},{old}"

    assert verify(SECRET, BODY, header, now=T)
    assert verify("old-secret", BODY, header, now=T)
    assert not verify("third-secret", BODY, header, now=T)


def test_documented_recipe_uses_only_the_standard_library() -> None:
    snippet = python_block("verify_webcare_signature")
    imported = {
        alias.name
        for node in ast.walk(ast.parse(snippet))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"hashlib", "hmac", "time"}


def test_documented_recipe_verifies_our_signature_at_the_current_time() -> None:
    recipe = documented_verifier()
    now = int(time.time())
    header = sign(SECRET, BODY, now)

    assert recipe(SECRET, BODY, header) is True
    assert recipe(SECRET, BODY + b"x", header) is False
    assert recipe("wrong", BODY, header) is False
    assert recipe(SECRET, BODY, sign(SECRET, BODY, now - 3600)) is False  # replayed


def test_documented_recipe_agrees_with_verify() -> None:
    recipe = documented_verifier()
    header = sign(SECRET, BODY, T)
    rotated = f"{header},v1={'f' * 64}"
    cases = [
        (SECRET, BODY, header, T),
        (SECRET, BODY, header, T + 300),
        (SECRET, BODY, header, T + 301),
        (SECRET, BODY, header, T - 301),
        (SECRET, BODY[:-1], header, T),
        ("nope", BODY, header, T),
        (SECRET, BODY, rotated, T),
        (SECRET, BODY, "t=x,v1=00", T),
        (SECRET, BODY, "", T),
    ]
    for secret, body, value, now in cases:
        assert recipe(secret, body, value, now=now) == verify(secret, body, value, now=now), value
