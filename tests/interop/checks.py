"""What a client run must show, whichever client ran it (ts_clients.py, py_clients.py).

A run's output is one JSON object (see common.mjs): the tool result, every sampling
request the client's scripted LLM received with the answer it gave, and the tools/call
traffic. The scripted LLM answers each request from the request itself (a scenario's
`rules`), so these checks can tell an answer applied to the wrong request:

- the result: the expected text, and the `[tag]` of the request whose answer it is;
- the count and kind of requests, and SEP-1577's pairing in every history;
- every later turn of a conversation (a retry after an invalid answer, the next step
  of an agent loop) continues an earlier request with exactly the answer given to it;
- the council: each opinion is its own member's, each vote names its voter and the
  opinion its ballot showed as option A, and the synthesis request quotes each member's
  own opinion;
- the protocol era, and on the modern era the rounds: one tools/call more than
  input_required results, as many sampling requests in each round as the scenario
  expects, each retry answering exactly the keys of the round before and echoing its
  requestState byte for byte.

Standard library only, like the harness.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from typing import Any

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
NONCE = re.compile(r"[0-9a-f]{32}")
TAG = re.compile(r"\[([0-9a-f]{8})\]")


def blocks(message: dict) -> list[dict]:
    content = message["content"]
    return content if isinstance(content, list) else [content]


def first_text(request: dict) -> str:
    messages = request.get("messages") or []
    if not messages:
        return ""
    return next(
        (block["text"] for block in blocks(messages[0]) if block["type"] == "text"), ""
    )


def normalized(text: str) -> str:
    """The text without its fence nonces (each request, and each retry, draws its own)."""
    return NONCE.sub("#", text)


def turn_of(request: dict) -> int:
    return sum(message["role"] == "assistant" for message in request["messages"])


def placeholders(request: dict) -> dict[str, str]:
    """What an answer to `request` may be built from; the same as common.mjs computes."""
    system = request.get("systemPrompt") or ""
    text = first_text(request)
    seed = f"{normalized(system)}\n{normalized(text)}\n{turn_of(request)}"
    persona = re.search(r"You are the ([^.]+)\.", system)
    option_a = re.search(r"Option A:\n([^\n]*)", text)
    return {
        "persona": persona.group(1) if persona else "",
        "option_a": option_a.group(1) if option_a else "",
        "tag": hashlib.sha256(seed.encode()).hexdigest()[:8],
    }


def rule_for(rules: list[dict], request: dict) -> dict | None:
    values = placeholders(request)
    text = first_text(request)
    for rule in rules:
        if "says" in rule and rule["says"] not in text:
            continue
        if "persona" in rule and rule["persona"] != values["persona"]:
            continue
        if "turn" in rule and rule["turn"] != turn_of(request):
            continue
        return rule
    return None


def filled(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), ""), template)
    if isinstance(template, list):
        return [filled(item, values) for item in template]
    if isinstance(template, dict):
        return {key: filled(value, values) for key, value in template.items()}
    return template


def reply_to(rules: list[dict], profile: str, request: dict) -> Any:
    """The scenario's answer to `request` (see common.mjs), or None when no rule fits."""
    rule = rule_for(rules, request)
    if rule is None:
        return None
    return filled(rule.get(profile, rule.get("reply")), placeholders(request))


def history_problems(request: dict) -> list[str]:
    """SEP-1577's rule: every `tool_use` is answered by the next message, by id."""
    messages = [blocks(message) for message in request["messages"]]
    problems = []
    for current, following in itertools.pairwise(messages):
        calls = {block["id"] for block in current if block["type"] == "tool_use"}
        answered = {
            block["toolUseId"] for block in following if block["type"] == "tool_result"
        }
        if calls != answered:
            problems.append(
                f"tool calls {sorted(calls)} answered by {sorted(answered)}"
            )
    return problems


