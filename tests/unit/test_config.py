"""Tests for monitor.config: validation, defaults, interpolation, secret files, error reporting."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from monitor.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_GRAPH_API,
    ConfigError,
    FacebookPageConfig,
    HttpConfig,
    LogConfig,
    PolicyConfig,
    load_config,
    parse_config,
)
from monitor.config.sources import SOURCE_TYPES

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config.example.toml"

MINIMAL_TOML = """
[[sources]]
type = "facebook_page"
name = "acme_fb"
brand = "acme"
page_id = "1234567890"
access_token = "EAAtokenvalue"
"""


def _source(**overrides: Any) -> dict[str, Any]:
    source: dict[str, Any] = {
        "type": "facebook_page",
        "name": "acme_fb",
        "brand": "acme",
        "page_id": "1234567890",
        "access_token": "EAAtokenvalue",
    }
    source.update(overrides)
    return {k: v for k, v in source.items() if v is not None}


def _problems(data: dict[str, Any], base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=base_dir)
    return info.value.problems


def _write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_config_loads_from_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL_TOML))
    (source,) = config.sources
    assert isinstance(source, FacebookPageConfig)
    assert source.name == "acme_fb"
    assert source.brand == "acme"
    assert source.page_id == "1234567890"
    assert source.access_token.get_secret_value() == "EAAtokenvalue"
    assert config.secrets() == ["EAAtokenvalue"]


def test_secret_is_not_shown_in_repr() -> None:
    config = parse_config({"sources": [_source()]})
    assert "EAAtokenvalue" not in repr(config)
    assert "EAAtokenvalue" not in str(config.model_dump())


def test_defaults() -> None:
    config = parse_config({"sources": [_source()]})
    source = config.sources[0]
    assert config.database_url == DEFAULT_DATABASE_URL
    assert config.database_url.startswith("sqlite+aiosqlite:///")
    assert config.http == HttpConfig(host="127.0.0.1", port=9464)
    assert config.log == LogConfig(level="info", format="auto")
    assert source.policy == "default"
    assert source.calendar == "office"
    assert source.poll_interval == 60.0
    assert source.api_base_url == DEFAULT_GRAPH_API == "https://graph.facebook.com/v26.0"

    policy = config.policy("default")
    assert policy == PolicyConfig()
    assert (policy.office_hours, policy.after_hours) == (3600.0, 1800.0)
    assert policy.warn_at == 0.75
    assert policy.reply_match == "thread"
    assert policy.target("office_hours") == 3600.0
    assert policy.target("after_hours") == 1800.0


def test_builtin_calendars() -> None:
    config = parse_config({"sources": [_source()]})
    office = config.calendar("office")
    assert office.timezone.key == "Europe/Amsterdam"
    assert not office.always
    # Built-in office hours: Monday to Friday, 09:00-17:00.
    assert sorted({i.weekday for i in office.intervals}) == [0, 1, 2, 3, 4]
    assert {(i.start.hour, i.end.hour) for i in office.intervals} == {(9, 17)}
    assert config.calendar("always").always


def test_overriding_builtin_office_and_default() -> None:
    config = parse_config(
        {
            "calendars": {"office": {"timezone": "America/New_York", "hours": ["sat 10:00-14:00"]}},
            "policies": {"default": {"office_hours": "2h"}},
            "sources": [_source()],
        }
    )
    office = config.calendar("office")
    assert office.timezone.key == "America/New_York"
    assert [i.weekday for i in office.intervals] == [5]
    assert config.policy("default").office_hours == 7200.0
    assert config.policy("default").after_hours == 1800.0


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FB_TOKEN", "EAAfromenv")
    monkeypatch.setenv("DB_PASSWORD", "pw")
    config = parse_config(
        {
            "database_url": "postgresql+asyncpg://webcare:${DB_PASSWORD}@db/webcare",
            "sources": [_source(access_token="${FB_TOKEN}")],
        }
    )
    assert config.database_url == "postgresql+asyncpg://webcare:pw@db/webcare"
    assert config.sources[0].access_token.get_secret_value() == "EAAfromenv"


def test_missing_env_variable_is_reported_with_its_key_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WEBCARE_NOT_SET", raising=False)
    problems = _problems({"sources": [_source(), _source(name="b", page_id="${WEBCARE_NOT_SET}")]})
    assert "sources[1].page_id: environment variable WEBCARE_NOT_SET is not set" in problems


def test_access_token_file_is_read_relative_to_the_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    (conf_dir / "secrets").mkdir(parents=True)
    (conf_dir / "secrets" / "fb-token").write_text("EAAfromfile\n", encoding="utf-8")
    text = MINIMAL_TOML.replace(
        'access_token = "EAAtokenvalue"', 'access_token_file = "secrets/fb-token"'
    )
    path = _write(conf_dir, text)
    # Run from somewhere else: the path must not depend on the working directory.
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(path)
    assert config.sources[0].access_token.get_secret_value() == "EAAfromfile"


def test_absolute_access_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("  EAAabsolute  \n", encoding="utf-8")
    config = parse_config(
        {"sources": [_source(access_token=None, access_token_file=str(token))]},
        base_dir=Path("/nonexistent"),
    )
    assert config.sources[0].access_token.get_secret_value() == "EAAabsolute"


def test_unreadable_access_token_file_is_reported(tmp_path: Path) -> None:
    problems = _problems(
        {"sources": [_source(access_token=None, access_token_file="missing-token")]},
        base_dir=tmp_path,
    )
    file_problems = [p for p in problems if p.startswith("sources[0].access_token_file: ")]
    assert file_problems == [
        f"sources[0].access_token_file: cannot read {tmp_path / 'missing-token'}: "
        "No such file or directory"
    ]


def test_access_token_and_access_token_file_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("EAAfromfile", encoding="utf-8")
    problems = _problems(
        {"sources": [_source(access_token_file="token")]},
        base_dir=tmp_path,
    )
    assert problems == [
        "sources[0].access_token_file: give either access_token or access_token_file, not both"
    ]


def test_every_mistake_is_reported_with_its_key_path() -> None:
    problems = _problems(
        {
            "http": {"port": 70000},
            "sources": [
                _source(poll_interval="often"),
                _source(name="second", page_id=None),
            ],
        }
    )
    assert len(problems) == 3, problems
    assert "sources[1].page_id: missing: this key is required (page_id)" in problems
    assert any(p.startswith("http.port: ") for p in problems)
    assert any(p.startswith("sources[0].poll_interval: invalid duration 'often'") for p in problems)


def test_config_error_message_lists_one_problem_per_line() -> None:
    error = ConfigError(["a: one", "b: two"])
    assert str(error) == "a: one\nb: two"


def test_missing_sources_and_unknown_keys() -> None:
    problems = _problems({"bogus": 1})
    assert "sources: missing: this key is required (sources)" in problems
    assert "bogus: unknown key 'bogus'" in problems


def test_mistakes_are_said_in_the_operators_words() -> None:
    source = _source(pol_interval="60s")
    del source["access_token"]
    problems = _problems({"htpp": {}, "sources": [source]})
    assert "htpp: unknown key 'htpp' (did you mean 'http'?)" in problems
    assert (
        "sources[0].pol_interval: unknown key 'pol_interval' (did you mean 'poll_interval'?)"
        in (problems)
    )
    assert (
        "sources[0].access_token: missing: set access_token (or access_token_file = a file that"
        " holds it)" in problems
    )


def test_unknown_source_type_is_reported() -> None:
    problems = _problems({"sources": [_source(type="myspace")]})
    assert len(problems) == 1
    assert problems[0].startswith("sources[0]: ")
    assert "myspace" in problems[0]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("45m", 2700.0), ("1h30m", 5400.0), ("2d", 172800.0), (120, 120.0)],
)
def test_durations(text: str | int, seconds: float) -> None:
    config = parse_config(
        {
            "policies": {"fast": {"office_hours": text, "after_hours": text}},
            "sources": [_source(policy="fast", poll_interval=text)],
        }
    )
    assert config.sources[0].poll_interval == seconds
    assert config.policy("fast").office_hours == seconds
    assert config.policy("fast").after_hours == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "1x", "", "0s", -5, True])
def test_invalid_durations_are_reported(bad: object) -> None:
    problems = _problems({"policies": {"p": {"after_hours": bad}}, "sources": [_source()]})
    assert len(problems) == 1
    assert problems[0].startswith("policies.p.after_hours: ")


def test_unknown_policy_and_calendar_names() -> None:
    problems = _problems(
        {
            "calendars": {"shifts": {"timezone": "Europe/Amsterdam"}},
            "sources": [_source(policy="gold", calendar="nights")],
        }
    )
    assert len(problems) == 2
    calendar, policy = sorted(problems)
    assert calendar.startswith("sources[0].calendar: unknown calendar 'nights'")
    assert "shifts" in calendar
    assert policy.startswith("sources[0].policy: unknown policy 'gold'")


def test_defined_and_builtin_names_are_accepted() -> None:
    config = parse_config(
        {
            "calendars": {"shifts": {"hours": ["mon-sun 07:00-23:00"]}},
            "policies": {"gold": {"after_hours": "15m"}},
            "sources": [
                _source(name="a", policy="gold", calendar="shifts"),
                _source(name="b", calendar="always"),
            ],
        }
    )
    assert config.calendar("shifts").timezone.key == "Europe/Amsterdam"
    assert config.policy("gold").after_hours == 900.0


def test_duplicate_source_names() -> None:
    problems = _problems({"sources": [_source(), _source(page_id="2"), _source(page_id="3")]})
    assert problems == [
        "sources[1].name: duplicate source name 'acme_fb' (also sources[0])",
        "sources[2].name: duplicate source name 'acme_fb' (also sources[0])",
    ]


def test_calendar_and_policy_values_are_validated() -> None:
    problems = _problems(
        {
            "calendars": {"bad": {"timezone": "Mars/Olympus", "hours": ["weekdays 9-5"]}},
            "policies": {"p": {"warn_at": 1.5, "reply_match": "any"}},
            "sources": [_source()],
        }
    )
    paths = sorted(p.split(":", 1)[0] for p in problems)
    assert paths == [
        "calendars.bad.hours",
        "calendars.bad.timezone",
        "policies.p.reply_match",
        "policies.p.warn_at",
    ]


def test_invalid_toml_gives_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, '[http]\nport = 9464\nhost = "127.0.0.1\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: invalid TOML: ")
    assert re.search(r"line \d+", problem)


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: cannot read config: No such file or directory"]


# --- deploy/config.example.toml -------------------------------------------------------------


def _example_data() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FB_PAGE_TOKEN", "EAAexampletoken")
    config = load_config(EXAMPLE)
    assert config == parse_config(_example_data(), base_dir=EXAMPLE.parent)
    (source,) = config.sources
    assert source.access_token.get_secret_value() == "EAAexampletoken"
    assert config.database_url.startswith("sqlite+aiosqlite:///")
    assert config.calendar("office").timezone.key == "Europe/Amsterdam"
    assert config.policy("default").warn_at == 0.75


def test_example_config_needs_the_token_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FB_PAGE_TOKEN", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE)
    assert info.value.problems == [
        "sources[0].access_token: environment variable FB_PAGE_TOKEN is not set"
    ]


@pytest.mark.parametrize(
    ("section", "model"),
    [
        (lambda d: d["sources"][0], FacebookPageConfig),
        (lambda d: d["policies"]["default"], PolicyConfig),
        (lambda d: d["http"], HttpConfig),
        (lambda d: d["log"], LogConfig),
    ],
    ids=["facebook_page", "policy", "http", "log"],
)
def test_example_config_shows_every_key(section: Any, model: type[Any]) -> None:
    shown = set(section(_example_data()))
    missing = set(model.model_fields) - shown
    assert not missing, f"deploy/config.example.toml should document {sorted(missing)}"


def _with_forum_sources() -> str:
    """The example with its commented forum source blocks switched on."""
    lines, in_block = [], False
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line == "# [[sources]]":
            in_block = True
            line = "[[sources]]"
        elif in_block and line.startswith("#   "):
            line = line.removeprefix("#   ")
        else:
            in_block = False
        lines.append(line)
    return "\n".join(lines)


def test_example_config_shows_every_source_type(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FB_PAGE_TOKEN", "EAAexampletoken")
    monkeypatch.setenv("DISCOURSE_API_KEY", "dk")
    monkeypatch.setenv("FLARUM_API_KEY", "fk")
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "mt")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "bp")
    text = _with_forum_sources()
    config = load_config(_write(tmp_path, text))
    by_type = {source.type: source for source in config.sources}
    assert set(by_type) == SOURCE_TYPES
    data = tomllib.loads(text)
    common = set(FacebookPageConfig.model_fields) - {
        "type",
        "page_id",
        "access_token",
        "api_base_url",
        "app_secret",
    }
    for shown in data["sources"][1:]:
        model = type(by_type[shown["type"]])
        # Each forum block shows every key of its own type (the common ones are shown above).
        missing = set(model.model_fields) - common - set(shown)
        assert not missing, f"{shown['type']} block should show {sorted(missing)}"


def test_example_config_commented_alternatives_are_valid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Uncommenting the PostgreSQL URL and the extra calendar gives a valid config too."""
    monkeypatch.setenv("FB_PAGE_TOKEN", "EAAexampletoken")
    monkeypatch.setenv("WEBCARE_DB_PASSWORD", "pw")
    lines = []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith('database_url = "sqlite'):
            continue
        if re.match(r"# (database_url|\[calendars\.|timezone|hours) ?[=\[]?", line):
            line = line.removeprefix("# ")
        lines.append(line)
    text = "\n".join(lines)
    assert "[calendars.office_be]" in text.splitlines()
    config = load_config(_write(tmp_path, text))
    assert config.database_url == "postgresql+asyncpg://webcare:pw@127.0.0.1:5432/webcare"
    assert config.calendar("office_be").timezone.key == "Europe/Brussels"


