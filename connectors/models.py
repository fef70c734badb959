"""The data a connector takes and returns, with the original system's field names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "JobData",
    "JobProgress",
    "JobResult",
    "OutputFile",
    "ProgressCallback",
    "ServiceMetadata",
    "no_progress",
]

OutputKind = Literal["image", "video", "audio", "text", "binary"]


class JobData(BaseModel):
    """A job as a connector sees it. `ctx` (storage context) is never sent to a provider."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    payload: dict[str, Any] = Field(default_factory=dict)
    requirements: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    ctx: dict[str, Any] | None = None


class OutputFile(BaseModel):
    """A file a job produced and saved."""

    filename: str
    path: str
    type: OutputKind
    size_bytes: int = Field(ge=0)
    mime_type: str | None = None
    metadata: dict[str, Any] | None = None


class ServiceMetadata(BaseModel):
    """What the provider said about how it ran the job."""

    service_version: str | None = None
    service_type: str | None = None
    service_job_id: str | None = None
    model_used: str | None = None
    processing_stats: dict[str, Any] | None = None


class JobResult(BaseModel):
    """The typed result of a job. A connector returns only successes; failures raise."""

    success: bool = True
    data: dict[str, Any] | None = None
    error: str | None = None
    processing_time_ms: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    output_files: list[OutputFile] = Field(default_factory=list)
    service_metadata: ServiceMetadata | None = None


class JobProgress(BaseModel):
    """A progress report from a running job (0-100)."""

    job_id: str
    progress: float = Field(ge=0, le=100)
    message: str | None = None
    current_step: str | None = None
    total_steps: int | None = None
    estimated_completion_ms: int | None = None
    metadata: dict[str, Any] | None = None


ProgressCallback = Callable[[JobProgress], None]


def no_progress(_progress: JobProgress) -> None:
    """A progress callback that drops every report."""
