"""Tests for monitor.logging: JSON lines, levels, and that secrets never reach the output."""

from __future__ import annotations

import io
import json
import logging
import os
import string
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from monitor.config import parse_config
from monitor.logging import REDACTED, Redactor, configure_logging, get_logger

SECRET = "EAAGm0PX4ZCpsBAsecret-token_value.123"
GRAPH = "https://graph.facebook.com/v26.0"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {
        n: logging.getLogger(n).level
        for n in ("aiohttp.access", "sqlalchemy", "aiosqlite", "asyncio")
    }
    config = structlog.get_config()
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, lvl in named.items():
        logging.getLogger(name).setLevel(lvl)
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()


def _setup(**kwargs: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(stream=stream, **kwargs)
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line must be exactly one JSON object."""
    out = stream.getvalue()
    assert out.endswith("\n")
    events = [json.loads(line) for line in out.splitlines()]
    assert all(isinstance(e, dict) for e in events)
    return events


def _assert_clean(stream: io.StringIO, *secrets: str) -> str:
    out = stream.getvalue()
    for secret in secrets:
        assert secret not in out
    assert REDACTED in out
    return out


def test_json_lines_have_timestamp_level_and_logger() -> None:
    stream = _setup()
    log = get_logger("monitor.poller")
    log.info("poll finished", source="acme_fb", items=3)
    log.warning("slow poll", seconds=12.5)
    logging.getLogger("alembic.runtime.migration").info("Running upgrade -> 0001")

    events = _lines(stream)
    assert [e["event"] for e in events] == ["poll finished", "slow poll", "Running upgrade -> 0001"]
    assert [e["level"] for e in events] == ["info", "warning", "info"]
    assert [e["logger"] for e in events] == [
        "monitor.poller",
        "monitor.poller",
        "alembic.runtime.migration",
    ]
    assert events[0]["items"] == 3
    for event in events:
        stamp = event["timestamp"]
        assert stamp.endswith("Z")
        parsed = datetime.fromisoformat(stamp)
        assert parsed.utcoffset() == timedelta(0)


def test_configured_secret_logged_as_a_value_is_redacted() -> None:
    stream = _setup(secrets=[SECRET])
    log = get_logger("monitor.test")
    log.info("token check", detail=SECRET, note=f"prefix {SECRET} suffix")
    log.info(f"in the event itself: {SECRET}")
    log.info("positional %s", SECRET)

    _assert_clean(stream, SECRET)
    events = _lines(stream)
    assert events[0]["detail"] == REDACTED
    assert events[0]["note"] == f"prefix {REDACTED} suffix"
    assert events[1]["event"] == f"in the event itself: {REDACTED}"
    assert events[2]["event"] == f"positional {REDACTED}"


def test_secret_nested_in_dicts_lists_and_objects_is_redacted() -> None:
    stream = _setup(secrets=[SECRET])
    log = get_logger("monitor.test")
    log.info(
        "request",
        params={"fields": "id", "deep": [{"x": SECRET}, (SECRET,)]},
        raw=SECRET.encode(),
        url=URL(f"{GRAPH}/123/feed?access_token={SECRET}"),
        error=RuntimeError(f"upstream said {SECRET}"),
    )
    _assert_clean(stream, SECRET)
    event = _lines(stream)[0]
    assert event["params"]["deep"] == [{"x": REDACTED}, [REDACTED]]
    assert event["error"] == f"upstream said {REDACTED}"


def test_secret_bound_in_context_is_redacted() -> None:
    stream = _setup(secrets=[SECRET])
    structlog.contextvars.bind_contextvars(request_url=f"/feed?x={SECRET}")
    get_logger("monitor.test").bind(header=SECRET).info("bound")
    _assert_clean(stream, SECRET)


def test_secret_percent_encoded_in_a_url_is_redacted() -> None:
    secret = "abc+def/ghi=="
    stream = _setup(secrets=[secret])
    get_logger("monitor.test").info("call", url="https://x.test/?sig=abc%2Bdef%2Fghi%3D%3D")
    _assert_clean(stream, "abc%2Bdef%2Fghi%3D%3D", secret)


def test_access_token_query_parameter_is_redacted_even_if_not_configured() -> None:
    stream = _setup()
    log = get_logger("monitor.sources.facebook")
    url = f"{GRAPH}/123/feed?fields=id,message&access_token=EAAunknownTOKEN42&limit=25"
    log.info("fetching", url=url)
    log.info(f"GET {url} failed")
    log.info("next", url="https://x.test/t.json?api_key=k3y-v4lue&api_username=system")
    logging.getLogger("aiohttp.access").warning(
        '"GET /webhooks/facebook?hub.mode=subscribe&hub.verify_token=v3rify-me&hub.challenge=7"'
    )

    _assert_clean(stream, "EAAunknownTOKEN42", "k3y-v4lue", "v3rify-me")
    events = _lines(stream)
    assert events[0]["url"] == (
        f"{GRAPH}/123/feed?fields=id,message&access_token={REDACTED}&limit=25"
    )
    assert "api_username=system" in events[2]["url"]
    assert "hub.challenge=7" in events[3]["event"]


def test_secret_looking_keys_are_redacted_but_flags_kept() -> None:
    stream = _setup()
    get_logger("monitor.test").info(
        "settings",
        access_token="t0k3n-value",
        app_secret="s3cr3t-value",
        api_key="k3y-value",
        password="pw-value",
        Authorization="Bearer b34r3r-value",
        headers={"X-Api-Key": "h34der-value", "Accept": "application/json"},
        has_token=True,
        token=None,
        page_id="123456",
    )
    out = _assert_clean(
        stream, "t0k3n-value", "s3cr3t-value", "k3y-value", "pw-value", "b34r3r", "h34der"
    )
    event = json.loads(out)
    assert event["has_token"] is True
    assert event["token"] is None
    assert event["page_id"] == "123456"
    assert event["headers"]["Accept"] == "application/json"


def test_authorization_headers_in_text_are_redacted() -> None:
    stream = _setup()
    log = get_logger("monitor.test")
    log.info("sent Authorization: Bearer abcdefgh12345678 to graph")
    log.info("flarum header Authorization: Token flarumKEY123; userId=1")
    log.info("legacy OAuth zyxwvuts98765432 header")
    log.info("discourse Api-Key: dk-0123456789 Api-Username: system")
    log.info('body {"access_token": "json-tok3n", "token_type": "bearer"}')

    _assert_clean(
        stream,
        "abcdefgh12345678",
        "flarumKEY123",
        "zyxwvuts98765432",
        "dk-0123456789",
        "json-tok3n",
    )
    events = _lines(stream)
    assert events[0]["event"] == f"sent Authorization: Bearer {REDACTED} to graph"
    assert "userId=1" in events[1]["event"]


def test_exception_message_with_secret_is_redacted() -> None:
    stream = _setup(secrets=[SECRET])
    log = get_logger("monitor.test")
    try:
        try:
            raise ValueError(f"token {SECRET} rejected")
        except ValueError as inner:
            raise RuntimeError(f"GET /feed?access_token={SECRET} failed") from inner
    except RuntimeError:
        log.exception("poll failed")

    _assert_clean(stream, SECRET)
    (event,) = _lines(stream)
    assert event["level"] == "error"
    assert "RuntimeError" in event["exception"]
    assert f"token {REDACTED} rejected" in event["exception"]


def test_stdlib_logger_is_json_and_redacted() -> None:
    stream = _setup(secrets=[SECRET])
    lib = logging.getLogger("aiohttp.client")
    lib.warning("request to %s failed", f"{GRAPH}/me?access_token={SECRET}")
    try:
        raise ConnectionError(f"reset while sending {SECRET}")
    except ConnectionError:
        logging.getLogger("aiohttp.server").exception("Error handling request")

    _assert_clean(stream, SECRET)
    first, second = _lines(stream)
    assert first["logger"] == "aiohttp.client"
    assert first["level"] == "warning"
    assert first["event"] == f"request to {GRAPH}/me?access_token={REDACTED} failed"
    assert second["level"] == "error"
    assert "ConnectionError" in second["exception"]


def test_secrets_from_config_are_redacted(tmp_path: Any) -> None:
    config = parse_config(
        {"sources": [{"type": "facebook_page", "name": "a", "brand": "b", "page_id": "1",
                      "access_token": SECRET}]},
        base_dir=tmp_path,
    )  # fmt: skip
    stream = _setup(secrets=config.secrets())
    get_logger("monitor.test").info("loaded", token_prefix_is_not_enough=SECRET[:20] + "...")
    get_logger("monitor.test").info("loaded", value=SECRET)
    assert SECRET not in stream.getvalue()


def test_short_secrets_are_ignored() -> None:
    stream = _setup(secrets=["", "abc"])
    get_logger("monitor.test").info("abcdef")
    assert _lines(stream)[0]["event"] == "abcdef"


def test_levels_filter_our_events_and_quiet_the_access_log() -> None:
    stream = _setup(level="warning")
    log = get_logger("monitor.test")
    log.debug("hidden debug")
    log.info("hidden info")
    log.warning("shown")
    assert [e["event"] for e in _lines(stream)] == ["shown"]

    stream = _setup(level="info")
    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /metrics HTTP/1.1" 200')
    logging.getLogger("aiohttp.access").warning("access warning")
    assert [e["event"] for e in _lines(stream)] == ["access warning"]


def test_calling_twice_replaces_the_previous_setup() -> None:
    first = _setup(secrets=["first-secret"])
    second = _setup(secrets=["second-secret"])
    ours = [h for h in logging.getLogger().handlers if type(h).__module__ == "monitor.logging"]
    assert len(ours) == 1

    get_logger("monitor.test").info("x", a="second-secret")
    assert first.getvalue() == ""
    assert _lines(second)[0]["a"] == REDACTED


def test_console_format_is_human_readable_and_redacted() -> None:
    stream = _setup(fmt="console", secrets=[SECRET])
    log = get_logger("monitor.test")
    log.info("hello", value=SECRET)
    try:
        raise RuntimeError(SECRET)
    except RuntimeError:
        log.exception("boom")
    out = _assert_clean(stream, SECRET)
    assert "hello" in out
    assert not out.startswith("{")
    assert "\x1b[" not in out  # no colours when the stream is not a terminal


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_follows_the_stream() -> None:
    tty = _FakeTTY()
    configure_logging(stream=tty)
    get_logger("monitor.test").info("hello")
    assert not tty.getvalue().startswith("{")

    json_on_tty = _FakeTTY()
    configure_logging(stream=json_on_tty, fmt="json")
    get_logger("monitor.test").info("hello")
    assert json.loads(json_on_tty.getvalue())["event"] == "hello"


def test_default_stream_is_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(secrets=[SECRET])
    get_logger("monitor.test").info("to stderr", value=SECRET)
    err = capsys.readouterr().err
    assert json.loads(err)["value"] == REDACTED


def test_invalid_level_and_format_are_rejected() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging(level="loud")
    with pytest.raises(ValueError, match="log format"):
        configure_logging(fmt="xml")


_SECRET_CHARS = string.ascii_letters + string.digits + "-_."


@settings(max_examples=60, deadline=None)
@given(
    secret=st.text(_SECRET_CHARS, min_size=4, max_size=40),
    prefix=st.text(max_size=20),
    suffix=st.text(max_size=20),
)
def test_configured_secret_never_survives(secret: str, prefix: str, suffix: str) -> None:
    redactor = Redactor([secret])
    event = redactor(None, "info", {"event": prefix + secret + suffix, "x": [{"y": secret}]})
    for value in (event["event"], event["x"][0]["y"]):
        assert secret not in value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_no_secret_in_any_parsed_field() -> None:
    stream = _setup(secrets=[SECRET])
    get_logger("monitor.test").info("x", **{"k": {"list": [SECRET, {"u": f"?q={SECRET}"}]}})
    for event in _lines(stream):
        assert all(SECRET not in s for s in _strings(event))


async def test_startup_migrations_say_one_line_and_nothing_when_up_to_date(
    tmp_path: Path,
) -> None:
    from monitor.store import create_engine, upgrade

    stream = _setup()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/m.db")
    try:
        await upgrade(engine)
        first = _lines(stream)
        assert [e["event"] for e in first] == ["database schema upgraded"]
        assert first[0]["from_revision"] == "empty database"
        await upgrade(engine)  # a restart: already at head
        assert _lines(stream) == first
    finally:
        await engine.dispose()


def test_under_journald_each_line_carries_its_syslog_priority(tmp_path: Path) -> None:
    """$JOURNAL_STREAM names stderr's device:inode when systemd connects it to journald."""
    script = (
        "from monitor.logging import configure_logging, get_logger\n"
        "configure_logging(fmt='auto')\n"
        "log = get_logger('t')\n"
        "log.info('polled'); log.warning('source down'); log.error('crashed')\n"
    )
    for journal in (True, False):
        out = tmp_path / f"stderr-{journal}.log"
        with out.open("wb") as stderr:
            info = os.fstat(stderr.fileno())
            env = {
                **os.environ,
                "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}" if journal else "",
            }
            subprocess.run(
                [sys.executable, "-c", script], stderr=stderr, env=env, check=True, timeout=60
            )
        lines = out.read_text().splitlines()
        if journal:
            assert [line[:4] for line in lines] == ["<6>{", "<4>{", "<3>{"]
            assert json.loads(lines[1][3:])["event"] == "source down"
        else:
            assert [line[:1] for line in lines] == ["{", "{", "{"]  # plain JSON elsewhere
