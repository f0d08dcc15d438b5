"""This instance's name among the instances sharing one database.

Leases, logs and `webcare_instance_sources{instance}` use it, so it must be unique among the
running instances: `[cluster] instance` (which `run --instance` sets), else `$WEBCARE_INSTANCE`,
else the host name (unique per container and per machine, so one instance per host needs
nothing set).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config import Config

ENV_VAR = "WEBCARE_INSTANCE"


def instance_name(config: Config) -> str:
    """The config's instance name, else $WEBCARE_INSTANCE (if not blank), else the host name."""
    if config.cluster.instance is not None:
        return config.cluster.instance
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return from_env
    return socket.gethostname()
