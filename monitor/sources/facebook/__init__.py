"""Facebook Page adapter: Graph API feed and comments into domain messages and our error tree."""

# Frugal by design: one feed call brings new posts with their comments (field expansion), the
# other active threads are re-read in Graph batch requests of up to 50 reads per POST (multi-id
# `GET /?ids=` reads are refused from v26.0), and pages on one token share those batches
# (`GraphBatcher`). A throttle in the middle of a poll keeps what came before (see `fetch`).

from monitor.sources.facebook._graph import (
    COMMENT_FIELDS,
    FEED_FIELDS,
    GRAPH_TIME_FORMAT,
    PERMISSION_CODES,
    THROTTLE_CODES,
    TOKEN_CODES,
    TRANSIENT_CODES,
    USAGE_KEYS,
    GraphProduct,
    GraphUsage,
    Raw,
    comment_seq,
    graph_error,
    graph_object,
    parse_graph_time,
    parse_usage,
)
from monitor.sources.facebook._source import FacebookPageSource
from monitor.sources.facebook._state import Pending

__all__ = [
    "COMMENT_FIELDS",
    "FEED_FIELDS",
    "GRAPH_TIME_FORMAT",
    "PERMISSION_CODES",
    "THROTTLE_CODES",
    "TOKEN_CODES",
    "TRANSIENT_CODES",
    "USAGE_KEYS",
    "FacebookPageSource",
    "GraphProduct",
    "GraphUsage",
    "Pending",
    "Raw",
    "comment_seq",
    "graph_error",
    "graph_object",
    "parse_graph_time",
    "parse_usage",
]
