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
import signal
import threading

log = logging.getLogger("adapterkit.serve")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(run_dirs: list[str], host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          limits=None, safety=None) -> None:
    """Load ``run_dirs`` and answer on ``host:port`` until interrupted (Ctrl-C or SIGTERM: requests in
    progress finish, up to 5 s, then this returns)."""
    from .app import create_app
    from .engine import close, open_runs

    api_key = api_key or os.environ.get("ADAPTERKIT_API_KEY") or None
    served = open_runs(run_dirs, limits)
    app = create_app(served, limits, api_key, safety)
    where = f"http://{host}:{port}"
    log.info("serving %s at %s/v1 (chat page: %s/)%s", ", ".join(served), where, where,
             "" if api_key else "; no API key required")
    try:
        stopped_by = _run_until_stopped(app, host, port)
    finally:
        close(served)
    if stopped_by is not None:
        log.info("stopped (%s)", signal.Signals(stopped_by).name)


def _run_until_stopped(app, host: str, port: int) -> int | None:
    """uvicorn until Ctrl-C or SIGTERM; returns the signal that stopped it.

    uvicorn (>= 0.29) stops gracefully on either signal, then raises it again for the handler it found
    installed: Python's default ones would end the process with 143 (SIGTERM, the models never closed) or a
    KeyboardInterrupt (130). So a handler that only takes note is installed first; it also stops a server
    that has not yet taken the signals over itself."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=5))
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        server.run()
        return None
    received: list[int] = []

    def note(signum, _frame):
        received.append(signum)
        server.should_exit = True

    previous = {signum: signal.signal(signum, note) for signum in STOP_SIGNALS}
    try:
        server.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return received[0] if received else None
