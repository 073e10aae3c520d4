"""The safety filter on its own: word-bounded, case-insensitive blocklist and regexes, a moderator, and the
stream gate never releasing any part of a blocked word."""

from __future__ import annotations

import pytest

from adapterkit.errors import UserError
from adapterkit.serve.safety import StreamGate, build_filter


def test_blocklist_is_word_bounded_and_case_insensitive(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# comment\nbad word\nre:\\bfree\\s+money\\b\n")
    safety = build_filter(blocklist_file=str(words))
    assert safety.check("This is a BAD  word") is None and safety.check("a Bad Word here")
    assert safety.check("badwords") is None and safety.check("FREE   money!")
    assert safety.window >= len("bad word")


def test_stream_gate_releases_nothing_of_a_blocked_word(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("apples\n")
    gate = StreamGate(build_filter(blocklist_file=str(words)))
    sent, text = "", ""
    for piece in ["I like ", "ap", "ple", "s a lot"]:
        text += piece
        sent += gate.update(text)
    assert gate.blocked and "ap" not in sent.replace("I like ", "")
    clean = StreamGate(build_filter(blocklist_file=str(words)))
    assert clean.update("pears and plums") + clean.update("pears and plums.", final=True) == "pears and plums."


def test_moderator_and_config_file(tmp_path):
    config = tmp_path / "filter.toml"
    config.write_text('blocklist = ["nope"]\nmoderator = "mod"\nmoderator_labels = ["toxic"]\n'
                      'moderator_threshold = 0.5\nrefusal = "No."\n')
    safety = build_filter(str(config), classifier_loader=lambda run: lambda text: {
        "toxic": 0.9 if "awful" in text else 0.1, "fine": 0.1})
    assert safety.refusal == "No." and safety.check("nope") and safety.check("awful") and not safety.check("nice")
    (tmp_path / "bad.toml").write_text("blocklst = []\n")
    with pytest.raises(UserError, match="unknown key 'blocklst'"):
        build_filter(str(tmp_path / "bad.toml"))
    with pytest.raises(UserError, match="probability"):
        build_filter(str(config), moderator_threshold=2.0, classifier_loader=lambda run: None)
