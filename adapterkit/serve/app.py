"""The HTTP app of ``adapterkit serve``: OpenAI-compatible chat, ``/v1/classify``, ``/health`` and a chat page.

Bounded by ``schemas.Limits``; every refusal is an OpenAI-style ``{"error": {...}}`` body with a 4xx code.
Model calls run on each model's worker thread (``batching``); the event loop only waits.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .answer import Params, finish, input_blocked, job, prompt_ids, stream
from .batching import QueueExpired
from .schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Classified,
    ClassifyRequest,
    ClassifyResponse,
    ErrorBody,
    Health,
    Limits,
    ModelCard,
    ModelList,
)

log = logging.getLogger("adapterkit.serve")
ERRORS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          405: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error",
          429: "rate_limit_error", 504: "timeout_error"}
RESPONSES = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 422, 429, 504)}


class Refused(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": ERRORS.get(status, "server_error"), "param": param, "code": code}}


async def _send_error(send, status: int, message: str, code: str) -> None:
    body = json.dumps(error_body(status, message, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: the API key on /v1/*, and the body size limit (413) before anything parses it."""

    def __init__(self, app, limits: Limits, api_key: str | None):
        self.app, self.limits, self.api_key = app, limits, api_key

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.api_key and scope["path"].startswith("/v1/"):
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                return await _send_error(send, 401, "missing or wrong API key (Authorization: Bearer KEY)",
                                         "invalid_api_key")
        cap = self.limits.max_body_bytes
        length = headers.get(b"content-length", b"0").decode("latin-1")
        if length.isdigit() and int(length) > cap:
            return await _send_error(send, 413, f"request body over {cap} bytes", "body_too_large")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > cap:
                return await _send_error(send, 413, f"request body over {cap} bytes", "body_too_large")
            if not message.get("more_body"):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def create_app(served: dict, limits: Limits | None = None, api_key: str | None = None, safety=None) -> Guard:
    """The ASGI app (``.app`` is the FastAPI app inside the guard) answering for ``served`` runs."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    limits = limits or Limits()
    app = FastAPI(title="adapterkit serve", version="1", description="OpenAI-compatible chat and classification "
                  "of adapterkit runs")
    pool = ThreadPoolExecutor(max_workers=limits.max_pending + 4, thread_name_prefix="adapterkit-stream")
    state = {"pending": 0}

    @app.exception_handler(Refused)
    async def refused(_request, err: Refused):
        return JSONResponse(error_body(err.status, str(err), err.param, err.code), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, err: RequestValidationError):
        first = (err.errors() or [{}])[0]
        if first.get("type") == "json_invalid":
            return JSONResponse(error_body(400, "malformed JSON body", code="invalid_json"), status_code=400)
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse(error_body(422, f"{param or 'body'}: {first.get('msg', 'invalid')}", param,
                                       "invalid_value"), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request, err: HTTPException):
        status = err.status_code if 400 <= err.status_code < 500 else 400
        return JSONResponse(error_body(status, str(err.detail)), status_code=status)

    def model(name: str, kinds: tuple[str, ...]):
        found = served.get(name)
        if found is None:
            raise Refused(404, f"model {name!r} is not served (GET /v1/models lists them)", "model", "model_not_found")
        if found.kind not in kinds:
            raise Refused(400, f"model {name!r} is a {found.kind} run; use "
                          f"{'/v1/chat/completions' if found.kind == 'chat' else '/v1/classify'}", "model",
                          "wrong_endpoint")
        return found

    def admit():
        if state["pending"] >= limits.max_pending:
            raise Refused(429, f"server busy: {limits.max_pending} requests already in progress; retry later",
                          code="too_many_requests")
        state["pending"] += 1

    def release():
        state["pending"] -= 1

    def expired(wait) -> str:  # a chat request whose time ran out in its model's queue (batching.QueueExpired)
        return f"no answer within {limits.request_seconds:g} s: {wait} (server busy; retry later)"

    @app.get("/health", response_model=Health)
    async def health():
        return Health(models=len(served), pending=state["pending"])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        from importlib.resources import files

        return HTMLResponse(files("adapterkit.serve").joinpath("page.html").read_text(encoding="utf-8"))

    @app.get("/v1/models", response_model=ModelList, responses=RESPONSES)
    async def models():
        return ModelList(data=[ModelCard(id=s.id, created=s.created, task=s.kind, base=s.base)
                               for s in served.values()])

    @app.post("/v1/classify", response_model=ClassifyResponse, responses=RESPONSES)
    async def classify(body: ClassifyRequest):
        from .engine import classify as run_classify

        found = model(body.model, ("classification", "ner"))
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts or len(texts) > limits.max_inputs:
            raise Refused(400, f"input: give 1 to {limits.max_inputs} texts", "input", "invalid_value")
        admit()
        try:
            work = found.backend.call(run_classify, found, texts)
            try:
                rows = await asyncio.wait_for(asyncio.wrap_future(work), limits.request_seconds)
            except TimeoutError:
                work.cancel()
                raise Refused(504, f"classification took over {limits.request_seconds:g} s", code="timeout") from None
        finally:
            release()
        return ClassifyResponse(model=found.id, data=[Classified(**row) for row in rows])

    @app.post("/v1/chat/completions", response_model=ChatCompletion, responses={
        **RESPONSES, 200: {"content": {"text/event-stream": {"schema": ChatCompletionChunk.model_json_schema()}},
                           "description": "a ChatCompletion, or with stream: true server-sent ChatCompletionChunk "
                                          "events ending with data: [DONE]"}})
    async def chat(body: ChatRequest):
        found = model(body.model, ("chat",))
        asked = body.not_implemented()
        if asked:
            raise Refused(400, f"{asked}: not implemented by adapterkit serve (refused rather than ignored: the answer "
                          "would lack what was asked for)", asked, "unsupported_parameter")
        wanted = body.max_tokens or body.max_completion_tokens or limits.max_tokens
        if wanted > limits.max_tokens:
            raise Refused(400, f"max_tokens {wanted} is over this server's cap of {limits.max_tokens}",
                          "max_tokens", "max_tokens_too_large")
        stops = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
        if len(stops) > 4:
            raise Refused(400, "stop: at most 4 strings", "stop", "invalid_value")
        params = Params(wanted, body.temperature, body.top_p, stops, body.seed, limits.request_seconds)
        messages = [m.model_dump() for m in body.messages]
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": found.id}
        if input_blocked(safety, messages):
            return _answer(head, safety.refusal, "content_filter", 0, 0, body.stream)
        prompt = prompt_ids(found, messages)
        room = getattr(found.backend.model.config, "max_position_embeddings", None)
        if room and len(prompt) + wanted > room:
            raise Refused(400, f"the prompt ({len(prompt)} tokens) plus max_tokens ({wanted}) exceeds the "
                          f"model's context of {room} tokens", "messages", "context_length_exceeded")
        admit()
        if body.stream:
            return StreamingResponse(_stream(found, prompt, params, head), media_type="text/event-stream")
        try:
            work = job(found, prompt, params)
            try:
                tokens, reason, count = await asyncio.wait_for(asyncio.wrap_future(found.backend.submit(work)),
                                                               limits.request_seconds + 10)
            except TimeoutError:
                work.cancel.set()
                raise Refused(504, f"no answer within {limits.request_seconds:g} s", code="timeout") from None
            except QueueExpired as err:
                raise Refused(504, expired(err), code="timeout") from None
            text, reason, count = await asyncio.get_running_loop().run_in_executor(pool, finish, found, tokens, reason,
                                                                                   count, params, safety)
        finally:
            release()
        return _answer(head, text, reason, len(prompt), count, False)

    def _answer(head, text, reason, prompt_tokens, count, streaming):
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count, "total_tokens": prompt_tokens + count}
        if not streaming:
            return ChatCompletion(**head, choices=[{"message": {"content": text}, "finish_reason": reason}], usage=usage)

        async def once():
            yield _event(head, {"role": "assistant", "content": text}, None)
            yield _event(head, {}, reason, usage)
            yield "data: [DONE]\n\n"

        return StreamingResponse(once(), media_type="text/event-stream")

    async def _stream(found, prompt, params, head):
        loop = asyncio.get_running_loop()
        work = job(found, prompt, params, streaming=True)
        events = stream(found, work, params, safety)
        try:
            found.backend.submit(work)
            yield _event(head, {"role": "assistant", "content": ""}, None)
            while True:
                event = await loop.run_in_executor(pool, next, events, None)
                if event is None:
                    break
                if event[0] == "delta":
                    yield _event(head, {"content": event[1]}, None)
                elif event[0] == "expired":  # the stream has begun (200): the error as OpenAI streams one, then the end
                    yield f"data: {json.dumps(error_body(504, expired(event[1]), code='timeout'))}\n\n"
                    return
                else:
                    reason, count = event[1]
                    usage = {"prompt_tokens": len(prompt), "completion_tokens": count,
                             "total_tokens": len(prompt) + count}
                    yield _event(head, {}, reason, usage)
            yield "data: [DONE]\n\n"
        finally:
            work.cancel.set()
            release()

    app.state.pending = state
    return Guard(app, limits, api_key)


def _event(head: dict, delta: dict, reason: str | None, usage: dict | None = None) -> str:
    chunk = {**head, "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
    if usage is not None:
        chunk["usage"] = usage
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
