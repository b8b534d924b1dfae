"""Ask a vision-language model which of a run's brands each image crop shows.

One request carries a batch of crops (JPEG bytes and the OCR text read there) and the
list of allowed brand names; the model answers strict JSON, validated with pydantic.
Each vendor is reached through its own SDK: Anthropic, Google Gen AI (Gemini), OpenAI;
Groq and local OpenAI-compatible servers (vLLM, Ollama, llama.cpp) through the OpenAI SDK.
The SDKs' own retries are turned off: tenacity retries 429/5xx/timeouts/connection errors
here, so every retry is counted in `Usage`. API keys never appear in messages or reprs.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import asdict, dataclass, field, fields

import tenacity
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

PROVIDERS = ("anthropic", "gemini", "openai", "groq", "openai_compatible")
PROMPT_VERSION = "1"  # bump when the prompt changes (callers put it in cache keys)
GROQ_BASE_URL = "https://api.groq.com/openai/v1"
NO_KEY = "not-needed"  # local OpenAI-compatible servers usually ignore the key

# USD per 1M (input, output) tokens, list prices of mid-2026; check the vendors' pages and
# pass price_in/price_out for anything else (an unknown model costs 0).
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-5-5": (4.0, 20.0),
    "claude-opus-5": (5.0, 25.0),
    "claude-sonnet-5-5": (2.0, 10.0),
    "claude-sonnet-5": (2.0, 10.0),
    "claude-opus-4-7": (5.0, 25.0),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "gemini-3.1-pro-preview": (2.0, 12.0),
    "gemini-3-flash-preview": (0.5, 3.0),
    "gemini-2.5-pro": (1.25, 10.0),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.0),
    "gpt-4o-mini": (0.15, 0.60),
    "meta-llama/llama-4-scout-17b-16e-instruct": (0.11, 0.34),
    "meta-llama/llama-4-maverick-17b-128e-instruct": (0.20, 0.60),
}
_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")  # claude-haiku-4-5-20251001, gpt-4o-2024-08-06


@dataclass(frozen=True)
class Query:
    id: str  # the caller's id, echoed back
    image: bytes = field(repr=False)  # JPEG bytes of the crop
    text: str = ""  # OCR text read there ("" for a logo region without text)


@dataclass(frozen=True)
class Answer:
    id: str
    brand: str | None  # exactly one of the run's brand names, or None
    confidence: float  # 0-1


@dataclass
class Usage:
    """Counters of one or more `ask` calls; add them with `+`."""

    calls: int = 0  # requests answered with a 2xx response (malformed ones included)
    input_tokens: int = 0
    output_tokens: int = 0
    retries: int = 0  # re-sent requests after 429/5xx/timeout/connection error
    malformed: int = 0  # responses that failed validation
    failed: int = 0  # batches given up (after retries, another 4xx, or malformed twice)
    cost_usd: float = 0.0  # estimated from tokens and the price table

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict:
        return asdict(self)


class ProviderError(Exception):
    """A non-retryable error after which nothing more should be sent (bad key, unknown model)."""


def estimate_cost(model: str, input_tokens: int, output_tokens: int,
                  price_in: float | None = None, price_out: float | None = None) -> float:
    name = model.removeprefix("models/")
    table = PRICES.get(name) or PRICES.get(_DATE_SUFFIX.sub("", name)) or (0.0, 0.0)
    per_in = table[0] if price_in is None else price_in
    per_out = table[1] if price_out is None else price_out
    return (input_tokens * per_in + output_tokens * per_out) / 1e6


# --- prompt and validation, shared by all providers ---

_INSTRUCTIONS = (
    "You identify sponsor brands in image crops from sports broadcast video.\n"
    "Allowed brand names (JSON list): {brands}\n\n"
    "For each crop below, say which allowed brand it shows. The OCR text read in the crop, "
    "when given, is a hint and may contain errors.\n"
    "Answer null when you are unsure, when the crop shows no brand, or when its brand is not in the list. "
    "Never answer a name that is not in the list.")

_REPLY_FORMAT = (
    "Reply with only a JSON object, no other text, with one answer per crop id:\n"
    '{"answers": [{"id": "<crop id>", "brand": "<an allowed brand name>" or null, '
    '"confidence": <number from 0.0 to 1.0>}]}')

_OCR_CHARS = 200  # OCR text is a hint; a long garbled line only costs tokens


def build_prompt(queries: list[Query], brands: list[str]) -> list[str | bytes]:
    """The request's content in order: str parts are text, bytes parts are JPEG images."""
    parts: list[str | bytes] = [_INSTRUCTIONS.format(brands=json.dumps(brands, ensure_ascii=False))]
    for q in queries:
        line = f"Crop id: {json.dumps(q.id)}"
        if q.text.strip():
            line += f"\nOCR text: {json.dumps(q.text.strip()[:_OCR_CHARS], ensure_ascii=False)}"
        parts += [line, q.image]
    parts.append(_REPLY_FORMAT)
    return parts


