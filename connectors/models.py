"""The data a connector takes and returns, with the original system's field names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from connectors.context import StorageOverrides, storage_overrides
from connectors.journal import JobJournal, NoJournal

__all__ = [
    "JobData",
    "JobProgress",
    "JobResult",
    "OutputFile",
    "ProgressCallback",
    "ServiceMetadata",
    "no_progress",
    "report_progress",
]

OutputKind = Literal["image", "video", "audio", "text", "binary"]


class JobData(BaseModel):
    """A job as a connector sees it. `ctx` (storage context) is never sent to a provider.

    `ctx` is parsed once, when the job is built, into `storage`: a bad storage override raises
    a validation_error here, and every output the job saves reads the same typed value.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    payload: dict[str, Any] = Field(default_factory=dict)
    requirements: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    ctx: dict[str, Any] | None = None
    _storage: StorageOverrides = PrivateAttr(default_factory=StorageOverrides)
    _validated: BaseModel | None = PrivateAttr(default=None)
    _journal: JobJournal = PrivateAttr(default_factory=NoJournal)

    def model_post_init(self, context: Any, /) -> None:
        """Parse `ctx` into `storage` (a ConnectorError, not a pydantic error, when it is bad)."""
        self._storage = storage_overrides(self.ctx)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; a `ctx` given in `update` is parsed again (pydantic would skip it)."""
        copied = super().model_copy(update=update, deep=deep)
        if update and "ctx" in update:
            copied._storage = storage_overrides(copied.ctx)
        if update and "payload" in update:
            copied._validated = None  # checked against the old payload, not this one
        return copied

    def with_validated(self, payload: BaseModel) -> Self:
        """This job carrying its payload already validated, so the connector does not redo it."""
        copied = self.model_copy()
        copied._validated = payload
        return copied

    def with_journal(self, journal: JobJournal) -> Self:
        """This job keeping its checkpoints and paid-call count in `journal`."""
        copied = self.model_copy()
        copied._journal = journal
        return copied

    @property
    def journal(self) -> JobJournal:
        """Where the job's checkpoints live (a `NoJournal` unless the runtime gave one)."""
        return self._journal

    @property
    def validated(self) -> BaseModel | None:
        """The validated payload the worker attached (`with_validated`), or None."""
        return self._validated

    @property
    def storage(self) -> StorageOverrides:
        """The storage overrides `ctx` gives, with `ctx.storage.*` winning over `ctx.*`."""
        return self._storage


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


def report_progress(
    progress: ProgressCallback,
    job: JobData,
    value: float,
    step: str,
    message: str,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Send one progress report for `job` (the modes' shared shorthand)."""
    progress(
        JobProgress(
            job_id=job.id, progress=value, message=message, current_step=step, metadata=metadata
        )
    )
