"A council of nine personas debates, votes and synthesises with the client's LLM."

from importlib.metadata import version

__version__ = version("council")
