"""The `apprise` receiver's config (URLs are secrets, checked by Apprise at load time) and its
short phone text."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.formats import phone_text
from monitor.alerts.models import AlertItem, Duty, Notification
from monitor.config import ConfigError, load_config
from monitor.config.types import url_secrets

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config.example.toml"
SOURCE = """
[[sources]]
type = "facebook_page"
name = "acme-fb"
brand = "acme"
page_id = "1"
access_token = "EAAtokenvalue"
"""
MAIL = "mailtos://alerts:Mail-pw-55aa@smtp.example.org?to=nina@example.org"
TELEGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567"
NTFY = "ntfys://webcare:Ntfy-pw-66bb@ntfy.example.org/webcare-alerts"


def load(tmp_path: Path, receiver: str) -> object:
    path = tmp_path / "c.toml"
    path.write_text(SOURCE + "[[receivers]]\n" + receiver, encoding="utf-8")
    return load_config(path)


def problems(tmp_path: Path, receiver: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, receiver)
    return caught.value.problems


def test_urls_load_and_every_secret_part_is_redacted(tmp_path: Path) -> None:
    config = load(tmp_path, f'name = "phones"\ntype = "apprise"\nurls = ["{MAIL}", "{TELEGRAM}"]\n')
    (receiver,) = config.receivers  # type: ignore[attr-defined]
    assert [u.get_secret_value() for u in receiver.urls] == [MAIL, TELEGRAM]
    assert MAIL not in repr(receiver)
    secrets = config.secrets()  # type: ignore[attr-defined]
    assert {MAIL, TELEGRAM, "Mail-pw-55aa", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"} <= set(
        secrets
    )
    assert "smtp.example.org" not in secrets  # an address is not a secret


def test_urls_file_holds_one_url_a_line(tmp_path: Path) -> None:
    (tmp_path / "apprise-urls").write_text(
        f"# the team's phones\n{MAIL}\n\n  {NTFY}  \n", encoding="utf-8"
    )
    config = load(tmp_path, 'name = "phones"\ntype = "apprise"\nurls_file = "apprise-urls"\n')
    (receiver,) = config.receivers  # type: ignore[attr-defined]
    assert [u.get_secret_value() for u in receiver.urls] == [MAIL, NTFY]
    assert "Ntfy-pw-66bb" in config.secrets()  # type: ignore[attr-defined]


def test_a_url_apprise_cannot_use_is_a_config_error_that_never_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = "nosuchservice://user:Secret-pw-77cc@host/x"
    found = problems(tmp_path, f'name = "phones"\ntype = "apprise"\nurls = ["{MAIL}", "{bad}"]\n')
    assert len(found) == 1
    assert found[0].startswith("receivers[0].urls: URL 2 of 2: Apprise cannot use a nosuchservice")
    missing_parts = "mailto://"  # no host, no recipient
    (other,) = problems(tmp_path, f'name = "p"\ntype = "apprise"\nurls = ["{missing_parts}"]\n')
    assert "URL 1 of 1: Apprise cannot use a mailto:// URL" in other
    shown = capsys.readouterr()
    for text in (*found, other, shown.out, shown.err, caplog.text):
        assert "Secret-pw-77cc" not in text


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ('name = "p"\ntype = "apprise"\n', "an apprise receiver needs `urls`"),
        ('name = "p"\ntype = "apprise"\nurls = []\n', "an apprise receiver needs `urls`"),
        (
            f'name = "p"\ntype = "apprise"\nurls = ["{NTFY}"]\nurl = "https://x.example/hook"\n',
            "an apprise receiver needs `urls` (a list), and no `url`",
        ),
        (
            f'name = "p"\ntype = "webhook"\nurl = "https://x.example/hook"\nurls = ["{NTFY}"]\n',
            "`urls` is for apprise receivers",
        ),
    ],
)
def test_urls_belong_to_apprise_receivers(tmp_path: Path, receiver: str, message: str) -> None:
    (problem,) = problems(tmp_path, receiver)
    assert message in problem


def test_the_commented_example_block_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FB_PAGE_TOKEN", "EAAexampletoken")
    monkeypatch.setenv("WEBCARE_MAIL_URL", MAIL)
    monkeypatch.setenv("WEBCARE_TELEGRAM_URL", TELEGRAM)
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = (
        lines.index(
            '#   type = "apprise"                     # a short text by e-mail, SMS,'
            " Telegram, ntfy, ..."
        )
        - 2
    )
    assert lines[start] == "# [[receivers]]"
    block = ["[[receivers]]"]
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line.removeprefix("#   "))
    path = tmp_path / "example.toml"
    path.write_text("\n".join(lines + block) + "\n", encoding="utf-8")
    config = load_config(path)
    phones = config.receivers[-1]
    assert phones.type == "apprise"
    assert [u.get_secret_value() for u in phones.urls or ()] == [MAIL, TELEGRAM]


T = datetime(2026, 1, 15, 21, 40, tzinfo=UTC)


def item(number: int, **changes: object) -> AlertItem:
    values: dict[str, object] = {
        "item_id": number,
        "permalink": f"https://forum.example/t/{number}",
        "author": "Jan\nJansen",
        "excerpt": "Where is my order? " * 10,
        "created_at": T - timedelta(minutes=22),
        "due_at": T + timedelta(minutes=8),
        "period": "after_hours",
        "state": "warning",
        "ack_url": f"https://webcare.example/act/{number}/ack?exp=1&sig=ab",
    }
    values.update(changes)
    return AlertItem(**values)  # type: ignore[arg-type]


def test_the_phone_text_is_short_and_says_brand_platform_local_time_waiting_and_link() -> None:
    n = Notification(
        id="w",
        kind="warning",
        brand="Acme",
        source="acme-forum",
        platform="discourse",
        created_at=T,
        items=tuple(item(i) for i in range(1, 6)),
        duty=None,
        timezone="Europe/Amsterdam",
    )
    title, body = phone_text(n)
    assert title == "Warning: 5 consumer posts due soon on acme-forum (Acme)"
    lines = body.splitlines()
    assert lines[0] == "Acme · Discourse · 22:40 CET (+01:00)"
    assert lines[2].startswith('Jan Jansen: "Where is my order?')
    assert lines[2].endswith('…"') and len(lines[2]) < 100
    assert lines[3] == "Waiting 22 min, due in 8 min (22:48 CET (+01:00))"
    assert lines[4] == "https://forum.example/t/1"
    assert lines[5] == "Ack: https://webcare.example/act/1/ack?exp=1&sig=ab"
    assert body.count("Ack: ") == 3
    assert "and 2 more" in lines
    assert lines[-1] == "Nobody on duty (roster gap)."


def test_a_link_that_is_not_http_is_left_out() -> None:
    n = Notification(
        id="b",
        kind="breach",
        brand="Acme",
        source="acme-fb",
        platform="facebook_page",
        created_at=T,
        items=(item(1, permalink="javascript:alert(1)", state="breached"),),
        duty=Duty(student="nina"),
        timezone="UTC",
    )
    _title, body = phone_text(n)
    assert "javascript" not in body
    assert body.splitlines()[0] == "Acme · Facebook · 21:40 UTC"


def test_url_secrets_finds_passwords_tokens_and_secret_query_values() -> None:
    assert url_secrets(MAIL) == [MAIL, "Mail-pw-55aa"]
    assert url_secrets(TELEGRAM)[1] == "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    assert "zz-token-value" in url_secrets("ntfys://ntfy.sh/topic?token=zz-token-value")


def test_the_apprise_blocks_in_docs_alerts_load(tmp_path: Path) -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text("utf-8")
    section = doc.split("## Apprise: e-mail, SMS, Telegram, ntfy", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2
    (tmp_path / "apprise-lead-urls").write_text(f"{MAIL}\n", encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text(SOURCE + "".join(blocks), encoding="utf-8")
    config = load_config(path)
    phones, lead = config.receivers
    assert [u.get_secret_value().split("://")[0] for u in phones.urls or ()] == [
        "mailtos",
        "tgram",
        "ntfys",
        "twilio",
    ]
    assert [u.get_secret_value() for u in lead.urls or ()] == [MAIL]
