"Researches a local document corpus with the client's LLM, citing what it read."

from importlib.metadata import version

__version__ = version("research-agent")
