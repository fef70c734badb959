"""emp-tasks connectors: provider clients that return typed results or raise ConnectorError.

This package never imports Celery: it is usable (and tested) on its own.
"""

from connectors.base import BaseConnector
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobProgress, JobResult, OutputFile

__all__ = [
    "BaseConnector",
    "ConnectorError",
    "FailureReason",
    "FailureType",
    "HealthCheckCapabilities",
    "HealthCheckClass",
    "JobData",
    "JobProgress",
    "JobResult",
    "OutputFile",
]
