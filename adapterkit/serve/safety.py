"""The safety filter of ``serve``, ``chat`` and ``generate``: a blocklist and, optionally, a moderator run.

Configured by ``--filter FILE`` (TOML or JSON) and/or flags, e.g. ``--blocklist words.txt --moderator
runs/toxic --moderator-labels toxic --moderator-threshold 0.8``::

    blocklist = ["badword", "re:\\bfree\\s+money\\b"]   # words, or regexes after "re:"
    blocklist_file = "words.txt"                       # one entry a line, same syntax, # comments
    moderator = "runs/toxicity"                        # any adapterkit classification run
    moderator_labels = ["toxic"]                       # labels that block ...
    moderator_threshold = 0.8                          # ... at this probability or above
    refusal = "Sorry, I can't help with that."

Words match case-insensitively at word boundaries. A blocked input is answered with the refusal; a
blocked output is replaced by it (``finish_reason: "content_filter"``) and logged. Streams hold back
``window`` characters (at least the longest literal entry) and check everything accumulated before text
is sent, so blocked words never leave the server.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

log = logging.getLogger("adapterkit.safety")
REFUSAL = "Sorry, I can't help with that."
REGEX_WINDOW = 64  # characters held back for regex entries, whose match length is unknown
KEYS = {"blocklist", "blocklist_file", "moderator", "moderator_labels", "moderator_threshold", "refusal"}


@dataclass
class SafetyFilter:
    patterns: list[re.Pattern] = field(default_factory=list)
    window: int = 0  # characters a stream holds back
    moderator: Callable[[str], dict[str, float]] | None = None  # text -> label probabilities
    moderator_labels: tuple[str, ...] = ()
    threshold: float = 0.8
    refusal: str = REFUSAL

    @property
    def active(self) -> bool:
        return bool(self.patterns) or self.moderator is not None

    def check(self, text: str) -> str | None:
        """Why ``text`` is blocked (a short reason for the log), or None."""
        for pattern in self.patterns:
            found = pattern.search(text)
            if found:
                return f"blocklist match {found.group(0)!r}"
        if self.moderator is not None and text.strip():
            scores = self.moderator(text)
            for label in self.moderator_labels:
                if scores.get(label, 0.0) >= self.threshold:
                    return f"moderator: {label} {scores[label]:.2f} >= {self.threshold}"
        return None

    def blocked(self, text: str, where: str) -> bool:
        reason = self.check(text) if self.active else None
        if reason:
            log.warning("safety filter blocked the %s (%s)", where, reason)
        return reason is not None


def _entry(line: str, source: str) -> tuple[re.Pattern, int]:
    try:
        if line.startswith("re:"):
            return re.compile(line[3:], re.IGNORECASE), REGEX_WINDOW
        return re.compile(rf"(?<!\w){re.escape(line)}(?!\w)", re.IGNORECASE), len(line)
    except re.error as err:
        raise UserError(f"{line!r} is not a valid regex ({err})", where=source) from None


def read_blocklist(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError("blocklist file not found", where=str(path))
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def read_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError("filter config not found", where=str(path))
    try:
        if path.suffix == ".json":
            config = json.loads(path.read_text(encoding="utf-8"))
        else:
            import tomllib

            config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"cannot parse ({str(err).splitlines()[0]})", where=str(path)) from None
    if not isinstance(config, dict):
        raise UserError("expected a table of filter settings", where=str(path))
    unknown = sorted(set(config) - KEYS)
    if unknown:
        raise UserError(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})", where=str(path))
    if "blocklist_file" in config:
        config["blocklist_file"] = str(path.parent / config["blocklist_file"])
    if "moderator" in config:
        config["moderator"] = str(path.parent / config["moderator"])
    return config


def build_filter(config_file: str | None = None, blocklist_file: str | None = None, moderator: str | None = None,
                 moderator_labels: str | None = None, moderator_threshold: float | None = None,
                 classifier_loader: Callable[[str], Callable[[str], dict[str, float]]] | None = None) -> SafetyFilter:
    """A filter from a config file, overridden by flags; ``classifier_loader(run_dir)`` opens a moderator."""
    config = read_config(config_file) if config_file else {}
    where = config_file or "--filter"
    words = list(config.get("blocklist", []))
    if not all(isinstance(w, str) and w for w in words):
        raise UserError("blocklist: expected a list of non-empty strings", where=where)
    for path in filter(None, [config.get("blocklist_file"), blocklist_file]):
        words += read_blocklist(path)
    entries = [_entry(w, blocklist_file or where) for w in words]
    safety = SafetyFilter([p for p, _ in entries], max((n for _, n in entries), default=0),
                          refusal=str(config.get("refusal", REFUSAL)))
    run_dir = moderator or config.get("moderator")
    labels = moderator_labels.split(",") if moderator_labels else config.get("moderator_labels")
    threshold = moderator_threshold if moderator_threshold is not None else config.get("moderator_threshold", 0.8)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise UserError(f"{threshold!r}: expected a probability between 0 and 1", where="moderator_threshold")
    if run_dir:
        if not labels:
            raise UserError("give the labels that block, e.g. --moderator-labels toxic", where="--moderator")
        if classifier_loader is None:
            from .engine import load_moderator as classifier_loader
        safety.moderator = classifier_loader(run_dir)
        safety.moderator_labels, safety.threshold = tuple(x.strip() for x in labels), float(threshold)
        safety.window = max(safety.window, REGEX_WINDOW)
    return safety


class StreamGate:
    """Releases a growing text only once it is checked, holding back its last ``window`` characters (plus
    ``hold``, e.g. for stop strings) so a blocked word is caught before any of it is sent."""

    def __init__(self, safety: SafetyFilter | None, hold: int = 0):
        self.safety = safety if safety is not None and safety.active else None
        self.hold = hold + (self.safety.window if self.safety else 0)
        self.sent = 0
        self.blocked = False

    def update(self, text: str, final: bool = False) -> str:
        """The part of ``text`` (everything so far) now safe to send; '' once blocked."""
        if self.blocked:
            return ""
        if self.safety is not None and self.safety.blocked(text, "output"):
            self.blocked = True
            return ""
        ready = len(text) if final else max(self.sent, len(text) - self.hold)
        out, self.sent = text[self.sent:ready], ready
        return out