class MalformedReply(ValueError):
    """The model's reply failed validation."""


class _Item(BaseModel):
    model_config = ConfigDict(strict=True)
    id: str | int  # a model may echo an id like "17" as a number
    brand: str | None
    confidence: float = Field(ge=0.0, le=1.0)


class _Reply(BaseModel):
    model_config = ConfigDict(strict=True)
    answers: list[_Item]


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S | re.I)


def parse_answers(text: str | None, ids: set[str], brands: list[str]) -> list[Answer]:
    """Validate a reply against the batch's ids and the brand list; raise MalformedReply."""
    text = (text or "").strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        reply = _Reply.model_validate_json(text)
    except ValidationError as exc:
        raise MalformedReply(f"{exc.error_count()} validation errors, first: {exc.errors()[0]['msg']}") from None
    canonical = {b.casefold(): b for b in reversed(brands)}  # the first spelling wins
    answers: dict[str, Answer] = {}
    for item in reply.answers:
        qid = str(item.id)
        if qid not in ids or qid in answers:
            raise MalformedReply(f"unknown or repeated id {qid!r}")
        brand = None
        if item.brand is not None:
            brand = canonical.get(item.brand.strip().casefold())
            if brand is None:
                raise MalformedReply(f"brand {item.brand!r} is not in the list")
        answers[qid] = Answer(id=qid, brand=brand, confidence=float(item.confidence))
    return list(answers.values())


# --- error handling ---

_STOP_REASONS = {401: "authentication failed", 402: "billing problem", 403: "permission denied",
                 404: "model or endpoint not found"}


def _by_status(status: int) -> tuple[str, int]:
    """'retry' (429, 5xx, and 408/409 as the SDKs do), 'stop' (ProviderError) or 'fail' (this batch)."""
    if status in (408, 409, 429) or status >= 500:
        return "retry", status
    return ("stop" if status in _STOP_REASONS else "fail"), status


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds from a Retry-After header (the HTTP-date form is ignored), at most 60."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        return min(max(float(headers.get("retry-after")), 0.0), 60.0)
    except (AttributeError, TypeError, ValueError):
        return None