def test_a_postgres_url_without_the_driver_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "asyncpg" else real(name, *a)
    )
    path = tmp_path / "pg.toml"
    path.write_text(
        'database_url = "postgresql+asyncpg://webcare@127.0.0.1/webcare"\n'
        '[[sources]]\ntype = "facebook_page"\nname = "fb"\nbrand = "acme"\n'
        'page_id = "1"\naccess_token = "t"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        "database_url: the PostgreSQL driver is not installed: pip install"
        " 'webcare-monitor[postgres]' (requirements/service.lock includes it)"
    ]


def test_a_bare_secret_file_name_is_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LoadCredential=fb-token:... puts the file in $CREDENTIALS_DIRECTORY; the config says
    access_token_file = "fb-token" and works under any unit name."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "fb-token").write_text("EAAG-from-systemd\n", encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text(
        '[[sources]]\ntype = "facebook_page"\nname = "fb"\nbrand = "acme"\npage_id = "1"\n'
        'access_token_file = "fb-token"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    (source,) = load_config(path).sources
    assert source.access_token.get_secret_value() == "EAAG-from-systemd"  # type: ignore[union-attr]
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError) as caught:  # outside systemd: a path next to the config
        load_config(path)
    assert caught.value.problems[0].startswith(
        f"sources[0].access_token_file: cannot read {tmp_path / 'fb-token'}"
    )


