"Current weather from Open-Meteo, judged by the client's LLM."

from importlib.metadata import version

__version__ = version("weather")
