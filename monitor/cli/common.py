"""What every subcommand shares: loading the config, logging, the brand's time zone."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TypeAlias
from zoneinfo import ZoneInfo

from monitor.config import Config, ConfigError, load_config
from monitor.logging import configure_logging

if TYPE_CHECKING:
    # argparse has no public name for what add_subparsers() returns.
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def load_or_exit(path: str) -> Config:
    """The config at `path`; on a problem, every problem on stderr and exit code 1."""
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"{path}: {err.count()} in the config:", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(1) from err


def configure_from(config: Config) -> None:
    """Set up logging as the config says, with its secrets redacted."""
    configure_logging(level=config.log.level, fmt=config.log.format, secrets=config.secrets())


def brand_zone(config: Config, brand: str | None) -> ZoneInfo:
    """The time zone of the brand's (else the first source's) office calendar."""
    source = next((s for s in config.sources if brand in (None, s.brand)), config.sources[0])
    return config.calendar(source.calendar).timezone