@pytest.mark.parametrize(
    ("people", "problem"),
    [
        (
            '[roster.people.nina]\nslack = "U024BE7LH"\n',
            "roster: no [roster.people] entry for 'bram', 'lisa': alerts for them could"
            " mention nobody (add their handles)",
        ),
        (
            "[roster.people.nina]\n[roster.people.bram]\n[roster.people.lisa]\n"
            "[roster.people.nena]\n",
            "roster: [roster.people] names 'nena', who is in no shift, override or lead (a typo?)",
        ),
        (
            '[roster.people.nina]\nslack = "@nina"\n[roster.people.bram]\n[roster.people.lisa]\n',
            "roster.people.nina.slack: '@nina' is not a Slack member id such as U024BE7LH",
        ),
    ],
)
def test_roster_people_are_checked(tmp_path: Path, people: str, problem: str) -> None:
    path = tmp_path / "people.toml"
    path.write_text(
        '[[sources]]\ntype = "facebook_page"\nname = "fb"\nbrand = "acme"\npage_id = "1"\n'
        'access_token = "t"\n[roster]\nlead = "lisa"\n[[roster.shifts]]\n'
        'when = "mon-sun 20:00-08:00"\nstudent = "nina"\nbackup = "bram"\n' + people,
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0].startswith(problem), caught.value.problems


