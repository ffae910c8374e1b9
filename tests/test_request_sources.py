"""One contract suite over every customer-request source (monitor.tickets.requests.base.RequestSource), as the
stores and sinks have theirs: each implementation comes with a driver that acts in its system as people do
(a customer writes in, staff comment, reply, wait on the customer, resolve, reopen), and the suite checks what
the source reads back. Request Tracker 5 is the real one here (the tests' throwaway RT); a source for Jira
Service Management or ServiceNow joins IMPLEMENTATIONS with a driver against its documented shapes."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import free_port
from fakehttp import FakeHttp
from monitor.errors import SlawatchError
from monitor.tickets.requests.base import RequestSource, SourceError
from peers import RtServer, rt_available


class RtDriver:
    """Request Tracker 5: requests and people's actions over REST 2 (as root, the staff)."""

    def __init__(self, rt: RtServer):
        self.rt = rt

    def source(self, url: str | None = None) -> RequestSource:
        from monitor.tickets.requests.rt import RtRequestSource

        return RtRequestSource("rt", url or self.rt.url, self.rt.token, ["General"])

    def create(self, subject: str, requestor: str) -> str:
        return str(self.rt.api("POST", "/ticket", {"Queue": "General", "Subject": subject, "Requestor": requestor,
                                                   "Content": "help", "ContentType": "text/plain"})["id"])

    def comment(self, rid: str) -> None:
        self.rt.api("POST", f"/ticket/{rid}/comment", {"Content": "internal note", "ContentType": "text/plain"})

    def reply(self, rid: str) -> None:
        self.rt.api("POST", f"/ticket/{rid}/correspond", {"Content": "on it", "ContentType": "text/plain"})

    def status(self, rid: str, status: str) -> None:
        self.rt.api("PUT", f"/ticket/{rid}", {"Status": status})


@pytest.fixture(scope="module")
def rt_driver():
    ok, why = rt_available()
    if not ok:
        pytest.skip(why)
    server = RtServer(free_port()).start()
    yield RtDriver(server)
    server.stop()


IMPLEMENTATIONS = ["rt_driver"]


@pytest.fixture(params=IMPLEMENTATIONS)
def driver(request):
    return request.getfixturevalue(request.param)


def read(source: RequestSource, since_ms: int) -> list:
    async def go():
        try:
            return await source.changed_timelines(since_ms, int(time.time() * 1000))
        finally:
            await source.aclose()

    return asyncio.run(go())


def test_a_request_through_its_life(driver):
    """New, an internal comment (no response), the staff reply (the first response), waiting on the customer
    (a pause), resolved, reopened (the resolved span paused too), resolved again."""
    start = int(time.time() * 1000) - 2000
    rid = driver.create(f"contract suite {time.time_ns()}", "carol@reseller.example")
    [fresh] = [t for t in read(driver.source(), start) if t.external_id == rid]
    assert fresh.first_response_ms is None and fresh.resolved_ms is None and fresh.pauses == []
    assert fresh.requestors == ("carol@reseller.example",) and fresh.opened_ms >= start - 1000
    driver.comment(rid)
    [commented] = [t for t in read(driver.source(), start) if t.external_id == rid]
    assert commented.first_response_ms is None  # an internal comment answers nobody
    driver.reply(rid)
    for status in ("stalled", "open", "resolved", "open", "resolved"):
        driver.status(rid, status)
    [t] = [t for t in read(driver.source(), start) if t.external_id == rid]
    assert t.first_response_ms is not None and t.first_response_ms >= t.opened_ms
    assert len(t.pauses) == 2 and t.reopened == 1 and t.resolved_ms is not None and t.status == "resolved"
    assert all(a <= b for a, b in t.pauses) and t.updated_ms >= t.resolved_ms


def test_the_cursor_reads_only_what_changed(driver):
    """From the last update seen, a request not touched since is not read again (but for the boundary second,
    read again at least once, never lost); one touched after it is."""
    a = driver.create(f"cursor a {time.time_ns()}", "dave@reseller.example")
    b = driver.create(f"cursor b {time.time_ns()}", "erin@reseller.example")
    first = [t for t in read(driver.source(), int(time.time() * 1000) - 60_000) if t.external_id in (a, b)]
    assert {t.external_id for t in first} == {a, b}
    cursor = max(t.updated_ms for t in first)
    time.sleep(1.1)  # the sources' clocks have whole seconds: the next change is in a later one
    driver.reply(a)
    again = {t.external_id: t for t in read(driver.source(), cursor + 1000)}
    assert a in again and again[a].first_response_ms is not None and b not in again


def test_an_unreachable_or_garbage_source_is_an_error_not_a_crash(driver):
    """A source that does not answer, or answers what is not its documented shape (a proxy's HTML error page,
    JSON of another shape): a SlawatchError the sync retries, never another exception."""
    garbage = FakeHttp({("GET", "/*"): lambda req: (200, {"unexpected": True, "items": [{"no": "id"}]})})
    html = FakeHttp({("GET", "/*"): lambda req: (200, "<html>502 Bad Gateway</html>")})
    try:
        for url in (garbage.url, html.url, f"http://127.0.0.1:{free_port()}/"):
            with pytest.raises(SlawatchError) as info:
                read(driver.source(url), 0)
            assert isinstance(info.value, SlawatchError)
        with pytest.raises(SourceError):
            read(driver.source(garbage.url), 0)
    finally:
        garbage.close()
        html.close()
