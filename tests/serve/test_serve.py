"""`adapterkit serve` as a client sees it: the real openai client against a live server on loopback (plain
and streaming, two adapters on one base answering differently, 16 concurrent clients), /v1/classify for
classification and NER runs, the API key, every limit with its OpenAI-style error body, the safety filter
(plain and streaming), schemathesis finding no 5xx, and the chat page streaming an answer in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import tiny_recipe
from serve_runs import Server, chat_run, train

KEY = "sekret"
AUTH = {"Authorization": f"Bearer {KEY}"}
ASK = [{"role": "user", "content": "question 3"}]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama_dir, tiny_bert_dir, data_files) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serve")
    found = {"alpha": chat_run(folder, tiny_llama_dir, "alpha", "apples apples apples"),
             "beta": chat_run(folder, tiny_llama_dir, "beta", "zebra zebra zebra")}
    for task in ("classification", "ner"):
        recipe = tiny_recipe(task, "lora", tiny_bert_dir, data_files, train={"max_steps": 2})
        recipe["name"] = task
        found[task] = train(folder, recipe)
    return found


@pytest.fixture(scope="module")
def server(runs):
    live = Server([runs["alpha"], runs["beta"], runs["classification"], runs["ner"]], "--max-tokens", "32",
                  "--max-body-bytes", "20000", "--max-pending", "20", env={"ADAPTERKIT_API_KEY": KEY})
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)


def answer(client, model: str, **kwargs):
    return client.chat.completions.create(model=model, messages=ASK, **{"max_tokens": 8, "temperature": 0, **kwargs})


def test_models_are_the_run_folders(client):
    cards = {m.id: m for m in client.models.list().data}
    assert set(cards) == {"alpha", "beta", "classification", "ner"}
    assert cards["alpha"].task == "chat" and cards["ner"].task == "ner"


def test_plain_and_streamed_answers_agree_and_adapters_differ(client):
    alpha, beta = answer(client, "alpha"), answer(client, "beta")
    assert "apples" in alpha.choices[0].message.content  # what alpha was trained to say
    assert alpha.choices[0].message.content != beta.choices[0].message.content
    assert alpha.choices[0].finish_reason == "length" and alpha.usage.completion_tokens == 8
    assert alpha.usage.total_tokens == alpha.usage.prompt_tokens + 8
    chunks = list(answer(client, "alpha", stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == alpha.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length" and chunks[-1].usage.completion_tokens == 8
    assert len([c for c in chunks if c.choices[0].delta.content]) > 1  # it did stream


def test_stop_strings_and_seeds(client):
    cut = answer(client, "alpha", stop=["apples apples"])
    assert "apples apples" not in cut.choices[0].message.content and cut.choices[0].finish_reason == "stop"
    one, two = (client.chat.completions.create(model="beta", messages=ASK, max_tokens=8, temperature=1.0, seed=7)
                for _ in range(2))
    assert one.choices[0].message.content == two.choices[0].message.content


def test_text_parts_are_one_message_and_n_above_one_is_refused(client):
    """OpenAI's list form of content ([{"type": "text", ...}]) is read as its text (it was a 422); n=2 asked for two
    choices and silently got one: now a 4xx with an error body."""
    from openai import BadRequestError, UnprocessableEntityError

    parts = [{"role": "user", "content": [{"type": "text", "text": "question 3"}]}]
    as_parts = client.chat.completions.create(model="alpha", messages=parts, max_tokens=8, temperature=0)
    assert as_parts.choices[0].message.content == answer(client, "alpha").choices[0].message.content
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    for refused in ({"messages": image}, {"messages": ASK, "n": 2}):
        with pytest.raises((BadRequestError, UnprocessableEntityError)):
            client.chat.completions.create(model="alpha", max_tokens=8, **refused)


def test_sixteen_concurrent_clients_are_all_answered(client):
    def ask(i):
        model, streaming = ("alpha", "beta")[i % 2], i % 4 == 3
        got = client.chat.completions.create(model=model, messages=ASK, max_tokens=6, temperature=0, stream=streaming)
        if streaming:
            return model, "".join(c.choices[0].delta.content or "" for c in got)
        return model, got.choices[0].message.content

    with ThreadPoolExecutor(16) as pool:
        done = list(pool.map(ask, range(16)))
    assert len(done) == 16 and all(text for _, text in done)
    for model in ("alpha", "beta"):  # batched answers are the answers of one request alone
        alone = answer(client, model, max_tokens=6).choices[0].message.content
        assert {text for m, text in done if m == model} == {alone}


def test_classify_labels_and_entities(server):
    r = requests.post(server.url + "/v1/classify", headers=AUTH, json={"model": "classification",
                                                                       "input": ["a fine film", "dull"]})
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert len(rows) == 2 and rows[0]["label"] in rows[0]["scores"]
    assert abs(sum(rows[0]["scores"].values()) - 1) < 1e-4
    text = "Barack Obama visited Paris with Google"
    r = requests.post(server.url + "/v1/classify", headers=AUTH, json={"model": "ner", "input": text})
    assert r.status_code == 200, r.text
    for entity in r.json()["data"][0]["entities"]:
        assert text[entity["start"]:entity["end"]] == entity["text"] and entity["type"]


def error(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()["error"]
    assert set(body) == {"message", "type", "param", "code"} and body["message"]
    return body


def test_api_key_is_required(server):
    assert error(requests.get(server.url + "/v1/models"), 401)["code"] == "invalid_api_key"
    error(requests.get(server.url + "/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
    from openai import AuthenticationError, OpenAI

    with pytest.raises(AuthenticationError):
        OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert requests.get(server.url + "/health").status_code == 200  # probes need no key


def test_limits_answer_with_error_bodies(server):
    url = server.url + "/v1/chat/completions"
    big = {"model": "alpha", "messages": [{"role": "user", "content": "x" * 30000}]}
    assert error(requests.post(url, headers=AUTH, json=big), 413)["code"] == "body_too_large"
    over = {"model": "alpha", "messages": ASK, "max_tokens": 33}
    assert error(requests.post(url, headers=AUTH, json=over), 400)["param"] == "max_tokens"
    assert error(requests.post(url, headers={**AUTH, "Content-Type": "application/json"}, data="{nope"),
                 400)["code"] == "invalid_json"
    assert error(requests.post(url, headers=AUTH, json={"model": "alpha", "messages": "hi"}), 422)["param"]
    assert error(requests.post(url, headers=AUTH, json={"model": "nobody", "messages": ASK}), 404)
    assert error(requests.post(url, headers=AUTH, json={"model": "ner", "messages": ASK}), 400)
    long = {"model": "alpha", "messages": [{"role": "user", "content": "word " * 3000}], "max_tokens": 4}
    assert error(requests.post(url, headers=AUTH, json=long), 400)["code"] == "context_length_exceeded"
    assert server.alive()


def test_requests_beyond_the_queue_bound_get_429(server):
    body = {"model": "alpha", "messages": ASK, "max_tokens": 32, "temperature": 0, "stream": True}

    def ask(_):
        with requests.post(server.url + "/v1/chat/completions", headers=AUTH, json=body, stream=True) as r:
            return r.status_code, r.content

    with ThreadPoolExecutor(40) as pool:
        done = list(pool.map(ask, range(40)))
    codes = [code for code, _ in done]
    assert set(codes) == {200, 429} and codes.count(200) >= 20, codes
    refused = next(content for code, content in done if code == 429)
    assert json.loads(refused)["error"]["type"] == "rate_limit_error"
    assert server.alive()


@pytest.fixture(scope="module")
def filtered(runs, tmp_path_factory):
    words = tmp_path_factory.mktemp("filter") / "words.txt"
    words.write_text("# blocked words\nforbidden\napples\n")
    live = Server([runs["alpha"]], "--blocklist", str(words), "--max-tokens", "32")
    yield live
    live.stop()


def test_safety_filter_blocks_inputs_and_outputs(filtered):
    from openai import OpenAI

    from adapterkit.serve.safety import REFUSAL

    client = OpenAI(base_url=filtered.url + "/v1", api_key="none", max_retries=0)
    asked = client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "say FORBIDDEN"}])
    assert asked.choices[0].message.content == REFUSAL and asked.choices[0].finish_reason == "content_filter"
    said = answer(client, "alpha")  # alpha says "apples", which the blocklist holds
    assert said.choices[0].message.content == REFUSAL and said.choices[0].finish_reason == "content_filter"
    chunks = list(answer(client, "alpha", stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "apples" not in streamed.lower() and streamed.endswith(REFUSAL)
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert "safety filter blocked the output" in filtered.log.read_text()


def test_schemathesis_finds_no_server_error(server, tmp_path):
    cli = Path(sys.executable).with_name("schemathesis")
    cmd = [str(cli), "run", server.url + "/openapi.json", "--checks", "not_a_server_error", "--max-examples", "25",
           "--header", f"Authorization: Bearer {KEY}", "--phases", "examples,coverage,fuzzing",
           "--request-timeout", "60", "--generation-deterministic", "--no-color"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=500, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert server.alive()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def page_state(url: str, profile: Path, until: str, seconds: float = 120) -> dict:
    """Open ``url`` in headless Chromium and read the page over the DevTools protocol once
    ``document.body.dataset.state`` is ``until`` (a streamed answer takes real time, which --dump-dom's
    virtual time budget does not wait for)."""
    import asyncio
    import time

    import aiohttp
    from serve_runs import free_port

    port = free_port()
    browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                "--disable-component-update", "--disable-sync", "--no-first-run",
                                f"--remote-debugging-port={port}", f"--user-data-dir={profile}", url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def read() -> dict:
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
                        pages = [p for p in await r.json() if p.get("type") == "page"]
                    if pages:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
            async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                expression = ("JSON.stringify({state: document.body.dataset.state, models: document.body.dataset.models,"
                              " html: document.getElementById('log').innerHTML})")
                for n in range(1, 10**6):
                    await ws.send_json({"id": n, "method": "Runtime.evaluate", "params": {"expression": expression}})
                    while (reply := await ws.receive_json()).get("id") != n:
                        pass
                    found = json.loads(reply["result"]["result"].get("value") or "{}")
                    if found.get("state") in (until, "error") or time.monotonic() > deadline:
                        return found
                    await asyncio.sleep(0.5)

    try:
        return asyncio.run(asyncio.wait_for(read(), seconds + 30))
    finally:
        browser.terminate()
        browser.wait(timeout=30)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)")
def test_chat_page_streams_an_answer_in_chromium(server, tmp_path):
    found = page_state(f"{server.url}/?ask=question%203&key={KEY}", tmp_path / "profile", until="answered")
    assert found["models"] == "alpha,beta" and found["state"] == "answered", found
    assert '<div class="user">question 3</div>' in found["html"]
    assert "apples" in found["html"].split('class="assistant"', 1)[1] and 'data-finish="length"' in found["html"]
