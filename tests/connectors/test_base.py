"""BaseConnector: final process_job, failures always raise, no per-job state, timing, health."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field

from connectors.base import AnyPayload, BaseConnector
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobProgress, JobResult, ProgressCallback

JOB = JobData(id="job-1", type="echo", payload={"prompt": "hi"})


class EchoConnector(BaseConnector):
    """A connector whose process_job_impl runs a function given by the test."""

    service_type: ClassVar[str] = "echo"

    def __init__(
        self,
        impl: Callable[[JobData, ProgressCallback], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.impl = impl or (lambda job, progress: JobResult(data={"echo": job.payload}))

    def process_job_impl(self, job: JobData, payload: Any, progress: ProgressCallback) -> JobResult:
        result: JobResult = self.impl(job, progress)
        return result


def ticking_clock(*readings: float) -> Callable[[], float]:
    values: Iterator[float] = iter(readings)
    return lambda: next(values)


def raise_(exc: BaseException) -> Callable[[JobData, ProgressCallback], JobResult]:
    def impl(_job: JobData, _progress: ProgressCallback) -> JobResult:
        raise exc

    return impl


# --- final guard --------------------------------------------------------------------------------


def test_subclass_defining_process_job_fails_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"process_job\(\).*final.*process_job_impl"):

        class Sneaky(EchoConnector):
            def process_job(  # type: ignore[misc]
                self, job: JobData, progress: ProgressCallback | None = None
            ) -> JobResult:
                return JobResult(success=False, error="hidden")


def test_subclass_defining_check_health_fails_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"check_health\(\).*final.*health_probe"):

        class Sneaky(EchoConnector):
            def check_health(self) -> bool:  # type: ignore[misc]
                return True


def test_guard_names_the_offending_class() -> None:
    with pytest.raises(TypeError, match="Offender"):

        class Offender(BaseConnector):
            def process_job(  # type: ignore[misc]
                self, job: JobData, progress: ProgressCallback | None = None
            ) -> JobResult:
                return JobResult()


def test_mixin_cannot_shadow_the_final_process_job() -> None:
    class ReturnsFailure:
        def process_job(self, job: JobData, progress: ProgressCallback | None = None) -> JobResult:
            return JobResult(success=False, error="hidden failure")

    with pytest.raises(TypeError):

        class Mixed(ReturnsFailure, EchoConnector):  # type: ignore[misc]
            pass


def test_abstract_process_job_impl_is_required() -> None:
    class Incomplete(BaseConnector):
        pass

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]


# --- outcomes -----------------------------------------------------------------------------------


def test_successful_result_is_returned() -> None:
    result = EchoConnector().process_job(JOB)
    assert result.success is True
    assert result.data == {"echo": {"prompt": "hi"}}


def test_progress_reaches_the_callback() -> None:
    seen: list[JobProgress] = []

    def impl(job: JobData, progress: ProgressCallback) -> JobResult:
        progress(JobProgress(job_id=job.id, progress=50, message="half"))
        return JobResult()

    EchoConnector(impl).process_job(JOB, seen.append)
    assert [(p.job_id, p.progress) for p in seen] == [("job-1", 50)]


def test_no_progress_callback_is_fine() -> None:
    def impl(job: JobData, progress: ProgressCallback) -> JobResult:
        progress(JobProgress(job_id=job.id, progress=10))
        return JobResult()

    assert EchoConnector(impl).process_job(JOB).success is True


def test_success_false_result_becomes_a_classified_connector_error() -> None:
    connector = EchoConnector(lambda job, p: JobResult(success=False, error="Rate limit exceeded"))
    with pytest.raises(ConnectorError, match="must raise, not return success=False") as info:
        connector.process_job(JOB)
    error = info.value
    assert "Rate limit exceeded" in str(error)
    assert (error.failure_type, error.failure_reason) == (
        FailureType.RATE_LIMIT,
        FailureReason.REQUESTS_PER_MINUTE,
    )
    assert error.retryable is True
    assert error.service == "echo"
    assert error.context["returned_error"] == "Rate limit exceeded"


def test_success_false_without_a_message_still_raises() -> None:
    connector = EchoConnector(lambda job, p: JobResult(success=False))
    with pytest.raises(ConnectorError, match="must raise") as info:
        connector.process_job(JOB)
    assert info.value.failure_type is FailureType.SYSTEM_ERROR


@pytest.mark.parametrize("returned", [None, {"success": True}, "done"])
def test_non_job_result_return_is_a_permanent_internal_error(returned: object) -> None:
    with pytest.raises(ConnectorError, match="not a JobResult") as info:
        EchoConnector(lambda job, p: returned).process_job(JOB)
    error = info.value
    assert (error.failure_type, error.failure_reason) == (
        FailureType.SYSTEM_ERROR,
        FailureReason.INTERNAL_ERROR,
    )
    assert error.retryable is False
    assert error.service == "echo"


def test_arbitrary_exception_becomes_a_connector_error_with_its_cause() -> None:
    cause = RuntimeError("CUDA out of memory")
    with pytest.raises(ConnectorError) as info:
        EchoConnector(raise_(cause)).process_job(JOB)
    error = info.value
    assert error.__cause__ is cause
    assert error.service == "echo"
    assert "RuntimeError: CUDA out of memory" in str(error)
    assert error.failure_type is FailureType.RESOURCE_LIMIT


def test_unclassifiable_exception_is_a_retryable_unknown_error() -> None:
    with pytest.raises(ConnectorError) as info:
        EchoConnector(raise_(RuntimeError("something odd"))).process_job(JOB)
    assert (info.value.failure_type, info.value.failure_reason) == (
        FailureType.SYSTEM_ERROR,
        FailureReason.UNKNOWN_ERROR,
    )
    assert info.value.retryable is True


def test_a_bug_in_connector_code_is_a_non_retryable_internal_error() -> None:
    with pytest.raises(ConnectorError) as info:
        EchoConnector(raise_(KeyError("images"))).process_job(JOB)
    assert (info.value.failure_reason, info.value.retryable) == (
        FailureReason.INTERNAL_ERROR,
        False,
    )


def test_connector_error_passes_through_unchanged_with_service_attached() -> None:
    raised = ConnectorError(
        "quota gone", failure_reason=FailureReason.INSUFFICIENT_CREDITS, context={"k": "v"}
    )
    with pytest.raises(ConnectorError) as info:
        EchoConnector(raise_(raised)).process_job(JOB)
    named = info.value  # a copy naming the service: the raised error is not rewritten
    assert raised.service is None
    assert named.service == "echo"
    assert named.args[1]["service"] == "echo"  # kept for the result backend
    assert named.failure_reason is FailureReason.INSUFFICIENT_CREDITS
    assert named.context == {"k": "v"}
    assert (named.message, named.timestamp) == (raised.message, raised.timestamp)


def test_connector_error_naming_its_service_passes_through_as_is() -> None:
    raised = ConnectorError("x", service="echo")
    with pytest.raises(ConnectorError) as info:
        EchoConnector(raise_(raised)).process_job(JOB)
    assert info.value is raised


def test_connector_error_keeps_a_service_it_already_names() -> None:
    raised = ConnectorError("x", service="upstream")
    with pytest.raises(ConnectorError) as info:
        EchoConnector(raise_(raised)).process_job(JOB)
    assert info.value.service == "upstream"


# --- no per-job state -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "impl",
    [
        lambda job, p: JobResult(data={"ok": True}),
        raise_(ValueError("boom")),
        raise_(ConnectorError("x")),
        lambda job, p: JobResult(success=False, error="nope"),
    ],
    ids=["success", "exception", "connector_error", "success_false"],
)
def test_process_job_leaves_a_shared_connector_unchanged(impl: Any) -> None:
    # One connector serves every thread of a worker: anything process_job wrote on it would be
    # one job's state read by another.
    connector = EchoConnector(impl)
    before = dict(vars(connector))
    with contextlib.suppress(ConnectorError):
        connector.process_job(JOB)
    assert vars(connector) == before
    assert not hasattr(connector, "status")


def test_connector_takes_no_status_hook() -> None:
    with pytest.raises(TypeError, match="on_status"):
        EchoConnector(on_status=print)


# --- timing -------------------------------------------------------------------------------------


def test_processing_time_is_measured_with_the_injected_clock() -> None:
    result = EchoConnector(clock=ticking_clock(100.0, 101.25)).process_job(JOB)
    assert result.processing_time_ms == 1250


def test_processing_time_overrides_whatever_the_impl_reported() -> None:
    connector = EchoConnector(
        lambda job, p: JobResult(processing_time_ms=999_999), clock=ticking_clock(5.0, 5.25)
    )
    assert connector.process_job(JOB).processing_time_ms == 250


def test_processing_time_with_the_real_clock_is_non_negative() -> None:
    assert EchoConnector().process_job(JOB).processing_time_ms >= 0


# --- health -------------------------------------------------------------------------------------


class ProbeConnector(EchoConnector):
    def __init__(self, probe: Callable[[], Any]) -> None:
        super().__init__()
        self.probe = probe

    def health_probe(self) -> bool:
        return bool(self.probe())


def _probe_raises() -> bool:
    raise ConnectionError("down")


@pytest.mark.parametrize(
    ("probe", "healthy"),
    [
        (lambda: True, True),
        (lambda: False, False),
        (lambda: 0, False),
        (_probe_raises, False),
        (lambda: 1 / 0, False),
    ],
    ids=["true", "false", "falsy", "connection_error", "zero_division"],
)
def test_check_health_returns_a_bool_and_never_raises(
    probe: Callable[[], Any], healthy: bool
) -> None:
    assert ProbeConnector(probe).check_health() is healthy


def test_default_health_probe_is_healthy() -> None:
    assert EchoConnector().check_health() is True


def _probe_raises_auth() -> bool:
    raise ConnectorError(
        "HTTP 401 from echo: bad key secret-echo-key-1234",
        failure_type=FailureType.AUTH_ERROR,
        failure_reason=FailureReason.INVALID_API_KEY,
    )


@pytest.mark.parametrize(
    ("probe", "healthy", "detail"),
    [
        (lambda: True, True, "ok"),
        (lambda: False, False, "echo health probe reported unhealthy"),
        (_probe_raises_auth, False, "auth_error/invalid_api_key: HTTP 401 from echo: bad key"),
        (_probe_raises, False, "network_error/connection_failed: ConnectionError: down"),
        (lambda: 1 / 0, False, "system_error/internal_error: ZeroDivisionError"),
    ],
    ids=["healthy", "false", "classified", "connection_error", "bug"],
)
def test_health_reports_the_classified_failure(
    probe: Callable[[], Any], healthy: bool, detail: str
) -> None:
    report = ProbeConnector(probe).health()
    assert report.healthy is healthy
    assert report.detail.startswith(detail)


def test_health_detail_never_carries_a_registered_secret() -> None:
    from connectors.redact import register_secret

    register_secret("secret-echo-key-1234")
    report = ProbeConnector(_probe_raises_auth).health()
    assert "secret-echo-key-1234" not in report.detail
    assert report.to_dict()["failure_type"] == "auth_error"


def test_subclass_defining_health_fails_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"health\(\).*final.*health_probe"):

        class Bad(EchoConnector):
            def health(self) -> Any:  # type: ignore[misc]
                return None


def test_periodic_health_checks_are_allowed_by_default() -> None:
    assert EchoConnector().periodic_health_check_allowed() is True


# --- payload validation -------------------------------------------------------------------------


class PromptPayload(BaseModel):
    prompt: str = Field(min_length=1)
    steps: int = 20


class ValidatingConnector(EchoConnector):
    service_type: ClassVar[str] = "validating"
    payload_model = PromptPayload


def test_validate_payload_returns_the_model() -> None:
    model = ValidatingConnector.validate_payload({"prompt": "a cat", "steps": 4})
    assert isinstance(model, PromptPayload)
    assert model.steps == 4


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        ({}, "prompt", FailureReason.MISSING_REQUIRED_FIELD),
        ({"prompt": ""}, "prompt", FailureReason.INVALID_PAYLOAD),
        ({"prompt": "x", "steps": "many"}, "steps", FailureReason.INVALID_PAYLOAD),
    ],
)
def test_validate_payload_names_the_bad_field(
    payload: dict[str, Any], field: str, reason: FailureReason
) -> None:
    with pytest.raises(ConnectorError) as info:
        ValidatingConnector.validate_payload(payload)
    error = info.value
    assert error.failure_type is FailureType.VALIDATION_ERROR
    assert error.failure_reason is reason
    assert error.retryable is False
    assert error.context["field"] == field
    assert f"'{field}'" in str(error)
    assert error.service == "validating"
    assert error.context["errors"][0]["field"] == field


def test_validate_payload_lists_every_bad_field() -> None:
    with pytest.raises(ConnectorError) as info:
        ValidatingConnector.validate_payload({"steps": "many"})
    fields = [e["field"] for e in info.value.context["errors"]]
    assert sorted(fields) == ["prompt", "steps"]


def test_validate_payload_rejects_a_non_object() -> None:
    with pytest.raises(ConnectorError) as info:
        ValidatingConnector.validate_payload(["not", "a", "dict"])
    assert info.value.context["field"] == "payload"


class TypedConnector(BaseConnector[PromptPayload]):
    """Returns what its hook was handed: the payload model, never the raw dict."""

    service_type: ClassVar[str] = "typed"
    payload_model = PromptPayload

    def process_job_impl(
        self, job: JobData, payload: PromptPayload, progress: ProgressCallback
    ) -> JobResult:
        return JobResult(data={"type": type(payload).__name__, "steps": payload.steps})


def test_process_job_validates_a_raw_payload_and_hands_the_model_to_the_hook() -> None:
    job = JobData(id="j", type="typed", payload={"prompt": "a cat", "steps": 4})
    assert TypedConnector().process_job(job).data == {"type": "PromptPayload", "steps": 4}


def test_process_job_refuses_a_bad_raw_payload_before_the_hook() -> None:
    job = JobData(id="j", type="typed", payload={"steps": 4})
    with pytest.raises(ConnectorError) as info:
        TypedConnector().process_job(job)
    assert (info.value.context["field"], info.value.service) == ("prompt", "typed")


def test_a_payload_the_worker_validated_is_not_validated_again() -> None:
    checked = TypedConnector.validate_payload({"prompt": "a cat", "steps": 7})
    # The raw dict is no longer valid, so a second validation would fail: none happens.
    job = JobData(id="j", type="typed", payload={"steps": "many"}).with_validated(checked)
    assert TypedConnector().process_job(job).data == {"type": "PromptPayload", "steps": 7}


def test_a_validated_payload_of_another_model_is_checked_again() -> None:
    other = AnyPayload.model_validate({"prompt": "x"})
    job = JobData(id="j", type="typed", payload={"prompt": "a cat"}).with_validated(other)
    assert TypedConnector().process_job(job).data == {"type": "PromptPayload", "steps": 20}


def test_a_copy_with_a_new_payload_drops_the_validated_one() -> None:
    checked = TypedConnector.validate_payload({"prompt": "a cat"})
    job = JobData(id="j", type="typed", payload={"prompt": "a cat"}).with_validated(checked)
    assert job.validated is checked
    assert job.model_copy(update={"payload": {"prompt": "a dog"}}).validated is None


def test_validate_payload_without_a_model_accepts_any_object() -> None:
    model = EchoConnector.validate_payload({"anything": 1})
    assert isinstance(model, AnyPayload)
    assert model.model_dump() == {"anything": 1}


# --- service support ----------------------------------------------------------------------------


def _with(klass: HealthCheckClass, **caps: Any) -> EchoConnector:
    connector = EchoConnector()
    connector.health_check_class = klass  # type: ignore[misc]
    connector.capabilities = HealthCheckCapabilities(**caps)  # type: ignore[misc]
    return connector


def test_minimal_class_with_basic_health_is_fully_supported() -> None:
    assert _with(HealthCheckClass.MINIMAL).service_support() == {
        "isSupported": True,
        "supportLevel": "full",
        "missingCapabilities": [],
        "recommendedAction": "proceed",
    }


def test_standard_class_without_job_status_query_is_unsupported() -> None:
    assert _with(HealthCheckClass.STANDARD).service_support() == {
        "isSupported": False,
        "supportLevel": "unsupported",
        "missingCapabilities": ["supportsJobStatusQuery"],
        "recommendedAction": "fail",
    }


def test_standard_class_with_job_status_query_is_supported() -> None:
    support = _with(HealthCheckClass.STANDARD, supportsJobStatusQuery=True).service_support()
    assert support["isSupported"] is True
    assert support["recommendedAction"] == "proceed"


def test_minimal_class_without_basic_health_is_unsupported() -> None:
    support = _with(HealthCheckClass.MINIMAL, supportsBasicHealthCheck=False).service_support()
    assert support["missingCapabilities"] == ["supportsBasicHealthCheck"]
    assert support["isSupported"] is False


def test_custom_class_needs_its_own_requirements() -> None:
    with pytest.raises(NotImplementedError):
        _with(HealthCheckClass.CUSTOM).service_support()
