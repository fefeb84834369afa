"""Weather: facts from Open-Meteo, judgment from the LLM.

The LLM cannot know today's weather, so it is never asked for it. The geocoding and
forecast APIs supply every number in the report; the LLM, given those facts, supplies
only a summary, practical advice and a severity level, as structured output. Bad input
and API failures are reported before any sampling; nothing half-filled is returned.

Open-Meteo's public API is free for non-commercial use; point `WEATHER_GEOCODING_URL`
and `WEATHER_FORECAST_URL` at a commercial or self-hosted instance otherwise.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import httpx
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..core import LLM, GatewaySettings, Prompt

Units = Literal["metric", "imperial"]
Severity = Literal["calm", "advisory", "warning", "danger"]

# WMO weather interpretation codes, as Open-Meteo documents them.
WMO_CONDITIONS = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}
UNIT_PARAMETERS = {
    "metric": {},
    "imperial": {
        "temperature_unit": "fahrenheit",
        "wind_speed_unit": "mph",
        "precipitation_unit": "inch",
    },
}
SYSTEM = (
    "You are a weather briefer. You are given measured weather facts for one place. "
    "Judge them: do not restate or change the numbers, and do not invent conditions "
    "that the facts do not show."
)


class Settings(BaseSettings):
    """Weather pattern."""

    model_config = SettingsConfigDict(env_prefix="WEATHER_")

    geocoding_url: str = Field(
        "https://geocoding-api.open-meteo.com/v1/search",
        description="Open-Meteo geocoding endpoint.",
    )
    forecast_url: str = Field(
        "https://api.open-meteo.com/v1/forecast",
        description="Open-Meteo forecast endpoint.",
    )
    http_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for each weather API request."
    )


class Location(BaseModel):
    """The place the report is for: always the one the geocoder chose."""

    name: str
    region: str | None = None
    country: str
    latitude: float
    longitude: float


class Conditions(BaseModel):
    """Measured facts, in the units the API reported them in."""

    observed_at: str = Field(description="Local time of the observation.")
    condition: str = Field(description="From the WMO weather code.")
    temperature: float
    apparent_temperature: float
    high: float = Field(description="Today's forecast high.")
    low: float = Field(description="Today's forecast low.")
    temperature_unit: str
    wind_speed: float
    wind_speed_unit: str
    precipitation: float
    precipitation_unit: str


class Judgment(BaseModel):
    """What the LLM contributes: judgment, never numbers."""

    summary: str = Field(description="One paragraph describing the weather.")
    advice: list[str] = Field(
        min_length=1, max_length=5, description="Short, practical pieces of advice."
    )
    severity: Severity = Field(
        description="calm: nothing to note; advisory: take care; warning: plan "
        "around it; danger: avoid being outside."
    )


class WeatherReport(BaseModel):
    """Measured facts about a place's weather, and the LLM's judgment of them."""

    location: Location
    conditions: Conditions
    summary: str
    advice: list[str]
    severity: Severity


class WeatherServiceError(ToolError):
    """A weather API could not be reached or sent something unusable."""


def register(mcp: FastMCP, gateway: GatewaySettings, settings: Settings) -> None:
    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
    async def get_weather(
        city: Annotated[
            str,
            Field(description='A place name, optionally qualified: "Paris, US".'),
        ],
        ctx: Context,
        units: Annotated[
            Units, Field(description="metric (°C, km/h, mm) or imperial (°F, mph, in).")
        ] = "metric",
    ) -> WeatherReport:
        """Current weather for a place: measured facts, and advice from your LLM."""
        name, qualifier = parse_city(city)
        llm = LLM(ctx, gateway)
        api = OpenMeteo(settings)
        # Read once per call: a modern call's later rounds reuse what was read.
        location = await llm.step("geocode", api.locate, name, qualifier)
        await llm.report_progress(1, 3, f"found {location.name}, {location.country}")
        conditions = await llm.step("forecast", api.conditions, location, units)
        await llm.report_progress(2, 3, "fetched the forecast")
        facts = json.dumps(
            {"location": location.model_dump(), "conditions": conditions.model_dump()},
            ensure_ascii=False,
        )
        judgment = await llm.structured(
            Prompt("Judge the weather these facts describe.", facts=facts),
            result_type=Judgment,
            system=SYSTEM,
            temperature=0.2,
            max_tokens=600,
        )
        await llm.report_progress(3, 3, "judged the weather")
        return WeatherReport(
            location=location, conditions=conditions, **judgment.model_dump()
        )


def parse_city(city: str) -> tuple[str, str | None]:
    """Split `"Paris, US"` into the name and its qualifier (a country or region).

    >>> parse_city(" Springfield ,  Illinois ")
    ('Springfield', 'Illinois')
    """
    parts = [part.strip() for part in city.split(",")]
    if not parts[0]:
        raise ToolError(
            'city is empty: pass a place name, e.g. "Paris" or "Paris, FR".'
        )
    return parts[0], (parts[-1] or None) if len(parts) > 1 else None


class OpenMeteo:
    """The two Open-Meteo endpoints, with every failure turned into a clear error."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def locate(self, name: str, qualifier: str | None) -> Location:
        """The top geocoding match, or the top one matching the qualifier."""
        params: dict[str, Any] = {"name": name, "count": 10, "format": "json"}
        if qualifier and len(qualifier) == 2 and qualifier.isalpha():
            params["countryCode"] = qualifier.upper()
        payload = await self._get("geocoding", self._settings.geocoding_url, params)
        places = _parse("geocoding", _GeocodingPayload, payload).results
        if qualifier and "countryCode" not in params:
            wanted = qualifier.casefold()
            places = [
                p
                for p in places
                if wanted in {p.country.casefold(), (p.admin1 or "").casefold()}
            ]
        if not places:
            where = f" in {qualifier}" if qualifier else ""
            raise ToolError(
                f"No place called {name!r}{where} is known to the geocoder."
            )
        top = places[0]
        return Location(
            name=top.name,
            region=top.admin1,
            country=top.country,
            latitude=top.latitude,
            longitude=top.longitude,
        )

    async def conditions(self, location: Location, units: Units) -> Conditions:
        params = {
            "latitude": location.latitude,
            "longitude": location.longitude,
            "current": "temperature_2m,apparent_temperature,precipitation,"
            "weather_code,wind_speed_10m",
            "daily": "temperature_2m_max,temperature_2m_min",
            "timezone": "auto",
            "forecast_days": 1,
            **UNIT_PARAMETERS[units],
        }
        payload = await self._get("forecast", self._settings.forecast_url, params)
        forecast = _parse("forecast", _ForecastPayload, payload)
        now, today = forecast.current, forecast.daily
        if not today.temperature_2m_max or not today.temperature_2m_min:
            raise WeatherServiceError(
                "The forecast service sent no daily high and low; nothing was returned."
            )
        return Conditions(
            observed_at=now.time,
            condition=WMO_CONDITIONS.get(
                now.weather_code, f"unknown (WMO code {now.weather_code})"
            ),
            temperature=now.temperature_2m,
            apparent_temperature=now.apparent_temperature,
            high=today.temperature_2m_max[0],
            low=today.temperature_2m_min[0],
            temperature_unit=forecast.current_units.temperature_2m,
            wind_speed=now.wind_speed_10m,
            wind_speed_unit=forecast.current_units.wind_speed_10m,
            precipitation=now.precipitation,
            precipitation_unit=forecast.current_units.precipitation,
        )

    async def _get(self, service: str, url: str, params: dict[str, Any]) -> Any:
        try:
            async with httpx.AsyncClient(timeout=self._settings.http_timeout) as http:
                response = await http.get(url, params=params)
        except httpx.TimeoutException:
            raise WeatherServiceError(
                f"The {service} service at {url} did not answer within "
                f"{self._settings.http_timeout:g} s (WEATHER_HTTP_TIMEOUT)."
            ) from None
        except httpx.TransportError as error:
            raise WeatherServiceError(
                f"Could not reach the {service} service at {url}: {error}"
            ) from None
        if response.is_error:
            raise WeatherServiceError(
                f"The {service} service answered HTTP {response.status_code}: "
                f"{_reason(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise WeatherServiceError(
                f"The {service} service sent something that is not JSON."
            ) from None


def _reason(response: httpx.Response) -> str:
    """Open-Meteo's error bodies are `{"error": true, "reason": "..."}`."""
    try:
        return str(response.json()["reason"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or "no reason given"


def _parse(service: str, model: type[BaseModel], payload: Any) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise WeatherServiceError(
            f"The {service} service sent an unexpected response ({where}: "
            f"{first['msg']}); nothing was returned."
        ) from None


class _Place(BaseModel):
    name: str
    latitude: float
    longitude: float
    country: str
    admin1: str | None = None


class _GeocodingPayload(BaseModel):
    # Open-Meteo leaves `results` out when nothing matches.
    results: list[_Place] = []


class _CurrentUnits(BaseModel):
    temperature_2m: str
    wind_speed_10m: str
    precipitation: str


class _Current(BaseModel):
    time: str
    temperature_2m: float
    apparent_temperature: float
    precipitation: float
    weather_code: int
    wind_speed_10m: float


class _Daily(BaseModel):
    temperature_2m_max: list[float]
    temperature_2m_min: list[float]


class _ForecastPayload(BaseModel):
    current_units: _CurrentUnits
    current: _Current
    daily: _Daily
