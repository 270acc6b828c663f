"""The errors a person can act on, and the exit code each one ends a command with.

Every error the workbench raises for something a user can fix derives from `WorkbenchError`.
The command line maps them to exit codes in one place (`workbench.cli`): the message goes to
stderr as one paragraph, never with a traceback.

- `InputError` (exit 2): a request, cohort, policy, table, option or file the user gave is not
  valid. The message names the field or file.
- `EnvironmentProblem` (exit 1): the warehouse, register, disk or a service cannot be used.

Messages never quote student data: they name where the problem is, not the value.
"""

from __future__ import annotations

import errno

INPUT_EXIT_CODE = 2
ENVIRONMENT_EXIT_CODE = 1
# Failures of the machine rather than of the command (a full, read-only or unwritable disk): an
# environment problem wherever they are met.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM})


class WorkbenchError(Exception):
    """Base of every user-facing error; `exit_code` is what the command line ends with."""

    exit_code = INPUT_EXIT_CODE


class InputError(WorkbenchError, ValueError):
    """Something the user gave is not valid (exit 2)."""

    exit_code = INPUT_EXIT_CODE


class EnvironmentProblem(WorkbenchError, RuntimeError):
    """Something the workbench needs cannot be used: warehouse, register, disk (exit 1)."""

    exit_code = ENVIRONMENT_EXIT_CODE
