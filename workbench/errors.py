"""The one error type a user sees: its message is one line naming the file or field and what to do.

The CLI prints it on stderr and exits non-zero; the app shows the same sentence. Anything else
that escapes is a bug in the workbench, not the user's input.
"""


class UserError(ValueError):
    pass
