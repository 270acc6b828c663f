"""Student Data Request Workbench.

The package notebooks import. The disclosure and policy core import nothing from Jupyter;
the Jupyter layer lives in its own modules and is loaded only when a notebook asks for it.
"""

import sys as _sys

# Kept equal to pyproject.toml's version by tests/test_environment.py; reading it from the
# installed metadata instead costs a third of a second on every command.
__version__ = "0.1.0"

# Notebooks are read and written through nbformat, which validates with jsonschema; jsonschema's
# optional IRI format checker compiles about 40 grammars when it is imported (2 s of every fill,
# batch worker and release check). No schema the workbench validates has an IRI field, so that
# checker is not loaded in a process that uses the workbench.
_sys.modules.setdefault("rfc3987_syntax", None)


def load_ipython_extension(ipython):
    """``%load_ext workbench``: guard everything the notebook shows (see docs/guard.md)."""
    from workbench.guard.ipython import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython):
    """``%unload_ext workbench``: restore pandas' own display."""
    from workbench.guard.ipython import unload_ipython_extension as unload

    unload(ipython)
