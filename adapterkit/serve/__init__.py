"""``adapterkit serve`` and ``adapterkit chat``: finished runs answering over HTTP or in the terminal.

    app.py      the FastAPI app (OpenAI-compatible chat, /v1/classify, /health, the chat page at /)
    engine.py   runs -> served models (one base model in memory per base, adapters by name), classification
    batching.py one worker thread per model; concurrent chat requests batched into one generate call
    answer.py   a chat answer: prompt, generation job, stop strings, streaming through the safety filter
    safety.py   blocklist + moderator run
    repl.py     the terminal chat
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("adapterkit.serve")


def serve(run_dirs: list[str], host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          limits=None, safety=None) -> None:
    """Load ``run_dirs`` and answer on ``host:port`` until interrupted."""
    import uvicorn

    from .app import create_app
    from .engine import close, open_runs

    api_key = api_key or os.environ.get("ADAPTERKIT_API_KEY") or None
    served = open_runs(run_dirs, limits)
    app = create_app(served, limits, api_key, safety)
    where = f"http://{host}:{port}"
    log.info("serving %s at %s/v1 (chat page: %s/)%s", ", ".join(served), where, where,
             "" if api_key else "; no API key required")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        close(served)
