"""Checkpoints in the modes: an answer paid for once is reused by the job's later attempts."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import requests

from connectors.assets.base import SERVICE as STORAGE
from connectors.base import AnyPayload
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.journal import ANSWER, PROVIDER_JOB, JobJournal, MemoryJournal
from connectors.models import JobData, JobResult
from connectors.protocol.answers import restore_answer, snapshot_answer
from connectors.protocol.client import HttpClient
from connectors.protocol.gate import deferral, deferred_error
from connectors.protocol.http import HTTPConnector, HttpRequest
from connectors.protocol.polling import PollPolicy
from tests.connectors.fakes import FakeAdapter, fake_session, json_reply
from tests.connectors.protocol.test_polling import (
    DONE,
    PENDING,
    POLL,
    SUBMIT,
    FakeClock,
    make_connector,
)

UNAVAILABLE = Classification(FailureType.SERVICE_ERROR, FailureReason.SERVICE_UNAVAILABLE, True)


class SavingHTTP(HTTPConnector[AnyPayload]):
    """Calls /generate, then 'saves' the output, which fails while `storage_down` is set."""

    service_type: ClassVar[str] = "saving_http"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.storage_down = False
        self.answer_bad = False

    def build_request(self, job: JobData, payload: AnyPayload) -> HttpRequest:
        return HttpRequest("POST", self.client.url("/generate"), json=job.payload)

    def parse_response(
        self, response: requests.Response, job: JobData, payload: AnyPayload
    ) -> JobResult:
        body = self.client.json_body(response)
        if self.answer_bad:
            raise UNAVAILABLE.error("the provider said: try later")
        if self.storage_down:
            raise UNAVAILABLE.error("bucket unavailable", service=STORAGE)
        return JobResult(data={"url": body["url"]})


def saving(*replies: Any) -> tuple[SavingHTTP, FakeAdapter]:
    session, adapter = fake_session(*replies)
    client = HttpClient("saving_http", "https://api.example.test", session=session)
    return SavingHTTP(client=client), adapter


def job(journal: MemoryJournal) -> JobData:
    return JobData(id="job-1", type="saving_http", payload={"p": 1}).with_journal(journal)


def test_a_retry_after_a_storage_failure_reuses_the_answer_without_a_second_call() -> None:
    connector, adapter = saving(json_reply({"url": "https://cdn.test/a.png"}))
    journal = MemoryJournal()
    connector.storage_down = True
    with pytest.raises(ConnectorError) as failed:
        connector.process_job(job(journal))
    assert failed.value.service == STORAGE
    assert failed.value.retryable
    connector.storage_down = False
    result = connector.process_job(job(journal))
    assert result.data == {"url": "https://cdn.test/a.png"}
    assert len(adapter.requests) == 1
    assert journal.provider_calls() == 1


def test_a_failure_in_the_answer_itself_drops_it_so_the_retry_asks_again() -> None:
    connector, adapter = saving(json_reply({"url": "u1"}), json_reply({"url": "u2"}))
    journal = MemoryJournal()
    connector.answer_bad = True
    with pytest.raises(ConnectorError):
        connector.process_job(job(journal))
    assert journal.load(ANSWER) is None
    connector.answer_bad = False
    assert connector.process_job(job(journal)).data == {"url": "u2"}
    assert len(adapter.requests) == 2
    assert journal.provider_calls() == 2


def test_a_failed_call_counts_as_a_paid_call_and_keeps_no_answer() -> None:
    connector, _ = saving(json_reply({"error": "busy"}, 503))
    journal = MemoryJournal()
    with pytest.raises(ConnectorError):
        connector.process_job(job(journal))
    assert journal.provider_calls() == 1
    assert journal.load(ANSWER) is None


def test_an_answer_snapshot_round_trips_without_the_query_string() -> None:
    session, _ = fake_session(json_reply({"ok": "ünïcode"}))
    response = session.post("https://api.test/v1/x?key=query-secret", json={})
    entry = snapshot_answer(response)
    assert "query-secret" not in str(entry)
    restored = restore_answer(entry)
    assert restored is not None
    assert restored.status_code == 200
    assert restored.json() == {"ok": "ünïcode"}
    assert restored.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("entry", [{}, {"status": 200}, {"status": "x", "body": ""}, {"body": "*"}])
def test_an_entry_that_is_not_an_answer_restores_to_none(entry: dict[str, Any]) -> None:
    assert restore_answer(entry) is None


# --- polling: the provider's job id -------------------------------------------------------------


def polled(journal: MemoryJournal) -> JobData:
    return JobData(id="j-1", type="fakejobs", payload={"prompt": "a fox"}).with_journal(journal)


def test_a_submitted_job_id_is_kept_before_polling_starts() -> None:
    connector, _, _ = make_connector(PENDING, DONE)
    journal = MemoryJournal()
    connector.process_job(polled(journal))
    assert journal.load(PROVIDER_JOB) == {"id": "job-1"}
    assert journal.provider_calls() == 1


def test_a_redelivered_polled_job_resumes_its_stored_id_without_submitting() -> None:
    connector, transport, _ = make_connector(DONE)
    journal = MemoryJournal()
    journal.save(PROVIDER_JOB, {"id": "job-1"})
    result = connector.process_job(polled(journal))
    assert result.data == {"output": "fox.png"}
    assert transport.calls("POST", SUBMIT) == []
    assert len(transport.calls("GET", POLL)) == 1
    assert journal.provider_calls() == 0


def test_a_provider_job_that_failed_is_forgotten_so_a_replay_submits_anew() -> None:
    failed = json_reply({"status": "failed", "error": "bad prompt"})
    connector, _, _ = make_connector(failed)
    journal = MemoryJournal()
    with pytest.raises(ConnectorError) as info:
        connector.process_job(polled(journal))
    assert not info.value.retryable
    assert journal.load(PROVIDER_JOB) is None


def test_a_timed_out_provider_job_is_forgotten_before_the_retry() -> None:
    clock = FakeClock()
    connector, _, _ = make_connector(PENDING, PENDING, PENDING, deadline=10.0)
    connector.poll_policy = PollPolicy(interval=5.0, deadline=10.0, clock=clock, sleep=clock.sleep)
    journal = MemoryJournal()
    with pytest.raises(ConnectorError) as info:
        connector.process_job(polled(journal))
    assert info.value.failure_type is FailureType.TIMEOUT
    assert info.value.retryable
    assert journal.load(PROVIDER_JOB) is None


def test_without_a_journal_every_attempt_submits() -> None:
    connector, transport, _ = make_connector(DONE)
    connector.process_job(JobData(id="j-1", type="fakejobs", payload={}))
    assert len(transport.calls("POST", SUBMIT)) == 1


class ScriptedGate:
    """A call gate that defers the first `defer` calls, then admits; records what it saw."""

    def __init__(self, journal: MemoryJournal, defer: int = 0) -> None:
        self.journal, self.defer = journal, defer
        self.counted_at_admit: list[int] = []

    def admit(self, service: str, key: str | None, journal: JobJournal | None = None) -> bool:
        self.counted_at_admit.append(self.journal.provider_calls())
        if self.defer:
            self.defer -= 1
            raise deferred_error(service, "rate_limit", 1.5)
        return False  # the client counts

    def settle(self, service: str, key: str | None, error: ConnectorError | None) -> None:
        pass


def test_a_deferred_call_is_no_paid_call_and_the_admitted_one_is_counted_once() -> None:
    journal = MemoryJournal()
    gate = ScriptedGate(journal, defer=2)
    connector, adapter = saving(json_reply({"url": "s3://out.png"}))
    connector.client = connector.client.with_gate(gate)
    for _ in range(2):  # the runtime re-queues a deferred job as a wait
        with pytest.raises(ConnectorError) as info:
            connector.process_job(job(journal))
        assert deferral(info.value)
        assert journal.provider_calls() == 0
    assert adapter.requests == []
    connector.process_job(job(journal))
    assert journal.provider_calls() == 1
    assert gate.counted_at_admit == [0, 0, 0]  # counted after the gate let it go, not before
    assert len(adapter.requests) == 1


def test_a_polling_submit_deferred_by_the_gate_is_no_paid_call() -> None:
    journal = MemoryJournal()
    connector, transport, _ = make_connector(DONE)
    connector.client = connector.client.with_gate(ScriptedGate(journal, defer=1))
    polling_job = JobData(id="job-2", type=connector.service_type, payload={"p": 1})
    with pytest.raises(ConnectorError) as info:
        connector.process_job(polling_job.with_journal(journal))
    assert deferral(info.value)
    assert journal.provider_calls() == 0
    assert transport.sent == []


class CountingGate(ScriptedGate):
    """A gate that counts the call in its own step, as the runtime's does on Redis."""

    def admit(self, service: str, key: str | None, journal: JobJournal | None = None) -> bool:
        assert journal is not None
        journal.paid_call()
        return True


def test_a_call_the_gate_counted_is_not_counted_again() -> None:
    journal = MemoryJournal()
    connector, adapter = saving(json_reply({"url": "s3://out.png"}))
    connector.client = connector.client.with_gate(CountingGate(journal))
    connector.process_job(job(journal))
    assert journal.provider_calls() == 1
    assert len(adapter.requests) == 1


class SettlingGate(ScriptedGate):
    """Records what it was told of each admitted call."""

    def __init__(self, journal: MemoryJournal) -> None:
        super().__init__(journal)
        self.settled: list[ConnectorError | None] = []

    def settle(self, service: str, key: str | None, error: ConnectorError | None) -> None:
        self.settled.append(error)


class BrokenJournal(MemoryJournal):
    def paid_call(self) -> None:
        raise RuntimeError("the journal's store is gone")


def test_a_count_that_fails_still_sends_and_settles_the_admitted_call() -> None:
    journal = BrokenJournal()
    gate = SettlingGate(journal)
    connector, adapter = saving(json_reply({"url": "s3://out.png"}))
    connector.client = connector.client.with_gate(gate)
    assert connector.process_job(job(journal)).data == {"url": "s3://out.png"}
    assert len(adapter.requests) == 1
    assert gate.settled == [None]
