"""ComfyUIConnector: queue an API-format workflow, follow it on `/ws`, save its images.

One job: open `/ws?clientId=<id>`, POST `/prompt` with that client id and a prompt id derived
from the job id, follow the prompt's events (progress, outputs) until `executing` with
`node: null`, then read `/history/<prompt id>` and fetch every image from `/view` into the
asset saver. Before submitting, the connector looks for its prompt in `/queue` and
`/history`: a retry after a dropped socket (or a redelivery) follows or reads the prompt it
already queued, and never queues it twice. Only a retryable failure (CUDA out of memory) found
there is run again. Env: COMFYUI_BASE_URL (default http://127.0.0.1:8188),
COMFYUI_TIMEOUT_SECONDS (the whole job's deadline, the mapping's timeout too) and
COMFYUI_HTTP_TIMEOUT_SECONDS (one HTTP call).
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.assets import AssetSaver, LazyAssetSaver, SavedAsset
from connectors.errors import Classification, FailureReason, FailureType
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobResult, ServiceMetadata
from connectors.protocol.client import (
    ApiProfile,
    CallObserver,
    HttpClient,
    HttpRequest,
    Probe,
    Timeouts,
)
from connectors.protocol.websocket import (
    Message,
    SocketFactory,
    Step,
    Submission,
    WebSocketConnector,
    connect_websocket,
)
from connectors.services.comfyui_errors import refine_prompt_error
from connectors.services.comfyui_messages import (
    ComfyUIPayload,
    client_id_for,
    history_outcome,
    image_refs,
    prompt_id_for,
    read_message,
)

__all__ = ["COMFYUI_API", "ComfyUIConnector", "ComfyUIPayload", "ComfyUISettings"]

COMFYUI_API = ApiProfile(refine=refine_prompt_error, probe=Probe("system_stats"))
_NO_ID = Classification(FailureType.RESPONSE_ERROR, FailureReason.MISSING_EXPECTED_DATA)


class ComfyUISettings(BaseSettings):
    """ComfyUI settings from the worker's environment (an empty variable counts as unset)."""

    model_config = SettingsConfigDict(env_prefix="COMFYUI_", env_ignore_empty=True, extra="ignore")

    base_url: str = "http://127.0.0.1:8188"
    timeout_seconds: float = Field(default=300.0, gt=0)  # the whole job, queue wait included
    http_timeout_seconds: float = Field(default=30.0, gt=0)  # one HTTP call (submit, /view)


