"""Weather: facts from a stand-in Open-Meteo on loopback, judgment from the LLM."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import (
    CLIENT_SIDE_FAILURES,
    SAMPLING_PROFILES,
    Connect,
    LLMFailure,
    free_port,
)
from fastmcp import Client
from fastmcp.exceptions import ToolError

from weather.core.testing import (
    Retries,
    ScriptedLLM,
    final,
    prompt_text,
)

RESPONSES = Path(__file__).parent / "open_meteo"
JUDGMENT = {
    "summary": "A grey, wet afternoon with a brisk wind.",
    "advice": ["Take an umbrella.", "Wear a warm layer."],
    "severity": "advisory",
}

Reply = tuple[int, bytes]


def recorded(name: str, status: int = 200) -> Callable[[dict], Reply]:
    body = (RESPONSES / name).read_bytes()
    return lambda _query: (status, body)


class StandIn:
    """A real HTTP server on loopback standing in for both Open-Meteo hosts."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[dict], Reply]] = {}
        self.requests: list[tuple[str, dict]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                stand_in.requests.append((url.path, query))
                status, body = stand_in.routes[url.path](query)
                # The timeout test's client hangs up before a slow reply is sent.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: shutdown() waits for the next poll.
        threading.Thread(
            target=self.server.serve_forever, args=(0.01,), daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def open_meteo(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    """The stand-in, answering Paris by default, with the server pointed at it.

    Autouse, so that no test in this module can reach the real API, and the server
    is always created after the environment points it here.
    """
    stand_in = StandIn()
    stand_in.routes["/v1/search"] = recorded("geocoding_paris.json")
    stand_in.routes["/v1/forecast"] = recorded("forecast_metric.json")
    monkeypatch.setenv("WEATHER_GEOCODING_URL", f"{stand_in.url}/v1/search")
    monkeypatch.setenv("WEATHER_FORECAST_URL", f"{stand_in.url}/v1/forecast")
    yield stand_in
    stand_in.close()


async def test_the_report_takes_numbers_from_the_data_and_judgment_from_the_llm(
    client: Client, scripted_llm: ScriptedLLM, profile: str, open_meteo: StandIn
) -> None:
    if profile == "none":
        with pytest.raises(ToolError, match="does not support sampling"):
            await client.call_tool("get_weather", {"city": "Paris"})
        return
    scripted_llm.expect(final(JUDGMENT))
    result = await client.call_tool("get_weather", {"city": "Paris"})
    report = result.structured_content
    assert report["location"] == {
        "name": "Paris",
        "region": "Île-de-France",
        "country": "France",
        "latitude": 48.85341,
        "longitude": 2.3488,
    }
    assert report["conditions"] == {
        "observed_at": "2026-11-20T14:00",
        "condition": "slight rain",
        "temperature": 9.4,
        "apparent_temperature": 6.1,
        "high": 11.2,
        "low": 5.3,
        "temperature_unit": "°C",
        "wind_speed": 18.7,
        "wind_speed_unit": "km/h",
        "precipitation": 0.2,
        "precipitation_unit": "mm",
    }
    assert {k: report[k] for k in JUDGMENT} == JUDGMENT


@pytest.mark.parametrize("era", ["modern"])
async def test_every_round_sent_twice_at_once_reads_the_service_once(
    connect: Connect, scripted_llm: ScriptedLLM, open_meteo: StandIn
) -> None:
    scripted_llm.expect(final(JUDGMENT))
    retries = Retries(every_round=True)
    async with connect("tools", retries=retries) as client:
        result = await client.call_tool("get_weather", {"city": "Paris"})
    assert {k: result.structured_content[k] for k in JUDGMENT} == JUDGMENT
    assert retries.sent_again == 1
    # Read in the first round (llm.step), carried in the state ever after.
    assert [path for path, _query in open_meteo.requests] == [
        "/v1/search",
        "/v1/forecast",
    ]


@pytest.mark.parametrize("mode", ["fallback", "always"])
async def test_an_openai_compatible_endpoint_serves_a_client_that_cannot_sample(
    connect: Connect,
    scripted_llm: ScriptedLLM,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    monkeypatch.setenv("MCP_SAMPLING_MODE", mode)
    scripted_llm.expect(final(JUDGMENT))
    async with connect("none", provider="openai") as client:
        result = await client.call_tool("get_weather", {"city": "Paris"})
    report = result.structured_content
    assert report["conditions"]["temperature"] == 9.4
    assert {k: report[k] for k in JUDGMENT} == JUDGMENT


@pytest.mark.parametrize("profile", SAMPLING_PROFILES)
async def test_one_schema_invalid_answer_is_recovered_from(
    connect: Connect, scripted_llm: ScriptedLLM, profile: str, open_meteo: StandIn
) -> None:
    scripted_llm.expect(
        final({**JUDGMENT, "severity": "apocalyptic", "advice": []}),
        final(JUDGMENT),
    )
    async with connect(profile) as client:
        result = await client.call_tool("get_weather", {"city": "Paris"})
    assert result.structured_content["severity"] == "advisory"
    assert len(scripted_llm.requests) == 2


async def test_the_facts_travel_fenced(
    connect: Connect, scripted_llm: ScriptedLLM, open_meteo: StandIn
) -> None:
    scripted_llm.expect(final(JUDGMENT))
    async with connect("tools") as client:
        await client.call_tool("get_weather", {"city": "Paris"})
    lines = prompt_text(scripted_llm.requests[0]).splitlines()
    assert lines[-3].startswith("<<<BEGIN UNTRUSTED facts ")
    assert json.loads(lines[-2])["conditions"]["temperature"] == 9.4


async def test_a_country_code_qualifier_narrows_the_search(
    connect: Connect, scripted_llm: ScriptedLLM, open_meteo: StandIn
) -> None:
    open_meteo.routes["/v1/search"] = recorded("geocoding_paris_us.json")
    open_meteo.routes["/v1/forecast"] = recorded("forecast_imperial.json")
    scripted_llm.expect(final(JUDGMENT))
    async with connect("tools") as client:
        result = await client.call_tool(
            "get_weather", {"city": "Paris, us", "units": "imperial"}
        )
    (_, geocoding), (_, forecast) = open_meteo.requests
    assert geocoding["countryCode"] == "US"
    assert forecast["temperature_unit"] == "fahrenheit"
    assert forecast["wind_speed_unit"] == "mph"
    assert forecast["latitude"] == "33.66094"
    report = result.structured_content
    assert (report["location"]["region"], report["location"]["country"]) == (
        "Texas",
        "United States",
    )
    assert report["conditions"]["temperature"] == 52.3
    assert report["conditions"]["temperature_unit"] == "°F"


async def test_a_region_qualifier_picks_the_matching_place(
    connect: Connect, scripted_llm: ScriptedLLM, open_meteo: StandIn
) -> None:
    open_meteo.routes["/v1/search"] = recorded("geocoding_paris_us.json")
    scripted_llm.expect(final(JUDGMENT))
    async with connect("tools") as client:
        result = await client.call_tool("get_weather", {"city": "Paris, illinois"})
    assert result.structured_content["location"]["region"] == "Illinois"
    assert "countryCode" not in open_meteo.requests[0][1]


def slow(_query: dict) -> Reply:
    time.sleep(0.5)
    return 200, b"{}"


@pytest.mark.parametrize(
    ("city", "geocoding", "forecast", "message"),
    [
        ("", None, None, "city is empty"),
        (" , FR", None, None, "city is empty"),
        ("Atlantis", recorded("geocoding_nothing.json"), None, "No place called"),
        ("Paris, Narnia", None, None, "No place called 'Paris' in Narnia"),
        ("Paris", recorded("geocoding_nothing.json", 500), None, "HTTP 500"),
        ("Paris", None, recorded("forecast_error.json", 400), "Latitude must be"),
        ("Paris", lambda _q: (200, b"<html>"), None, "not JSON"),
        ("Paris", lambda _q: (200, b'{"results": [{"name": 1}]}'), None, "unexpected"),
        ("Paris", None, recorded("geocoding_paris.json"), "unexpected response"),
        ("Paris", slow, None, r"did not answer within 0\.2 s"),
    ],
    ids=[
        "empty",
        "empty-name",
        "unknown-city",
        "unknown-qualifier",
        "http-error",
        "api-error-reason",
        "not-json",
        "malformed-geocoding",
        "malformed-forecast",
        "timeout",
    ],
)
async def test_bad_input_and_api_failures_fail_clearly_before_any_sampling(
    connect: Connect,
    open_meteo: StandIn,
    monkeypatch: pytest.MonkeyPatch,
    city: str,
    geocoding: Callable[[dict], Reply] | None,
    forecast: Callable[[dict], Reply] | None,
    message: str,
) -> None:
    monkeypatch.setenv("WEATHER_HTTP_TIMEOUT", "0.2")
    if geocoding:
        open_meteo.routes["/v1/search"] = geocoding
    if forecast:
        open_meteo.routes["/v1/forecast"] = forecast
    async with connect("tools") as client:
        with pytest.raises(ToolError, match=message):
            await client.call_tool("get_weather", {"city": city})


async def test_an_unreachable_service_fails_clearly(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/search"
    monkeypatch.setenv("WEATHER_GEOCODING_URL", url)
    async with connect("tools") as client:
        with pytest.raises(ToolError, match="Could not reach the geocoding service"):
            await client.call_tool("get_weather", {"city": "Paris"})


async def test_a_failing_llm_fails_the_report_with_its_own_message(
    llm_failure: LLMFailure,
) -> None:
    async with llm_failure.connect() as client:
        message = await llm_failure.call(client, "get_weather", {"city": "Paris"})
    llm_failure.assert_reported(message)


@pytest.mark.parametrize("kind", CLIENT_SIDE_FAILURES)
async def test_a_failing_retry_fails_the_report_with_its_own_message(
    connect: Connect, kind: str, era: str
) -> None:
    failure = LLMFailure(kind, connect, era)
    invalid = final({**JUDGMENT, "severity": "apocalyptic"})
    # The first answer is schema-invalid; the retry after the feedback fails.
    retrying = failure.connect(
        answer=invalid.respond, fails=lambda r: len(r.messages) > 1
    )
    async with retrying as client:
        message = await failure.call(client, "get_weather", {"city": "Paris"})
    failure.assert_reported(message)
