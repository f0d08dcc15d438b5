"""An instance's name (`--instance`, `[cluster] instance`, $WEBCARE_INSTANCE, the host name)
and what `run`'s options set over the config file."""

from __future__ import annotations

import socket

import pytest

from monitor.cli import build_parser
from monitor.cluster.identity import instance_name
from monitor.config import Config, parse_config
from monitor.reload import Overrides

SOURCE = {
    "type": "facebook_page",
    "name": "acme_fb",
    "brand": "acme",
    "page_id": "1",
    "access_token": "t",
}


def config(**sections: object) -> Config:
    return parse_config({"sources": [SOURCE], **sections})


def test_the_config_names_the_instance_before_the_environment_and_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBCARE_INSTANCE", "from-env")
    assert instance_name(config(cluster={"instance": "from-config"})) == "from-config"


def test_then_webcare_instance_then_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "web-3")
    monkeypatch.setenv("WEBCARE_INSTANCE", "from-env")
    assert instance_name(config()) == "from-env"
    monkeypatch.setenv("WEBCARE_INSTANCE", "  ")  # blank: as if unset
    assert instance_name(config()) == "web-3"
    monkeypatch.delenv("WEBCARE_INSTANCE")
    assert instance_name(config()) == "web-3"


def test_overrides_replace_only_what_they_set() -> None:
    original = config(http={"port": 9464, "host": "0.0.0.0"}, cluster={"lease_seconds": "20s"})
    assert Overrides().apply(original) is original
    changed = Overrides(instance="node-b", port=9465).apply(original)
    assert (changed.cluster.instance, changed.http.port) == ("node-b", 9465)
    assert changed.http.host == "0.0.0.0" and changed.cluster.lease_seconds == 20
    assert changed.sources == original.sources
    only_port = Overrides(port=0).apply(original)
    assert only_port.http.port == 0 and only_port.cluster == original.cluster
    # The same file with the same options is the same config: a reload changes nothing.
    assert Overrides(instance="node-b", port=9465).apply(original) == changed


def test_run_takes_instance_and_port() -> None:
    parser = build_parser()
    args = parser.parse_args(["run", "-c", "c.toml", "--instance", "web-1-2", "--port", "9465"])
    assert (args.config, args.instance, args.port) == ("c.toml", "web-1-2", 9465)
    args = parser.parse_args(["run", "-c", "c.toml"])
    assert (args.instance, args.port) == (None, None)


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--port", "", "'' is not a port number"),  # systemd's ${WEBCARE_PORT} left unset
        ("--port", "65536", "65536 is not a port (0 to 65535)"),
        ("--instance", "", "at least 1 character"),
        ("--instance", "x" * 101, "at most 100 characters"),
    ],
)
def test_run_refuses_a_bad_instance_or_port_in_one_line(
    option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "-c", "c.toml", option, value])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err
