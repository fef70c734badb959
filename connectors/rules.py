"""The original's ordered message rules (first match wins), with its known quirks fixed.

`classify_message` is the one engine: a provider with its own vocabulary (Glif's matrix) passes
its own `Rule` table and fallback instead of keeping a second matcher.

Fixes, each covered by a test:
- timeouts are recognised before network errors, so "Job timeout after 30 minutes" is a
  timeout (the original said network_error) and "connection timed out" is a timeout;
- "token" alone no longer means auth: only credential phrases do, so "max tokens exceeded" is
  a validation error about the request size, not an expired token;
- out-of-credits / billing messages are resource_limit/insufficient_credits, not a rate limit;
- billing and rate-limit phrases are checked before refusal words, so "too many requests: your
  IP is temporarily blocked" is a (retryable) rate limit, not a refusal; "405 Method Not
  Allowed" is not a refusal either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.errors import Classification, FailureReason, FailureType

__all__ = ["RULES", "UNKNOWN", "Rule", "classify_message", "rx"]

R = FailureReason
T = FailureType
Sub = tuple[str, FailureReason]
UNKNOWN = Classification(T.SYSTEM_ERROR, R.UNKNOWN_ERROR)


@dataclass(frozen=True)
class Rule:
    """One category: a detector, the first-match sub-rules for its reason, the statuses it owns."""

    failure_type: FailureType
    detect: re.Pattern[str]
    subrules: tuple[Sub, ...]
    default: FailureReason
    statuses: frozenset[int] = frozenset()
    # A status that settles the reason within the category, whatever the text says.
    status_reasons: tuple[tuple[int, FailureReason], ...] = ()

    def matches(self, text: str, status: int | None) -> bool:
        """Whether the (lower-cased) text or the status selects this category."""
        return bool(self.detect.search(text)) or status in self.statuses

    def reason(self, text: str, status: int | None = None) -> FailureReason:
        """The reason within this category for the (lower-cased) text and status."""
        for code, reason in self.status_reasons:
            if status == code:
                return reason
        for pattern, reason in self.subrules:
            if re.search(pattern, text):
                return reason
        return self.default


def rx(*words: str) -> re.Pattern[str]:
    """One pattern matching any of `words` (regular expressions)."""
    return re.compile("|".join(words))


_CREDENTIAL = (
    r"authenticat",
    r"unauthori[sz]ed",
    r"api[ _-]?key",
    r"invalid key",
    r"\b(invalid|expired|missing|revoked|bad) (access |bearer |api )?token\b",
    r"\btoken (is )?(invalid|expired|revoked)\b",
    r"permission denied",
    r"\bpermission\b",
    r"forbidden",
)

RULES: tuple[Rule, ...] = (
    # Billing and rate limits first: their phrases are unambiguous, while refusal words
    # ("blocked", "not allowed") also appear in them ("your IP is temporarily blocked").
    Rule(
        T.RESOURCE_LIMIT,
        rx(
            r"insufficient[ _]credits?",
            r"insufficient_quota",
            r"out of credits",
            r"not enough credits",
            r"credit balance",
            r"billing",
            r"payment required",
        ),
        (),
        R.INSUFFICIENT_CREDITS,
    ),
    Rule(
        T.RATE_LIMIT,
        rx(r"rate[ _-]?limit", r"quota", r"too many requests"),
        (
            (r"daily|per ?day|quota", R.DAILY_QUOTA_EXCEEDED),
            (r"concurrent", R.CONCURRENT_REQUESTS),
            (r"token", R.TOKENS_PER_MINUTE),
        ),
        R.REQUESTS_PER_MINUTE,
        frozenset({429}),
    ),
    Rule(
        T.GENERATION_REFUSAL,
        rx(
            r"cannot generate",
            r"unable to create",
            r"can't generate",
            r"cannot create",
            r"policy violation",
            r"content policy",
            r"inappropriate",
            r"(?<!method )not allowed",
            r"^(?!.*connect).*\brefused\b",
            r"declined",
            r"safety",
            r"harmful",
            r"violence",
            r"nsfw",
            r"copyright",
            r"intellectual property",
            r"moderation_blocked",
            r"\bblocked\b",
            r"adult content",
        ),
        (
            (r"moderation_blocked|safety system", R.SAFETY_FILTER),
            (r"violen", R.VIOLENCE_DETECTED),
            (r"copyright|intellectual property", R.COPYRIGHT_BLOCKER),
            (r"nsfw|explicit|adult", R.NSFW_CONTENT),
            (r"hate|discrimination", R.HATE_SPEECH),
            (r"personal|private", R.PERSONAL_INFO),
            (r"safety", R.SAFETY_FILTER),
        ),
        R.POLICY_VIOLATION,
    ),
    Rule(
        T.AUTH_ERROR,
        rx(*_CREDENTIAL),
        (
            (r"api[ _-]?key|invalid key", R.INVALID_API_KEY),
            (r"expired", R.EXPIRED_TOKEN),
            (r"permission|forbidden", R.INSUFFICIENT_PERMISSIONS),
            (r"suspended|disabled", R.ACCOUNT_SUSPENDED),
        ),
        R.INVALID_API_KEY,
        frozenset({401, 403}),
        ((403, R.INSUFFICIENT_PERMISSIONS),),
    ),
    Rule(
        T.TIMEOUT,
        rx(r"timed? ?out", r"timeout", r"deadline exceeded"),
        (
            (r"network|connect|read|socket", R.NETWORK_TIMEOUT),
            (r"processing", R.PROCESSING_TIMEOUT),
            (r"queue", R.QUEUE_TIMEOUT),
        ),
        R.JOB_TIMEOUT,
    ),
    Rule(
        T.NETWORK_ERROR,
        rx(
            r"network",
            r"connection",
            r"\bdns\b",
            r"\bssl\b",
            r"econnrefused",
            r"econnreset",
            r"enotfound",
        ),
        (
            (r"\bdns\b|enotfound", R.DNS_RESOLUTION),
            (r"\bssl\b|certificate", R.SSL_CERTIFICATE),
            (r"proxy", R.PROXY_ERROR),
        ),
        R.CONNECTION_FAILED,
    ),
    Rule(
        T.VALIDATION_ERROR,
        rx(r"max(imum)? tokens", r"context length", r"maximum context"),
        (),
        R.INVALID_PAYLOAD,
    ),
    Rule(
        T.RESOURCE_LIMIT,
        rx(r"memory", r"disk space", r"storage", r"\blimit\b", r"capacity"),
        (
            (r"memory.*(gpu|cuda)|(gpu|cuda).*memory", R.GPU_MEMORY_FULL),
            (r"memory", R.OUT_OF_MEMORY),
            (r"disk|storage", R.DISK_SPACE_FULL),
            (r"concurrent", R.CONCURRENT_LIMIT),
        ),
        R.OUT_OF_MEMORY,
    ),
    Rule(
        T.SERVICE_ERROR,
        rx(r"service", r"server[ _]error", r"maintenance", r"unavailable", r"overloaded"),
        (
            (r"maintenance", R.MAINTENANCE_MODE),
            (r"unavailable", R.SERVICE_UNAVAILABLE),
            (r"degraded", R.DEGRADED_PERFORMANCE),
        ),
        R.SERVICE_DOWN,
        frozenset(range(500, 600)),
        ((503, R.SERVICE_UNAVAILABLE),),
    ),
    Rule(
        T.VALIDATION_ERROR,
        rx(
            r"validation",
            r"invalid",
            r"missing",
            r"required",
            r"\bformat\b",
            r"component",
            r"model",
            r"does not exist",
        ),
        (
            (r"error in component", R.COMPONENT_ERROR),
            (r"model.*(does not exist|not found)", R.MODEL_NOT_FOUND),
            (r"missing|required", R.MISSING_REQUIRED_FIELD),
            (r"\bformat\b", R.INVALID_FORMAT),
            (r"unsupported", R.UNSUPPORTED_OPERATION),
        ),
        R.INVALID_PAYLOAD,
    ),
    Rule(
        T.RESPONSE_ERROR,
        rx(r"response", r"content type", r"corrupted", r"expected"),
        (
            (r"content type", R.UNEXPECTED_CONTENT_TYPE),
            (r"corrupted", R.CORRUPTED_DATA),
            (r"missing|expected", R.MISSING_EXPECTED_DATA),
        ),
        R.INVALID_RESPONSE_FORMAT,
    ),
    Rule(
        T.SYSTEM_ERROR,
        rx(r"cuda", r"gpu", r"internal", r"config", r"dependency"),
        (
            (r"cuda|gpu", R.GPU_ERROR),
            (r"config", R.CONFIG_ERROR),
            (r"dependency", R.DEPENDENCY_ERROR),
        ),
        R.INTERNAL_ERROR,
    ),
)


def classify_message(
    message: str,
    *,
    status: int | None = None,
    rules: Sequence[Rule] = RULES,
    fallback: Classification = UNKNOWN,
) -> Classification:
    """Classify free text by the first matching rule; an HTTP `status` also selects a category.

    `rules` and `fallback` let a provider with its own vocabulary (Glif) use the same engine.
    """
    text = message.lower()
    for rule in rules:
        if rule.matches(text, status):
            return Classification(rule.failure_type, rule.reason(text, status))
    return fallback
