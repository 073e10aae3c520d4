"""Request and response bodies of ``adapterkit serve``, as pydantic models so ``/openapi.json`` is exact.

The chat endpoints follow OpenAI's Chat Completions shapes (the subset adapterkit implements); unknown
request fields are ignored, as OpenAI clients send some (``user``...); ``n`` above 1 and the OpenAI parameters
adapterkit does not implement (``NOT_IMPLEMENTED``: logprobs, tools, response_format, penalties, logit_bias) are
refused unless at their no-op values, not silently dropped; numbers and booleans sent as strings are refused (422),
not coerced. Text that is no valid Unicode (a lone surrogate
escape such as ``"\\ud800"``, which JSON allows) is refused (422) before a tokenizer sees it. ``/v1/classify`` is
adapterkit's own: ``{"model": ..., "input": str | [str]}`` -> one label (+ scores) per input for a
classification run, entities with character spans for an NER run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TEXT = 100_000  # characters in one message or classify input (the body limit bounds the total)


def unicode_text(value):
    """``value`` (a string, a list of them or None) if it is valid Unicode: a lone surrogate (JSON's ``"\\ud800"``)
    cannot be encoded or tokenized."""
    for text in [value] if isinstance(value, str) else value or ():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"not valid Unicode text ({err.reason} at character {err.start})") from None
    return value

# OpenAI parameters adapterkit does not implement, with the values that ask for nothing (accepted, as clients
# send some of them by default); any other value is refused, not ignored: an answer without the logprobs, tool
# call or JSON format the client asked for would look like a real one.
NOT_IMPLEMENTED = {"logprobs": (None, False), "top_logprobs": (None, 0), "tools": (None, []), "functions": (None, []),
                   "tool_choice": (None, "none", "auto"), "function_call": (None, "none", "auto"),
                   "response_format": (None, {"type": "text"}), "frequency_penalty": (None, 0),
                   "presence_penalty": (None, 0), "logit_bias": (None, {})}


@dataclass(frozen=True)
class Limits:
    """What one server accepts; each limit answers with an OpenAI-style error body when exceeded."""

    max_body_bytes: int = 1_000_000  # request body -> 413
    max_tokens: int = 512  # cap on a request's max_tokens -> 400; also the default when a request gives none
    max_pending: int = 64  # requests being answered or queued at once -> 429 beyond
    request_seconds: float = 120.0  # from arrival: generation stops (finish_reason "length"); still queued, other work -> 504
    max_batch: int = 16  # non-streaming chat requests of one model generated together
    batch_window_ms: float = 10.0  # how long the first request of a batch waits for company
    max_inputs: int = 64  # texts in one /v1/classify request


class TextPart(BaseModel):
    """One part of a message's content in OpenAI's list form; only text parts (images and audio are refused)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str = Field(max_length=TEXT)

    _unicode = field_validator("text")(unicode_text)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart] = Field(max_length=TEXT, description="a string, or a list of text parts "
                                          "(joined by newlines, as OpenAI-compatible servers do)")

    @field_validator("content")
    @classmethod
    def _text(cls, value):
        if isinstance(value, list):
            value = "\n".join(part.text for part in value)
            if len(value) > TEXT:
                raise ValueError(f"content longer than {TEXT} characters")
        return unicode_text(value)


class ChatRequest(BaseModel):
    # strict: "max_tokens": "5" or "stream": "true" are refused (422) as OpenAI's API refuses them, not coerced
    model_config = ConfigDict(extra="ignore", strict=True)
    model: str = Field(max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1, description="capped by the server's --max-tokens (400 above it)")
    max_completion_tokens: int | None = Field(None, ge=1, description="alias of max_tokens")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="below 0.01: greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = Field(None, description="up to 4 strings; the answer ends before the first")
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="choices per request: one (more are refused, not silently dropped)")
    logprobs: bool | None = Field(None, description="not implemented: true is refused (400)")
    top_logprobs: int | None = Field(None, description="not implemented: above 0 is refused (400)")
    tools: list | None = Field(None, description="not implemented: a non-empty list is refused (400)")
    tool_choice: str | dict | None = Field(None, description="not implemented: other than none/auto is refused (400)")
    functions: list | None = Field(None, description="not implemented: a non-empty list is refused (400)")
    function_call: str | dict | None = Field(None, description="not implemented: other than none/auto is refused")
    response_format: dict | None = Field(None, description='not implemented: other than {"type": "text"} is refused')
    frequency_penalty: float | None = Field(None, description="not implemented: other than 0 is refused (400)")
    presence_penalty: float | None = Field(None, description="not implemented: other than 0 is refused (400)")
    logit_bias: dict | None = Field(None, description="not implemented: a non-empty map is refused (400)")

    _unicode = field_validator("stop")(unicode_text)

    def not_implemented(self) -> str | None:
        """The first parameter asking for something adapterkit does not do (refused with 400), or None."""
        return next((name for name, idle in NOT_IMPLEMENTED.items() if getattr(self, name) not in idle), None)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


FinishReason = Literal["stop", "length", "content_filter"]


class AnswerMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AnswerMessage
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    """One ``data: {...}`` event of a streamed answer (``stream: true``); the stream ends with ``data: [DONE]``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    model: str = Field(max_length=256)
    input: str | list[str] = Field(description="one text or a list (at most --max-inputs)", max_length=TEXT)

    _unicode = field_validator("input")(unicode_text)


class Entity(BaseModel):
    type: str
    text: str
    start: int = Field(description="character offset of the entity in the input")
    end: int = Field(description="character offset just past the entity")
    score: float


class Classified(BaseModel):
    index: int
    label: str | None = Field(None, description="classification runs: the most probable label")
    score: float | None = None
    scores: dict[str, float] | None = Field(None, description="classification runs: probability of each label")
    entities: list[Entity] | None = Field(None, description="NER runs: the entities found")


class ClassifyResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[Classified]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "adapterkit"
    task: str = Field(description="chat (POST /v1/chat/completions) or classification/ner (POST /v1/classify)")
    base: str = Field(description="the base model the run tuned")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models: int
    pending: int
