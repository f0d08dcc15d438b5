"""Reading the TOML file: ${ENV} and *_file secrets, then validation in the user's words."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from monitor.config.model import Config
from monitor.config.sources import SOURCE_TYPES, SourceConfig
from monitor.config.types import SECRET_KEYS
from monitor.words import counted

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The config is unusable; `problems` holds one "key.path: message" line per mistake."""

    def count(self) -> str:
        """'1 problem' / '3 problems'."""
        n = len(self.problems)
        return counted(n, "problem")

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _interpolate(value: Any, path: str, problems: list[str]) -> Any:
    """Replace ${VAR} in every string; a missing variable is a problem at that path."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_REF.sub(replace, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, _join(path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _read_secret_files(value: Any, path: str, problems: list[str], base: Path) -> Any:
    """Resolve `<secret>_file` keys into `<secret>` by reading the file."""
    if isinstance(value, list):
        return [_read_secret_files(v, f"{path}[{i}]", problems, base) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        secret = key.removesuffix("_file")
        if key.endswith("_file") and secret in SECRET_KEYS:
            key_path = _join(path, key)
            if secret in value:
                problems.append(f"{key_path}: give either {secret} or {key}, not both")
                continue
            file_path = _secret_path(str(item), base)
            try:
                out[secret] = file_path.read_text(encoding="utf-8").strip()
            except OSError as err:
                problems.append(f"{key_path}: cannot read {file_path}: {err.strerror}")
                out[secret] = ""  # already reported; don't add "field required" on top
            continue
        out[key] = _read_secret_files(item, _join(path, key), problems, base)
    return out


def _secret_path(name: str, base: Path) -> Path:
    """Where a `*_file` value points: a bare name is a systemd credential when the service has
    them ($CREDENTIALS_DIRECTORY, from LoadCredential=); else a path, relative to the config."""
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and "/" not in name and (Path(credentials) / name).is_file():
        return Path(credentials) / name
    return base / name


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _known_keys() -> frozenset[str]:
    """Every key the config knows, in any section (for did-you-mean hints)."""
    models: list[type[BaseModel]] = [Config]
    keys: set[str] = set()
    while models:
        model = models.pop()
        for name, info in model.model_fields.items():
            keys.add(name)
            if name in SECRET_KEYS:
                keys.add(f"{name}_file")
            for arg in typing.get_args(info.annotation) or (info.annotation,):
                for inner in typing.get_args(arg) or (arg,):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        models.append(inner)
    for source in typing.get_args(typing.get_args(SourceConfig)[0]):
        keys.update(source.model_fields)
    return frozenset(keys)


def _in_words(error: Any) -> str:
    """A pydantic error as the operator would say it: what is wrong and how to fix it."""
    kind = error["type"]
    key = error["loc"][-1] if error["loc"] else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(key), _known_keys(), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        if key in SECRET_KEYS:
            return f"missing: set {key} (or {key}_file = a file that holds it)"
        return f"missing: this key is required ({key})" if key else "missing"
    if kind == "too_short":
        return "must list at least one entry"
    return str(error["msg"]).removeprefix("Value error, ")


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    """('sources', 1, 'facebook_page', 'page_id') -> 'sources[1].page_id'."""
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif i > 0 and isinstance(loc[i - 1], int) and part in _TAGS:
            continue  # the discriminator tag pydantic inserts for tagged unions
        else:
            path = _join(path, part)
    return path


_TAGS = SOURCE_TYPES


def _reference_problems(data: dict[str, Any]) -> Iterator[str]:
    """Cross-references pydantic cannot see: unknown policy/calendar names, duplicate names."""
    calendars = set(data.get("calendars", {}) or {}) | {"always", "office"}
    policies = set(data.get("policies", {}) or {}) | {"default"}
    for name, policy in (data.get("policies") or {}).items():
        coverage = policy.get("coverage", "always") if isinstance(policy, dict) else "always"
        if isinstance(coverage, str) and coverage not in calendars:
            defined = sorted(calendars)
            yield f"policies.{name}.coverage: unknown calendar {coverage!r} (defined: {defined})"
    seen: dict[str, int] = {}
    sources = data.get("sources")
    if not isinstance(sources, list):
        return
    for i, source in enumerate(sources):
        if not isinstance(source, dict):
            continue
        policy = source.get("policy", "default")
        if isinstance(policy, str) and policy not in policies:
            yield f"sources[{i}].policy: unknown policy {policy!r} (defined: {sorted(policies)})"
        calendar = source.get("calendar", "office")
        if isinstance(calendar, str) and calendar not in calendars:
            defined = sorted(calendars)
            yield f"sources[{i}].calendar: unknown calendar {calendar!r} (defined: {defined})"
        name = source.get("name")
        if isinstance(name, str):
            if name in seen:
                first = seen[name]
                yield f"sources[{i}].name: duplicate source name {name!r} (also sources[{first}])"
            seen.setdefault(name, i)


def parse_config(data: dict[str, Any], *, base_dir: Path | None = None) -> Config:
    """Validate already-parsed TOML data; raise ConfigError with every problem."""
    problems: list[str] = []
    data = _interpolate(data, "", problems)
    data = _read_secret_files(data, "", problems, base_dir or Path.cwd())
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        for error in err.errors():
            where = _loc_to_path(error["loc"]) or "(top level)"
            problems.append(f"{where}: {_in_words(error)}")
    problems.extend(_reference_problems(data))
    if problems or config is None:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path) -> Config:
    """Read, interpolate and validate a TOML config file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError([f"{path}: cannot read config: {err.strerror}"]) from err
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError([f"{path}: invalid TOML: {err}"]) from err
    return parse_config(data, base_dir=path.parent)
