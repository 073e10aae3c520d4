"""Errors a user can act on. The CLI prints them as one line and exits with their code."""

import re
from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """A problem with the user's input (recipe, data, command line). Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        self.message = message  # without ``where``: a caller that knows better names the place (api.evaluate_run)
        super().__init__(f"{where}: {message}" if where else message)


class TrainingFailed(Exception):
    """Training stopped on a numerical fault (NaN/inf). Exit code 3."""

    exit_code = 3


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM during a run: a checkpoint was saved, rerunning the same command resumes.
    Exit code 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""

    exit_code = 130

    def __init__(self, message: str, *, run_dir, exit_code: int = 130):
        self.run_dir = run_dir
        self.exit_code = exit_code
        super().__init__(message)


# The command line's words in a UserError's message -> what a library caller passes instead (``adapterkit.run``)
_LIBRARY_WORDS = ((re.compile(r"--overwrite\b"), "overwrite=True"), (re.compile(r"--force\b"), "force=True"),
                  (re.compile(r"--output (\S+)"), r"output=\1"), (re.compile(r"--output\b"), "output"),
                  (re.compile(r"--set\b"), "overrides"))


@contextmanager
def in_library_terms() -> Iterator[None]:
    """Errors raised within name the library's arguments (``overwrite=True``), not the command-line flags the
    same code names for ``adapterkit run`` (``--overwrite``): the messages are shared, the words are the caller's."""
    try:
        yield
    except UserError as err:
        err.message, err.where = _library_words(err.message), err.where and _library_words(err.where)
        err.args = (f"{err.where}: {err.message}" if err.where else err.message,)
        raise


def _library_words(text: str) -> str:
    for pattern, words in _LIBRARY_WORDS:
        text = pattern.sub(words, text)
    return text
