"""Errors a user can act on. The CLI prints them as one line and exits with their code."""


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
