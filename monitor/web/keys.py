"""Typed application keys: the app's shared state, declared once."""

from __future__ import annotations

from aiohttp import ClientSession, web
from prometheus_client.registry import Collector

from monitor.alerts.service import AlertService
from monitor.clock import Clock
from monitor.cluster.member import ClusterMember
from monitor.config import Config
from monitor.deadlines import DeadlineScheduler
from monitor.metrics import Metrics, OpenItems
from monitor.metrics.compliance import RollingCompliance
from monitor.poller import Coordinator
from monitor.store import Store

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
METRICS = web.AppKey("metrics", Metrics)
OPEN_ITEMS = web.AppKey("open_items", OpenItems)
STORE = web.AppKey("store", Store)
HTTP_SESSION = web.AppKey("http_session", ClientSession)
COORDINATOR = web.AppKey("coordinator", Coordinator)
SCHEDULER = web.AppKey("scheduler", DeadlineScheduler)
COMPLIANCE = web.AppKey("compliance", RollingCompliance)
ALERTS = web.AppKey("alerts", AlertService)
CLUSTER = web.AppKey("cluster", ClusterMember)
# What /metrics renders: the registry, less the series other instances export.
EXPORTED = web.AppKey("exported", Collector)
