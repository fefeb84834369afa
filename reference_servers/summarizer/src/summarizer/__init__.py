"Summarise long documents with the client's LLM, map-reduce style."

from importlib.metadata import version

__version__ = version("summarizer")