def _canonical(value: Any) -> str:
    return normalized(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _same_reply(sent: dict, answer: Any) -> bool:
    """Whether the assistant message `sent` in a history is the answer given."""
    got = blocks(sent)
    if isinstance(answer, str):
        return [(b["type"], b.get("text")) for b in got] == [("text", answer)]
    if isinstance(answer, dict) and "json" in answer:
        if [b["type"] for b in got] != ["text"]:
            return False
        try:
            return json.loads(got[0]["text"]) == answer["json"]
        except json.JSONDecodeError:
            return False
    if isinstance(answer, dict) and "tool_use" in answer:
        calls = answer["tool_use"]
        calls = calls if isinstance(calls, list) else [calls]
        return [
            (b.get("id"), b.get("name"), b.get("input"))
            for b in got
            if b["type"] == "tool_use"
        ] == [(c["id"], c["name"], c["input"]) for c in calls]
    return False


def continuity_problems(requests: list[dict], answers: list[Any]) -> list[str]:
    """Each later turn continues one earlier request with exactly its answer."""
    problems = []
    for number, request in enumerate(requests, 1):
        if turn_of(request) == 0:
            continue
        earlier = _canonical([request.get("systemPrompt"), request["messages"][:-2]])
        before = [
            index
            for index, other in enumerate(requests)
            if _canonical([other.get("systemPrompt"), other["messages"]]) == earlier
        ]
        if len(before) != 1:
            problems.append(
                f"request #{number} (turn {turn_of(request)}) continues "
                f"{len(before)} earlier requests, not one"
            )
        elif not _same_reply(request["messages"][-2], answers[before[0]]):
            problems.append(
                f"request #{number} carries another answer than the one given to "
                f"request #{before[0] + 1}"
            )
    return problems


def result_text(result: dict) -> str:
    return json.dumps(result.get("structuredContent")) + " ".join(
        block.get("text", "") for block in result.get("content", [])
    )


def tag_problems(result: dict, requests: list[dict]) -> list[str]:
    """The result carries the tag of the last request answered, and no other."""
    tags = set(TAG.findall(result_text(result)))
    expected = {placeholders(requests[-1])["tag"]} if requests else set()
    if tags != expected:
        return [f"result carries tags {sorted(tags)}, expected {sorted(expected)}"]
    return []


def council_problems(result: dict, requests: list[dict]) -> list[str]:
    """Each opinion, vote and the synthesis request belong to the right member."""
    record = result.get("structuredContent") or {}
    problems = []
    opinions = {o["member"]: o["text"] for o in record.get("opinions", [])}
    problems += [
        f"{member}'s opinion is {text!r}"
        for member, text in opinions.items()
        if text != f"View of {member}."
    ]
    for vote in record.get("votes", []):
        expected = f"{vote['voter']} backs option A: View of {vote['chosen_member']}."
        if vote["reasoning"] != expected:
            problems.append(
                f"{vote['voter']}'s vote for {vote['chosen_member']} says "
                f"{vote['reasoning']!r}"
            )
    if len(opinions) != 9 or len(record.get("votes", [])) != 9:
        problems.append(
            f"{len(opinions)} opinions and {len(record.get('votes', []))} votes, not 9"
        )
    synthesis = [r for r in requests if "Synthesise" in first_text(r)]
    tally = record.get("tally", {})
    for request in synthesis:
        missing = [
            member
            for member in opinions
            if f"{member} ({tally.get(member)} votes):\nView of {member}."
            not in first_text(request)
        ]
        if missing:
            problems.append(f"the synthesis request misquotes {', '.join(missing)}")
    if len(synthesis) != 1:
        problems.append(f"{len(synthesis)} synthesis requests")
    return problems


SCENARIO_CHECKS = {"council_debate": council_problems}


def traffic_problems(out: dict, expect: dict, era: str) -> list[str]:
    """One tools/call on the legacy era; on the modern era, the rounds expected."""
    traffic = out.get("traffic") or {"calls": [], "rounds": []}
    calls, rounds = traffic["calls"], traffic["rounds"]
    if era == "legacy":
        if len(calls) != 1 or rounds:
            return [f"{len(calls)} tools/call and {len(rounds)} input_required rounds"]
        return []
    problems = []
    sizes = [len(r["request_keys"]) for r in rounds]
    if sizes != expect["rounds"]:
        problems.append(
            f"rounds of {sizes} sampling requests, expected {expect['rounds']}"
        )
    if len(calls) != len(rounds) + 1:
        problems.append(f"{len(calls)} tools/call for {len(rounds)} rounds")
    if calls and (calls[0]["response_keys"] or calls[0]["state_bytes"]):
        problems.append("the first tools/call already carries answers")
    for number, (asked, retry) in enumerate(zip(rounds, calls[1:], strict=False), 1):
        if retry["response_keys"] != asked["request_keys"]:
            problems.append(
                f"retry {number} answers other keys than round {number} asked"
            )
        if retry["state_echoed"] is not True:
            problems.append(
                f"retry {number} does not echo round {number}'s requestState"
            )
    if sum(sizes) != len(out.get("requests", [])):
        problems.append(
            f"{len(out.get('requests', []))} requests answered, {sum(sizes)} asked"
        )
    return problems


def check(out: dict, script: dict, profile: str, era: str) -> list[str]:
    """What is wrong with one client run's output."""
    if "error" in out:
        return [f"client failed: {out['error']}"]
    expect = script["expect"][profile]
    problems = []
    version = LEGACY if era == "legacy" else MODERN
    if out.get("protocol_version") != version:
        problems.append(f"protocol {out.get('protocol_version')}, expected {version}")
    problems += traffic_problems(out, expect, era)
    result, requests = out["result"], out["requests"]
    text = result_text(result)
    if "error_contains" in expect:
        if not (result.get("isError") and expect["error_contains"] in text):
            problems.append(
                f"expected a tool error with {expect['error_contains']!r}: {text[:300]}"
            )
        return problems
    if result.get("isError"):
        return [*problems, f"tool error: {text[:300]}"]
    if expect["result_contains"] not in text:
        problems.append(f"result lacks {expect['result_contains']!r}: {text[:300]}")
    if len(requests) != expect["requests"]:
        problems.append(
            f"{len(requests)} sampling requests, expected {expect['requests']}"
        )
    with_tools = sum(bool(request.get("tools")) for request in requests)
    if with_tools != expect["with_tools"]:
        problems.append(
            f"{with_tools} requests with tools, expected {expect['with_tools']}"
        )
    for request in requests:
        problems += history_problems(request)
    if out.get("problems"):
        problems += out["problems"]
    problems += continuity_problems(requests, out["answers"])
    problems += tag_problems(result, requests)
    problems += SCENARIO_CHECKS.get(script["tool"], lambda *_: [])(result, requests)
    return problems


def rounds_summary(out: dict) -> str:
    """`5 calls 9+9+1+1, state 1.1-4.9 kB` for a modern run; '' otherwise."""
    traffic = out.get("traffic") or {}
    rounds = traffic.get("rounds") or []
    calls = traffic.get("calls") or []
    if not rounds:
        return f"{len(calls)} call" if calls else ""
    sizes = "+".join(str(len(r["request_keys"])) for r in rounds)
    states = [r["state_bytes"] / 1000 for r in rounds]
    return f"{len(calls)} calls {sizes}, state {min(states):.1f}-{max(states):.1f} kB"
