"""Student Data Request Workbench.

The package notebooks import. The disclosure and policy core import nothing from Jupyter;
the Jupyter layer lives in its own modules and is loaded only when a notebook asks for it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("workbench")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