def test_the_roster_ics_is_a_secret_given_inline_or_as_a_file(tmp_path: Path) -> None:
    url = "https://calendar.example/ical/team/private-0a1b2c3d4e5f6a7b8c9d/basic.ics"
    (tmp_path / "ics-url").write_text(url + "\n", encoding="utf-8")
    path = _write(tmp_path, MINIMAL_TOML + '[roster]\nics_file = "ics-url"\n')

    config = load_config(path)

    assert config.roster.ics == url
    assert url in config.secrets() and "private-0a1b2c3d4e5f6a7b8c9d" in config.secrets()
    # A path to a calendar file is not a secret.
    local = parse_config({"sources": [_source()], "roster": {"ics": "/srv/team.ics"}})
    assert local.secrets() == ["EAAtokenvalue"]


def test_ics_file_naming_the_calendar_itself_is_explained(tmp_path: Path) -> None:
    (tmp_path / "team.ics").write_text("BEGIN:VCALENDAR\nEND:VCALENDAR\n", encoding="utf-8")

    problems = _problems({"sources": [_source()], "roster": {"ics_file": "team.ics"}}, tmp_path)

    assert problems == [
        "roster.ics: this is a calendar's content: ics (or the file ics_file names) holds the"
        " calendar's URL or path, not the calendar itself"
    ]
