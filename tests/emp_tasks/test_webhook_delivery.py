"""One delivery attempt: re-checked, signed fresh, recorded on the job, decided."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import pytest
from standardwebhooks import Webhook

from emp_tasks.webhook_delivery import Answer, deliver_once
from emp_tasks.webhook_policy import WebhookSettings
from emp_tasks.webhook_store import MemoryWebhookStore

SECRET = "whsec_" + base64.b64encode(b"delivery-test-key-0123456789abc").decode()
SETTINGS = WebhookSettings(
    allow_hosts=frozenset({"127.0.0.1"}), retry_delays=(0.5,), max_attempts=3
)
MESSAGE = {
    "id": "msg_abc",
    "job_id": "job-7",
    "event": "complete_job",
    "url": "http://127.0.0.1:9/hook?key=k",
    "body": '{"type":"complete_job"}',
}


class Receiver:
    """A poster that answers from a script and keeps what it was sent."""

    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.seen: list[tuple[str, Mapping[str, str]]] = []

    def __call__(
        self, url: str, body: str, headers: Mapping[str, str], settings: WebhookSettings
    ) -> Answer:
        self.seen.append((body, headers))
        status = self.statuses.pop(0)
        return Answer(status, {}) if status else Answer(None, error="ConnectTimeout")


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMP_WEBHOOK_SECRET", SECRET)


def test_each_attempt_is_signed_again_and_recorded_with_its_outcome() -> None:
    store, receiver = MemoryWebhookStore(), Receiver(None, 503, 200)
    outcomes = [
        deliver_once(MESSAGE, n, store, settings=SETTINGS, poster=receiver).outcome
        for n in (1, 2, 3)
    ]
    assert outcomes == ["retrying", "retrying", "delivered"]
    for body, headers in receiver.seen:
        Webhook(SECRET).verify(body, dict(headers))
        assert headers["webhook-id"] == "msg_abc"
    records = store.deliveries("job-7")
    assert [(r["attempt"], r["status"], r["outcome"]) for r in records] == [
        (1, None, "retrying"),
        (2, 503, "retrying"),
        (3, 200, "delivered"),
    ]
    assert records[0]["reason"].startswith("ConnectTimeout")
    assert all(r["url"] == "http://127.0.0.1:9/hook" for r in records)  # no query string


def test_attempts_spent_end_the_delivery() -> None:
    store = MemoryWebhookStore()
    decision = deliver_once(MESSAGE, 3, store, settings=SETTINGS, poster=Receiver(503))
    assert (decision.outcome, decision.countdown) == ("failed", None)


def test_a_410_stops_every_later_delivery_to_that_url() -> None:
    store, receiver = MemoryWebhookStore(), Receiver(410)
    assert deliver_once(MESSAGE, 1, store, settings=SETTINGS, poster=receiver).outcome == "gone"
    later = {**MESSAGE, "id": "msg_later", "event": "fail_job"}
    assert deliver_once(later, 1, store, settings=SETTINGS, poster=receiver).outcome == "failed"
    assert len(receiver.seen) == 1
    assert store.deliveries("job-7")[-1]["outcome"] == "skipped"


def test_a_url_refused_at_delivery_is_never_posted() -> None:
    store, receiver = MemoryWebhookStore(), Receiver(200)
    decision = deliver_once(MESSAGE, 1, store, settings=WebhookSettings(), poster=receiver)
    assert decision.outcome == "failed"
    assert "is loopback" in decision.reason
    assert receiver.seen == []


def test_a_worker_without_the_secret_records_why_and_posts_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EMP_WEBHOOK_SECRET")
    store, receiver = MemoryWebhookStore(), Receiver(200)
    decision = deliver_once(MESSAGE, 1, store, settings=SETTINGS, poster=receiver)
    assert decision.outcome == "failed"
    assert "EMP_WEBHOOK_SECRET" in store.deliveries("job-7")[0]["reason"]
    assert receiver.seen == []


def test_the_secret_is_in_no_record() -> None:
    store = MemoryWebhookStore()
    deliver_once(MESSAGE, 1, store, settings=SETTINGS, poster=Receiver(200))
    assert SECRET.removeprefix("whsec_") not in repr(store.deliveries("job-7"))