class _BatchFailed(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- providers ---

class Provider:
    """One vendor's API. `ask` sends one batch; subclasses implement `_send` and `_classify`."""

    name: str
    max_batch: int | None = None  # crops one request may carry; `ask` splits bigger batches

    def __init__(self, name: str, model: str, *, max_retries: int, backoff_s: float, max_output_tokens: int,
                 price_in: float | None, price_out: float | None):
        self.name, self.model = name, model
        self.max_retries, self.max_output_tokens = max_retries, max_output_tokens
        self.price_in, self.price_out = price_in, price_out
        self._backoff = tenacity.wait_random_exponential(multiplier=backoff_s, max=30)
        self._client = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r})"

    def close(self) -> None:
        getattr(self._client, "close", lambda: None)()

    def ask(self, queries: list[Query], brands: list[str]) -> tuple[list[Answer], Usage]:
        """One batch (several crops in ONE request). Returns an Answer for every query id it
        could validate; a query missing from the result list means unresolved. Retries
        429/5xx/timeouts/connection errors with exponential backoff and jitter, up to
        `max_retries`; a malformed answer is re-asked once, then the batch's queries are
        left unresolved and counted. Raises ProviderError only for errors after which
        nothing more should be tried (bad credentials, unknown model)."""
        if self.max_batch and len(queries) > self.max_batch:
            return self._ask_in_chunks(queries, brands)
        usage = Usage()
        if not queries:
            return [], usage
        parts, ids = build_prompt(queries, brands), {q.id for q in queries}
        for _ in range(2):  # a malformed reply is re-asked once
            try:
                text, tokens_in, tokens_out = self._send_with_retries(parts, usage)
            except _BatchFailed:
                usage.failed += 1
                return [], usage
            usage.calls += 1
            usage.input_tokens += tokens_in
            usage.output_tokens += tokens_out
            usage.cost_usd += estimate_cost(self.model, tokens_in, tokens_out, self.price_in, self.price_out)
            try:
                return parse_answers(text, ids, brands), usage
            except MalformedReply as exc:
                usage.malformed += 1
                log.warning("%s %s: malformed reply (%s)", self.name, self.model, exc)
                log.debug("reply was: %.500s", text)
        usage.failed += 1
        return [], usage

    def _ask_in_chunks(self, queries: list[Query], brands: list[str]) -> tuple[list[Answer], Usage]:
        answers, usage = [], Usage()
        for i in range(0, len(queries), self.max_batch):
            got, used = self.ask(queries[i:i + self.max_batch], brands)
            answers += got
            usage += used
        return answers, usage

    def _send_with_retries(self, parts: list[str | bytes], usage: Usage) -> tuple[str | None, int, int]:
        def count_retry(_state: tenacity.RetryCallState) -> None:
            usage.retries += 1

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1), wait=self._wait, reraise=True,
            retry=tenacity.retry_if_exception(lambda exc: (self._classify(exc) or ("",))[0] == "retry"),
            before_sleep=count_retry)
        try:
            return retrying(self._send, parts)
        except Exception as exc:
            kind = self._classify(exc)
            if kind is None:  # not an API error: a bug, let it surface
                raise
            what, status = kind
            where = f"HTTP {status}" if status else type(exc).__name__
            if what == "stop":
                # `from None`: the SDK's exception carries the request (and its auth header)
                raise ProviderError(f"{self.name}: {_STOP_REASONS.get(status, 'request refused')} ({where})") from None
            log.warning("%s %s: batch failed (%s)", self.name, self.model, where)
            raise _BatchFailed from None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        delay = self._backoff(state)
        after = _retry_after(state.outcome.exception() if state.outcome else None)
        return delay if after is None else max(delay, after)

    def _send(self, parts: list[str | bytes]) -> tuple[str | None, int, int]:
        """One request: (reply text, input tokens, output tokens)."""
        raise NotImplementedError

    def _classify(self, exc: BaseException) -> tuple[str, int | None] | None:
        """(kind, HTTP status) for the SDK's errors, kind as in `_by_status`; None for anything else."""
        raise NotImplementedError


