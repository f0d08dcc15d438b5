"""The config file: its schema (one module per part) and loading it with every problem listed."""

from monitor.config.alerts import AlertsConfig, ReceiverConfig, RosterConfig
from monitor.config.load import ConfigError, load_config, parse_config
from monitor.config.model import (
    DEFAULT_DATABASE_URL,
    ApiToken,
    CalendarConfig,
    ClusterConfig,
    Config,
    FacebookWebhookConfig,
    HttpConfig,
    LogConfig,
    PolicyConfig,
)
from monitor.config.sources import (
    DEFAULT_GRAPH_API,
    BlueskyConfig,
    DiscourseConfig,
    FacebookPageConfig,
    FlarumConfig,
    GraphSourceConfig,
    InstagramConfig,
    InteractionConfig,
    MastodonConfig,
    MessengerConfig,
    PhpbbAtomConfig,
    SourceConfig,
)
from monitor.config.types import SECRET_KEYS

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_GRAPH_API",
    "SECRET_KEYS",
    "AlertsConfig",
    "ApiToken",
    "BlueskyConfig",
    "CalendarConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "DiscourseConfig",
    "FacebookPageConfig",
    "FacebookWebhookConfig",
    "FlarumConfig",
    "GraphSourceConfig",
    "HttpConfig",
    "InstagramConfig",
    "InteractionConfig",
    "LogConfig",
    "MastodonConfig",
    "MessengerConfig",
    "PhpbbAtomConfig",
    "PolicyConfig",
    "ReceiverConfig",
    "RosterConfig",
    "SourceConfig",
    "load_config",
    "parse_config",
]
