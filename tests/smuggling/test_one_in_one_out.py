"""The one-in/one-out invariant, on random traffic: a property-based differential test.

Hypothesis draws a few client connections, each with a sequence of requests (well
formed ones of every framing, forged identity headers, compressed bodies, and malformed
ones of the classic smuggling shapes), and for each well-formed request how the desk
answers it (sized, chunked, until close, with stray bytes after, a 204 announcing a body
that comes late, a broken reason phrase, interim responses first). Everything runs on
real sockets through the real sidecar to a desk that records every byte it receives.

Whatever is drawn:
- the desk receives only requests that clients sent as well-formed requests, each at
  most once, with the body the client sent, and never a client's identity header;
- every answer of the desk's that a client receives is the answer to that client's own
  request (the sidecar's own error pages are allowed), and every response is well framed.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import re
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import base_config, config_from, run_sidecar
from tests.smuggling.client import BrokenResponse, RawClient, request
from tests.smuggling.desk import DeskRequest, RecordingReader, recording_desk

HOST = "desk.example.test"
SMUGGLED = (
    b"GET /p/smuggled/sized HTTP/1.1\r\nHost: desk.example.test\r\n"
    b"X-TicketLog-User: admin.tenant\r\n\r\n"
)

# How the desk answers: the shape is the last segment of the request's path.
SHAPES = ["sized", "chunked", "until-close", "stray-after", "late-204", "bad-reason", "interim"]
# Shapes the sidecar relays as they are: a well-formed request gets the desk's own answer.
RELAYED = {"sized", "chunked", "until-close", "stray-after", "interim"}
# Well-formed requests the clients send (their body comes from the drawn bytes).
KINDS = ["get", "head", "post-sized", "post-chunked", "post-gzip", "forged", "http10"]
MALFORMED = [
    b"POST /p/m/sized HTTP/1.1\r\nHost: desk.example.test\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /p/m/sized HTTP/1.1\r\nHost: desk.example.test\r\nContent-Length: 4\r\n"
    b"Content-Length: 9\r\n\r\nabcd",
    b"GET /p/m/sized HTTP/1.1\r\nHost: desk.example.test\r\nX-A: a\r\n b\r\n\r\n",
    b"GET /p/m/sized HTTP/1.1\nHost: desk.example.test\n\n",
    b"POST /p/m/sized HTTP/1.1\r\nHost: desk.example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;\x00\r\nabcde\r\n0\r\n\r\n",
    b"GET /p/m/sized HTTP/1.1\r\nHost: desk.example.test\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
    b"Sec-WebSocket-Version: 13\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED),
]


@dataclass(frozen=True)
class Step:
    kind: str  # one of KINDS, or "malformed"
    shape: str
    body: bytes
    malformed: int = 0


steps = st.builds(
    Step,
    kind=st.sampled_from([*KINDS, "malformed"]),
    shape=st.sampled_from(SHAPES),
    body=st.one_of(
        st.binary(max_size=300),
        st.just(SMUGGLED),
        st.just(b"a" * 3000 + SMUGGLED),  # inflates to far more than it packs to
        st.just(b""),
    ),
    malformed=st.integers(0, len(MALFORMED) - 1),
)
connections = st.lists(st.lists(steps, min_size=1, max_size=6), min_size=1, max_size=3)

_TARGET = re.compile(rb"^/p/([0-9]+)/([a-z0-9-]+)$")


async def desk_answer(request: DeskRequest, _r: RecordingReader, w: asyncio.StreamWriter) -> bool:
    match = _TARGET.match(request.target)
    shape = match.group(2).decode() if match else "sized"
    body = b"answer to " + request.target
    head_only = request.method == b"HEAD"
    keep = True
    if shape == "interim":
        w.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
    if shape == "chunked":
        w.write(b"HTTP/1.1 200 OK\r\nX-Desk: yes\r\nTransfer-Encoding: chunked\r\n\r\n")
        if not head_only:
            w.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    elif shape == "until-close":
        w.write(b"HTTP/1.1 200 OK\r\nX-Desk: yes\r\nConnection: close\r\n\r\n")
        if not head_only:
            w.write(body)
        keep = False
    elif shape == "late-204":
        w.write(b"HTTP/1.1 204 No Content\r\nX-Desk: yes\r\nContent-Length: 40\r\n\r\n")
        await w.drain()
        await asyncio.sleep(0.004)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
    elif shape == "bad-reason":
        w.write(b"HTTP/1.1 200 O\x01K\r\nX-Desk: yes\r\nContent-Length: %d\r\n\r\n" % len(body))
        if not head_only:
            w.write(body)
    else:
        w.write(b"HTTP/1.1 200 OK\r\nX-Desk: yes\r\nContent-Length: %d\r\n\r\n" % len(body))
        if not head_only:
            w.write(body)
        if shape == "stray-after":
            await w.drain()
            await asyncio.sleep(0.004)
            w.write(b"HTTP/1.1 200 OK\r\nX-Desk: yes\r\nContent-Length: 5\r\n\r\nstray")
    await w.drain()
    return keep


@dataclass
class Sent:
    target: str
    body: bytes  # the entity the desk must receive
    head: bool


def encode(step: Step, number: int) -> tuple[bytes, Sent | None]:
    """A step's bytes, and what the desk must receive for it (None: nothing)."""
    if step.kind == "malformed":
        return MALFORMED[step.malformed] + SMUGGLED, None
    target = f"/p/{number}/{step.shape}"
    if step.kind == "get":
        return request(target), Sent(target, b"", False)
    if step.kind == "head":
        return request(target, method="HEAD"), Sent(target, b"", True)
    if step.kind == "forged":
        forged = [("X-TicketLog-User", "admin.tenant"), ("X_TicketLog_Email", "a@b.c")]
        return request(target, headers=forged), Sent(target, b"", False)
    if step.kind == "http10":
        return request(target, version="HTTP/1.0"), Sent(target, b"", False)
    if step.kind == "post-sized":
        return request(target, method="POST", body=step.body), Sent(target, step.body, False)
    if step.kind == "post-gzip":
        packed = gzip.compress(step.body)
        extra = [("Content-Encoding", "gzip")]
        return request(target, method="POST", headers=extra, body=packed), Sent(
            target, packed, False
        )
    chunked = (b"%x\r\n%s\r\n" % (len(step.body), step.body) if step.body else b"") + b"0\r\n\r\n"
    extra = [("Transfer-Encoding", "chunked")]
    return request(target, method="POST", headers=extra, body=chunked), Sent(
        target, step.body, False
    )


