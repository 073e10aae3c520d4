"""Requests a client may send that the server used to get wrong, through the real app in-process (FastAPI's
TestClient, server errors returned, not raised): text with a lone surrogate (a 500 from the tokenizer before),
OpenAI parameters adapterkit does not implement (silently ignored before: an answer without the logprobs or tool
call asked for), and a LoRA run served beside an IA3 run on the same base (the server did not start)."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_recipe
from serve_runs import chat_run, train

from adapterkit.serve.app import create_app
from adapterkit.serve.engine import close, open_runs

ASK = [{"role": "user", "content": "question 3"}]


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_llama_dir, tiny_bert_dir, data_files):
    from fastapi.testclient import TestClient

    folder = tmp_path_factory.mktemp("requests")
    ia3 = tiny_recipe("chat", "ia3", tiny_llama_dir, data_files, train={"max_steps": 1})
    ia3["task"]["num_samples"], ia3["name"] = 0, "ia3"
    cls = tiny_recipe("classification", "lora", tiny_bert_dir, data_files, train={"max_steps": 1})
    cls["name"] = "cls"
    runs = [chat_run(folder, tiny_llama_dir, "alpha", "apples apples apples"), train(folder, ia3), train(folder, cls)]
    served = open_runs(runs)  # before: "Cannot combine adapters with different peft types" (alpha is a LoRA)
    with TestClient(create_app(served), raise_server_exceptions=False) as test_client:
        test_client.served = served  # for a second app over the same models (other limits)
        yield test_client
    close(served)


def refused(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    return response.json()["error"]


def test_a_lora_and_an_ia3_run_on_one_base_are_both_served(client):
    for name in ("alpha", "ia3"):
        answer = client.post("/v1/chat/completions", json={"model": name, "messages": ASK, "max_tokens": 3,
                                                           "temperature": 0})
        assert answer.status_code == 200, answer.text
    said = client.post("/v1/chat/completions", json={"model": "alpha", "messages": ASK, "max_tokens": 6,
                                                     "temperature": 0}).json()["choices"][0]["message"]["content"]
    assert "apples" in said  # the LoRA run's own adapter answers


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "alpha", "messages": [{"role": "user", "content": "hi \ud800"}]}),
    ("/v1/chat/completions", {"model": "alpha", "messages": [{"role": "user", "content": [{"type": "text",
                                                                                          "text": "\udc00"}]}]}),
    ("/v1/chat/completions", {"model": "alpha", "messages": ASK, "stop": ["\ud83d"]}),
    ("/v1/classify", {"model": "cls", "input": ["fine", "\ud800"]}),
])
def test_text_with_a_lone_surrogate_is_a_422(client, path, body):
    sent = json.dumps(body)  # ASCII, with the lone surrogate as JSON's \\uXXXX escape (valid JSON)
    error = refused(client.post(path, content=sent, headers={"Content-Type": "application/json"}), 422)
    assert error["type"] == "invalid_request_error"
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("extra, param", [({"logprobs": True, "top_logprobs": 2}, "logprobs"),
                                          ({"top_logprobs": 2}, "top_logprobs"),
                                          ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
                                          ({"tool_choice": "required"}, "tool_choice"),
                                          ({"response_format": {"type": "json_object"}}, "response_format"),
                                          ({"frequency_penalty": 1.0}, "frequency_penalty"),
                                          ({"presence_penalty": -0.5}, "presence_penalty"),
                                          ({"logit_bias": {"50": 100}}, "logit_bias")])
def test_parameters_adapterkit_does_not_implement_are_refused_not_ignored(client, extra, param):
    error = refused(client.post("/v1/chat/completions", json={"model": "alpha", "messages": ASK, **extra}), 400)
    assert error["param"] == param and error["code"] == "unsupported_parameter"


@pytest.mark.parametrize("field, value", [("max_tokens", "5"), ("temperature", "0.5"), ("stream", "true"),
                                          ("seed", "7"), ("max_tokens", 5.5)])
def test_a_number_or_boolean_sent_as_a_string_is_refused_not_coerced(client, field, value):
    """OpenAI's API refuses "max_tokens": "5"; pydantic's lax mode read it as 5 (and "true" as a stream)."""
    error = refused(client.post("/v1/chat/completions", json={"model": "alpha", "messages": ASK, field: value}), 422)
    assert field in error["message"] and error["type"] == "invalid_request_error"
    assert client.post("/v1/chat/completions", json={"model": "alpha", "messages": ASK, "max_tokens": 2,
                                                     "temperature": 0}).status_code == 200


def test_their_no_op_values_are_accepted(client):
    idle = {"logprobs": False, "tools": [], "tool_choice": "auto", "response_format": {"type": "text"},
            "frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {}, "max_tokens": 2}
    assert client.post("/v1/chat/completions", json={"model": "alpha", "messages": ASK, **idle}).status_code == 200


def test_usage_counts_a_stop_string_cut_alike_plain_and_streamed(client):
    """The completion's tokens up to the one completing the stop string, both ways: before, a plain answer
    counted every token generated past the stop (it runs to max_tokens) and a stream the one or two it took to
    notice the cancel."""
    body = {"model": "alpha", "messages": ASK, "max_tokens": 8, "temperature": 0, "stop": ["s a"]}
    plain = client.post("/v1/chat/completions", json=body).json()
    events = [json.loads(line[len("data: "):]) for line in client.post("/v1/chat/completions", json={
        **body, "stream": True}).text.splitlines() if line.startswith("data: {")]
    streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    usage = next(e["usage"] for e in events if e.get("usage"))
    assert plain["choices"][0]["message"]["content"] == streamed == " apple"
    assert plain["choices"][0]["finish_reason"] == "stop"
    assert plain["usage"]["completion_tokens"] == usage["completion_tokens"] == 2  # " apples", " apples"
    assert plain["usage"]["total_tokens"] == plain["usage"]["prompt_tokens"] + 2


def test_a_request_whose_time_runs_out_in_the_queue_gets_a_504_not_an_empty_answer(client):
    """The request's time (Limits.request_seconds) counts from its arrival: one still queued behind other work when it
    runs out was answered 200 with no text and finish_reason "length", as if cut at max_tokens. Now: a 504 naming the
    wait (streamed: the stream's error event, as OpenAI sends one), and the server answers the next request."""
    import time

    from fastapi.testclient import TestClient

    from adapterkit.serve.schemas import Limits

    backend = client.served["alpha"].backend
    body = {"model": "alpha", "messages": ASK, "max_tokens": 4}
    with TestClient(create_app(client.served, Limits(request_seconds=0.5)), raise_server_exceptions=False) as quick:
        for streamed in (False, True):
            busy = backend.call(time.sleep, 1.5)  # the model's worker is busy past the request's time
            response = quick.post("/v1/chat/completions", json={**body, "stream": streamed})
            busy.result()
            if streamed:
                assert response.status_code == 200
                events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
                error = json.loads(events[-1])["error"]
            else:
                error = refused(response, 504)
            assert error["code"] == "timeout" and "no answer within 0.5 s: waited" in error["message"], error
            assert "server busy; retry later" in error["message"] and "\n" not in error["message"]
        assert quick.post("/v1/chat/completions", json=body).status_code == 200