class ComfyUIConnector(WebSocketConnector[ComfyUIPayload]):
    """Runs ComfyUI workflows: POST /prompt, events on /ws, images from /history and /view."""

    service_type: ClassVar[str] = "comfyui"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.STANDARD
    capabilities: ClassVar[HealthCheckCapabilities] = HealthCheckCapabilities(
        supportsBasicHealthCheck=True,
        supportsJobStatusQuery=True,  # GET /history/<prompt id>
        supportsJobCancellation=True,  # POST /interrupt
        supportsServiceRestart=False,
        supportsQueueIntrospection=True,  # GET /queue
    )
    payload_model = ComfyUIPayload

    def __init__(
        self,
        settings: ComfyUISettings | None = None,
        *,
        assets: AssetSaver | None = None,
        session: requests.Session | None = None,
        timeouts: Timeouts | None = None,
        on_call: CallObserver | None = None,
        connect: SocketFactory = connect_websocket,
        **kwargs: Any,
    ) -> None:
        self.settings = settings or ComfyUISettings()
        self.assets: AssetSaver = assets or LazyAssetSaver()
        client = HttpClient(
            self.service_type,
            self.settings.base_url,
            timeouts=timeouts or Timeouts(connect=10.0, read=self.settings.http_timeout_seconds),
            session=session,
            on_call=on_call,
            api=COMFYUI_API,
        )
        kwargs.setdefault("deadline", self.settings.timeout_seconds)
        super().__init__(client=client, connect=connect, **kwargs)

    # -- the mode's hooks ----------------------------------------------------------------

    def websocket_url(self, job: JobData, payload: ComfyUIPayload) -> str:
        base = self.client.url("ws")
        scheme = "wss" if base.startswith("https://") else "ws"
        return f"{scheme}://{base.split('://', 1)[1]}?clientId={self._client_id(job, payload)}"

    def submit(self, job: JobData, payload: ComfyUIPayload) -> Submission:
        prompt_id = prompt_id_for(job.id)
        if self._queued(prompt_id):
            return Submission(prompt_id, info={"resumed": "queue"})
        outcome = history_outcome(self._history(prompt_id))
        if outcome == "success":
            return Submission(prompt_id, finished=True, info={"resumed": "history"})
        if not isinstance(outcome, str) and not outcome.retryable:
            raise outcome  # a redelivered job that already failed for good fails the same way
        body = {"prompt": payload.graph(), "client_id": self._client_id(job, payload)}
        body["prompt_id"] = prompt_id
        request = HttpRequest("POST", self.client.url("prompt"), json=body)
        reply = self.client.json_body(self.client.send(request, journal=job.journal))
        given = reply.get("prompt_id") if isinstance(reply, dict) else None
        if not given:
            raise _NO_ID.error(
                "ComfyUI accepted the prompt but sent no prompt_id", context={"reply": reply}
            )
        info = {"number": reply.get("number"), "node_errors": reply.get("node_errors") or {}}
        # An older server picks its own id: followed all the same, only its retry resubmits.
        return Submission(str(given), info=info)

    def read_message(self, message: Message, submission: Submission) -> Step:
        return read_message(message)

    def build_result(
        self, submission: Submission, outputs: list[Any], job: JobData, payload: ComfyUIPayload
    ) -> JobResult:
        entry = self._history(submission.key)
        found = entry.get("outputs") if isinstance(entry, dict) else None
        if not isinstance(found, dict):  # no history entry: the outputs the socket announced
            found = {str(o["node"]): o["output"] for o in outputs if isinstance(o, dict)}
        saved = [(ref, self._save(ref, job)) for ref in image_refs(found)]
        images = [{**ref, "url": asset.url, "mime_type": asset.mime_type} for ref, asset in saved]
        data: dict[str, Any] = {
            "content_type": "image" if images else "json",
            "prompt_id": submission.key,
            "images": images,
            "outputs": found,
        }
        if images:
            data["image_url"] = images[0]["url"]
        stats = {k: v for k, v in submission.info.items() if v}
        return JobResult(
            data=data,
            output_files=[asset.output_file() for _, asset in saved],
            metadata={"service": "comfyui", "connector": self.service_type, **stats},
            service_metadata=ServiceMetadata(
                service_version=self.version,
                service_type=self.service_type,
                service_job_id=submission.key,
                processing_stats={"images": len(images), **stats},
            ),
        )

    # -- HTTP edges ----------------------------------------------------------------------

    def _client_id(self, job: JobData, payload: ComfyUIPayload) -> str:
        return payload.client_id or client_id_for(job.id)

    def _queued(self, prompt_id: str) -> bool:
        reply = self.client.json_body(
            self.client.send(HttpRequest("GET", self.client.url("queue")))
        )
        items = [*(reply.get("queue_running") or []), *(reply.get("queue_pending") or [])]
        return any(isinstance(i, list) and len(i) > 1 and i[1] == prompt_id for i in items)

    def _history(self, prompt_id: str) -> Any:
        request = HttpRequest("GET", self.client.url(f"history/{prompt_id}"))
        reply = self.client.json_body(self.client.send(request))
        return reply.get(prompt_id) if isinstance(reply, dict) else None

    def _save(self, ref: dict[str, str], job: JobData) -> SavedAsset:
        params = {key: ref[key] for key in ("filename", "subfolder", "type")}
        response = self.client.send(HttpRequest("GET", self.client.url("view"), params=params))
        # Bytes from the operator's own server, not a URL for the saver to fetch: ComfyUI is
        # usually on loopback or a private address, which the saver's SSRF guard refuses.
        return self.assets.save(response.content, job=job, expect="image")