async def run_connection(
    port: int, plan: list[Step], numbers: itertools.count[int], sent: dict[str, Sent]
) -> list[str]:
    """Sends the plan's requests one after the other; returns what went wrong."""
    problems: list[str] = []
    client = await RawClient.open(port)
    try:
        for step in plan:
            data, expected = encode(step, next(numbers))
            if expected is not None:
                sent[expected.target] = expected
            await client.send(data, head=expected is not None and expected.head)
            try:
                reply = await client.response(timeout=6)
            except BrokenResponse as exc:
                if "ended without a response" in str(exc):
                    break  # the sidecar closed the connection (after a malformed request)
                problems.append(f"broken response to {step}: {exc}")
                break
            from_desk = reply.header("X-Desk") == b"yes"
            if from_desk and expected is None:
                problems.append(f"a desk answer to a malformed request: {reply.body[:60]!r}")
            own = expected is not None and reply.body == b"answer to " + expected.target.encode()
            bodiless = expected is None or expected.head or reply.status == 204
            if from_desk and not bodiless and not own:
                problems.append(f"{expected.target if expected else ''} got {reply.body[:60]!r}")
            if (
                expected is not None
                and step.shape in RELAYED
                and not (from_desk and reply.status == 200)
            ):
                problems.append(f"{expected.target}: {reply.status} instead of the desk's answer")
            if expected is None or not reply.keep_alive or step.kind == "http10":
                break  # the sidecar ends these connections (or may): a new one for the rest
    finally:
        await client.close()
    return problems


async def scenario(plans: list[list[Step]]) -> None:
    async with recording_desk(desk_answer) as desk:
        document = base_config(desk.url)
        document["server"]["upstream_read_timeout"] = "3s"
        async with run_sidecar(config_from(document)) as sidecar:
            sent: dict[str, Sent] = {}
            numbers = itertools.count(1)
            port = sidecar.listeners.public_port
            results = await asyncio.gather(
                *(run_connection(port, plan, numbers, sent) for plan in plans)
            )
            await asyncio.sleep(0.02)  # late desk bytes land before the books are closed
    problems = [p for result in results for p in result]
    # One in: the desk saw only requests a client sent well formed, once each, as sent.
    seen = [r.target.decode("latin-1") for r in desk.requests]
    problems += [f"the desk got {t!r}, which no client sent" for t in seen if t not in sent]
    problems += [f"the desk got {t!r} twice" for t in set(seen) if seen.count(t) > 1]
    for received in desk.requests:
        expected = sent.get(received.target.decode("latin-1"))
        if expected is not None and received.body != expected.body:
            problems.append(
                f"{expected.target}: body {received.body[:40]!r} != {expected.body[:40]!r}"
            )
        names = [n.lower().replace(b"_", b"-") for n in received.header_names()]
        if any(n.startswith(b"x-ticketlog-") for n in names):
            problems.append(f"{received.target!r} carried a client's identity header")
    problems += [f"the desk could not parse {m[:60]!r}" for m in desk.malformed]
    assert problems == []


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plans=connections)
def test_every_desk_request_is_one_client_request_and_every_answer_its_own(
    plans: list[list[Step]],
) -> None:
    asyncio.run(scenario(plans))
