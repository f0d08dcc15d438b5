"""webcare-monitor: measures how fast brands answer consumers on their pages and forums."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("webcare-monitor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