class AnthropicProvider(Provider):
    def __init__(self, model: str, api_key: str, base_url: str | None, timeout_s: float, **kw):
        import anthropic

        super().__init__("anthropic", model, **kw)
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0)

    def _send(self, parts):
        content = [{"type": "text", "text": p} if isinstance(p, str) else
                   {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": _b64(p)}}
                   for p in parts]
        msg = self._client.messages.create(model=self.model, max_tokens=self.max_output_tokens,
                                           messages=[{"role": "user", "content": content}])
        text = "".join(block.text for block in msg.content if block.type == "text")  # skips thinking blocks
        return text, msg.usage.input_tokens, msg.usage.output_tokens

    def _classify(self, exc):
        import anthropic

        if isinstance(exc, anthropic.APIStatusError):
            return _by_status(exc.status_code)
        if isinstance(exc, anthropic.APIConnectionError):  # timeouts included
            return "retry", None
        return ("fail", None) if isinstance(exc, anthropic.AnthropicError) else None


class OpenAIProvider(Provider):
    """OpenAI, Groq and local OpenAI-compatible servers: chat completions with data-URL images."""

    def __init__(self, name: str, model: str, api_key: str, base_url: str | None, timeout_s: float, **kw):
        import openai

        super().__init__(name, model, **kw)
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0)
        if name == "groq":
            self.max_batch = 5  # Groq's vision models take at most 5 images per request

    def _send(self, parts):
        content = [{"type": "text", "text": p} if isinstance(p, str) else
                   {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{_b64(p)}"}} for p in parts]
        if self.name == "openai_compatible":  # local servers know max_tokens; deterministic answers help caching
            limits = {"max_tokens": self.max_output_tokens, "temperature": 0}
        else:  # OpenAI's reasoning models refuse max_tokens (and a temperature other than 1)
            limits = {"max_completion_tokens": self.max_output_tokens}
        resp = self._client.chat.completions.create(model=self.model, messages=[{"role": "user", "content": content}],
                                                    response_format={"type": "json_object"}, **limits)
        text = resp.choices[0].message.content if resp.choices else None
        usage = resp.usage
        return text, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0

    def _classify(self, exc):
        import openai

        if isinstance(exc, openai.APIStatusError):
            if exc.status_code == 429 and exc.code == "insufficient_quota":  # no credit left: retrying won't help
                return "stop", 402
            return _by_status(exc.status_code)
        if isinstance(exc, openai.APIConnectionError):  # timeouts included
            return "retry", None
        return ("fail", None) if isinstance(exc, openai.OpenAIError) else None


class GeminiProvider(Provider):
    def __init__(self, model: str, api_key: str, base_url: str | None, timeout_s: float, **kw):
        from google import genai
        from google.genai import types

        super().__init__("gemini", model, **kw)
        # No retry_options: the SDK's own retries stay off. Its timeout is in milliseconds.
        options = types.HttpOptions(base_url=base_url, timeout=int(timeout_s * 1000))
        self._client = genai.Client(api_key=api_key, http_options=options)

    def _send(self, parts):
        from google.genai import types

        contents = [types.Part.from_text(text=p) if isinstance(p, str) else
                    types.Part.from_bytes(data=p, mime_type="image/jpeg") for p in parts]
        config = types.GenerateContentConfig(max_output_tokens=self.max_output_tokens,
                                             response_mime_type="application/json")
        resp = self._client.models.generate_content(model=self.model, contents=contents, config=config)
        meta = resp.usage_metadata
        if meta is None:
            return resp.text, 0, 0
        # Thinking tokens are billed as output but reported apart from the answer's tokens.
        tokens_out = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
        return resp.text, meta.prompt_token_count or 0, tokens_out

    def _classify(self, exc):
        import httpx
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            if exc.code == 400 and "API_KEY_INVALID" in str(exc.details):  # Gemini's answer to a bad key
                return "stop", 401
            return _by_status(exc.code)
        try:
            import httpx2  # the Gen AI SDK uses httpx; look at its fork too in case a client of it is passed
            transport = (httpx.TransportError, httpx2.TransportError)
        except ImportError:
            transport = (httpx.TransportError,)
        return ("retry", None) if isinstance(exc, transport) else None  # timeouts, connection errors


def make_provider(name: str, model: str, api_key: str | None, base_url: str | None = None,
                  timeout_s: float = 60.0, max_retries: int = 3, backoff_s: float = 1.0,
                  max_output_tokens: int = 1024, price_in: float | None = None,
                  price_out: float | None = None) -> Provider:
    """A provider by name. Cloud providers need `api_key` (the SDKs' own lookups in the
    environment and config files are bypassed); openai_compatible needs `base_url`."""
    if name not in PROVIDERS:
        raise ValueError(f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}")
    if not model:
        raise ValueError(f"{name}: no model given")
    kw = dict(max_retries=max_retries, backoff_s=backoff_s, max_output_tokens=max_output_tokens,
              price_in=price_in, price_out=price_out)
    if name == "openai_compatible":
        if not base_url:
            raise ValueError("openai_compatible: base_url is required (e.g. http://localhost:8000/v1)")
        return OpenAIProvider(name, model, api_key or NO_KEY, base_url, timeout_s, **kw)
    if not api_key:
        raise ProviderError(f"{name}: no API key")
    if name == "anthropic":
        return AnthropicProvider(model, api_key, base_url, timeout_s, **kw)
    if name == "gemini":
        return GeminiProvider(model, api_key, base_url, timeout_s, **kw)
    if name == "groq":
        base_url = base_url or GROQ_BASE_URL
    return OpenAIProvider(name, model, api_key, base_url, timeout_s, **kw)
