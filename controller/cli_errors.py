"""The one exception a command raises for a user error: printed as one line, exit code 2."""


class CliError(Exception):
    pass
