"""Errors a user can act on. The CLI prints them as one line and exits with their code."""


class UserError(Exception):
    """A problem with the user's input (recipe, data, command line). Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class TrainingFailed(Exception):
    """Training stopped on a numerical fault (NaN/inf). Exit code 3."""

    exit_code = 3
