"""The customer portal (#29), run as `slawatch portal` on a real store: sign-in with argon2id hashes, CSRF and
rate limiting; each contract's pages, outage evidence and report downloads; API tokens; and the one rule that
matters most, tried on every route: a user or token of one contract never reads anything of another (404,
nothing of it in the body). Pages also in headless Chromium through Selenium and Debian's chromium-driver."""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import REPO, SLAWATCH, free_port, needs_root, wait_for
from monitor.portal.auth import hash_password
from monitor.store import Batch, SqliteStore
from monitor.store.base import OutageRecord, StateRecord
from procs import spawn, stop

PASSWORDS = {"alice": "alice-correct-horse", "bob": "bob-battery-staple", "op": "operator-long-password"}
TOKEN_C1 = "c1-api-token-0123456789abcdef"
NOW = time.time()
#: an outage of each contract this month (started an hour ago, lasted 20 minutes), with its evidence
OUTAGES = {"t1": ("c1", NOW - 3600), "u1": ("c2", NOW - 3000)}
SECRET_OF_C2 = "Beta Customer GmbH"


def _berlin(ts: float) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(int(ts), ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%dT%H:%M:%S")


def write_config(tmp: Path, port: int, db: Path, **portal) -> Path:
    hashes = {u: hash_password(p) for u, p in PASSWORDS.items()}
    for u, h in hashes.items():
        (tmp / f"{u}.hash").write_text(h + "\n")
    (tmp / "session.secret").write_text("s" * 40 + "\n")
    path = tmp / "slawatch.yaml"
    extra = "".join(f"  {k}: {v}\n" for k, v in portal.items())
    path.write_text(f"""
storage: {{path: {db}}}
contracts:
  - {{id: c1, customer: Alpha Reseller, provider: ExampleTel, timezone: Europe/Berlin, objectives: {{availability: 99.9%}},
     response_targets: {{major: {{acknowledge: 1h, resolve: 8h}}}},
     maintenance: [{{name: patch night, weekly: {{days: [sun], at: "02:00"}}, duration: 1h}},
                   {{name: fibre splice, start: "{_berlin(OUTAGES['t1'][1] + 600)}", end: "{_berlin(OUTAGES['t1'][1] + 900)}"}}]}}
  - {{id: c2, customer: {SECRET_OF_C2}, provider: ExampleTel, objectives: {{availability: 99.5%}}}}
targets:
  - {{id: t1, contract: c1, kind: internet, address: 127.0.0.1}}
  - {{id: t2, contract: c1, kind: voice, address: 127.0.0.2,
     maintenance: [{{name: cpe swap, start: "{_berlin(NOW + 86400)}", duration: 30m}}]}}
  - {{id: u1, contract: c2, kind: internet, address: 127.0.0.3}}
portal:
  listen: "127.0.0.1:{port}"
  session_secret_file: {tmp / 'session.secret'}
  users:
    - {{name: alice, password_hash_file: {tmp / 'alice.hash'}, contracts: [c1]}}
    - {{name: bob, password_hash_file: {tmp / 'bob.hash'}, contracts: [c2]}}
    - {{name: op, password_hash_file: {tmp / 'op.hash'}, contracts: [c1, c2]}}
  tokens:
    - {{name: c1-billing, sha256: {hashlib.sha256(TOKEN_C1.encode()).hexdigest()}, contracts: [c1]}}
{extra}""")
    return path


def seed(db: Path) -> None:
    store = SqliteStore(db)
    store.migrate()
    batch = Batch()
    for target, (contract, start) in OUTAGES.items():
        batch.outages.append(OutageRecord(target, contract, "down", start, start + 1200, {
            "failed_cycles": 40, "first_bad": {"at": start, "reason": f"no reply from {target} (fibre cut)"},
            "last_good": {"at": start - 30, "rtt_ms": 4.2}}))
    for target in ("t1", "t2", "u1"):
        batch.states[target] = StateRecord(target, "up", NOW - 600, NOW, {"first_cycle": NOW - 7200,
                                                                          "last_cycle": NOW})
    store.write(batch)
    from monitor.store.base import RequestRecord

    store.put_requests([  # a request of each contract: answered after 30 min (c1), still open (c2)
        RequestRecord("rt", "17", "c1", "major", "VPN slow at the branch", NOW - 7200, NOW - 5400, None, "open", (), 0,
                      NOW - 5400),
        RequestRecord("rt", "18", "c2", "major", f"{SECRET_OF_C2} invoice", NOW - 7200, None, None, "new", (), 0,
                      NOW - 7200)], cursor=("rt", NOW - 5400), checked=NOW)
    store.close()


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("portal")
    db, port = tmp / "s.db", free_port()
    seed(db)
    config = write_config(tmp, port, db, login_attempts=3)
    proc = spawn(SLAWATCH + ["portal", "-c", str(config)], cwd=REPO, stdout=subprocess.DEVNULL,
                 stderr=open(tmp / "portal.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the portal", lambda: _healthy(base), timeout=30)
        yield base, tmp
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        stop(proc)
    log = (tmp / "portal.log").read_text()
    assert "Traceback" not in log and "s" * 40 not in log, log


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/-/healthy", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def sign_in(base: str, user: str, password: str | None = None, client: httpx.Client | None = None) -> httpx.Client:
    client = client or httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    r = client.post("/login", data={"user": user, "password": password or PASSWORDS[user], "csrf": csrf})
    client.last = r  # type: ignore[attr-defined]
    return client


def test_sign_in_and_a_contracts_pages(portal):
    base, _ = portal
    anon = httpx.Client(base_url=base, timeout=30)
    r = anon.get("/c/c1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert anon.get("/api/c/c1").status_code == 401
    alice = sign_in(base, "alice")
    assert alice.last.status_code == 303 and "slawatch_session" in alice.cookies
    cookie = alice.last.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert alice.get("/").headers["location"] == "/c/c1"  # one contract: straight to it
    page = alice.get("/c/c1")
    assert page.status_code == 200
    text = page.text
    for shown in ("Alpha Reseller", 'data-target="t1"', 'data-target="t2"', "no reply from t1 (fibre cut)",
                  "Europe/Berlin", "0:20:00", "/c/c1/report/"):
        assert shown in text, shown
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CE[S]?T", text)  # times in the contract's zone, named
    assert "u1" not in text and SECRET_OF_C2 not in text
    # maintenance to come: the contract's weekly night for all circuits, t2's own swap tomorrow, in Berlin time
    coming = text[text.index('<table id="maintenance">'):text.index('<table id="tickets">')]
    assert "<td>all circuits</td>" in coming and f"<td>{_berlin(NOW + 86400).replace('T', ' ')} CE" in coming
    assert "<td>t2</td>" in coming, coming
    # the maintenance the outage overlapped (5 minutes of its 20: not downtime), named beside it
    outages = text[text.index('<table id="outages">'):text.index('<table id="maintenance">')]
    assert "<td>0:20:00</td><td>no reply from t1 (fibre cut)</td><td>0:05:00</td>" in outages, outages
    # the outage's evidence, from the overview's link
    link = re.search(r'href="(/c/c1/outage/t1/\d+)"', text).group(1)
    evidence = alice.get(link)
    assert evidence.status_code == 200 and "40" in evidence.text and "4.2 ms" in evidence.text
    # the contract's requests with their response times in business time (24x7 here), not the other's
    requests = text[text.index('<table id="requests">'):]
    requests = requests[:requests.index("</table>")]
    assert "rt #17" in requests and "0:30:00" in requests and "met" in requests and "rt #18" not in requests
    # the reports page: each month's coverage and credit status, and the PDF
    reports = alice.get("/c/c1/reports")
    assert reports.status_code == 200 and reports.text.count("<tr>") == 13  # the header and twelve months
    assert "(to date)" in reports.text and "provisional" in reports.text  # this month's credit is not final
    pdf_month = re.search(r"/c/c1/report/(\d{4}-\d\d)\.pdf", reports.text).group(1)
    pdf = alice.get(f"/c/c1/report/{pdf_month}.pdf", timeout=120)
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-" and pdf.headers["content-type"] == "application/pdf"
    # a circuit's month: every day in a server-side SVG chart and a table, and its outages
    circuit = alice.get("/c/c1/t/t1")
    assert circuit.status_code == 200 and "<svg" in circuit.text and "Daily availability of t1" in circuit.text
    assert "<script" not in circuit.text and "no reply from t1 (fibre cut)" in circuit.text
    assert re.search(r'<table id="days">.*?<td>\d{4}-\d\d-\d\d</td>', circuit.text, re.S)
    # the month's report, that contract's only
    month = re.search(r"/c/c1/report/(\d{4}-\d\d)\.json", text).group(1)
    doc = alice.get(f"/c/c1/report/{month}.json")
    assert doc.status_code == 200 and [c["id"] for c in doc.json()["contracts"]] == ["c1"]
    assert 'filename="slawatch-c1-' in doc.headers["content-disposition"]
    csv = alice.get(f"/c/c1/report/{month}.csv")
    assert csv.status_code == 200 and "t1" in csv.text and "u1" not in csv.text
    # an operator of both sees both
    op = sign_in(base, "op")
    home = op.get("/")
    assert home.status_code == 200 and "/c/c1" in home.text and "/c/c2" in home.text


def test_nothing_of_another_contract_on_any_route(portal):
    base, _ = portal
    alice = sign_in(base, "alice")
    c2_outage = f"/c/c2/outage/u1/{int(OUTAGES['u1'][1] * 1000)}"
    month = time.strftime("%Y-%m", time.gmtime(NOW))
    denied = ["/c/c2", "/c/c2/outages", c2_outage, f"/c/c2/report/{month}.json", f"/c/c2/report/{month}.csv",
              f"/c/c2/report/{month}.html", "/api/c/c2", "/c/c9", "/c/..%2Fc2", "/c/c2%00", "/c/c1/../c2",
              # another contract's outage through one's own contract's URL
              f"/c/c1/outage/u1/{int(OUTAGES['u1'][1] * 1000)}", "/c/c1/t/u1", "/c/c2/t/u1", "/c/c2/reports",
              f"/c/c2/report/{month}.pdf"]
    for path in denied:
        r = alice.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "u1" not in r.text and SECRET_OF_C2 not in r.text and "99.5" not in r.text, path
    # the same for a token of c1, and the token reads its own contract
    api = httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {TOKEN_C1}"})
    for path in ("/api/c/c2", "/c/c2", f"/c/c2/report/{month}.json"):
        r = api.get(path)
        assert r.status_code == 404 and SECRET_OF_C2 not in r.text, path
    mine = api.get("/api/c/c1").json()
    assert [c["target"] for c in mine["circuits"]] == ["t1", "t2"]
    assert [o["target"] for o in mine["outages"]] == ["t1"] and mine["outages"][0]["cause"].endswith("(fibre cut)")
    assert httpx.get(base + "/api/c/c1", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # bob sees c2, not c1
    bob = sign_in(base, "bob")
    assert bob.get("/c/c2").status_code == 200 and bob.get("/c/c1").status_code == 404


def test_security_headers_and_bad_requests(portal):
    base, _ = portal
    c = httpx.Client(base_url=base, timeout=30)
    for path in ("/login", "/c/c1", "/nope", "/-/healthy"):
        r = c.get(path)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["referrer-policy"] == "no-referrer" and r.headers["x-content-type-options"] == "nosniff"
    assert c.post("/login", content=b"user=" + b"x" * 100_000,
                  headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 413
    assert c.delete("/c/c1").status_code == 405
    # a login without the form's CSRF token is refused, whatever the password
    r = c.post("/login", data={"user": "alice", "password": PASSWORDS["alice"]})
    assert r.status_code == 400 and "slawatch_session" not in r.headers.get("set-cookie", "")
    # a forged session cookie is nobody
    forged = httpx.Client(base_url=base, timeout=30, cookies={"slawatch_session": "alice.9999999999.x.sig"})
    assert forged.get("/c/c1", follow_redirects=False).status_code == 303


def test_login_rate_limit(portal):
    base, _ = portal
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    for _ in range(3):  # login_attempts: 3
        sign_in(base, "bob", "wrong password", client)
        assert client.last.status_code == 401
    sign_in(base, "bob", client=client)  # even the right password, until the window passes
    assert client.last.status_code == 429 and "slawatch_session" not in client.cookies
    other = sign_in(base, "op")  # another user from... the same address: its own count
    assert other.last.status_code == 303


def test_config_errors_and_a_taken_listen_address(tmp_path):
    from monitor.config import parse_config
    from monitor.errors import ConfigError

    base = {"contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}]}
    weak = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$" + "A" * 43
    with pytest.raises(ConfigError) as info:
        parse_config({**base, "portal": {"session_secret": "short", "users": [
            {"name": "a", "password_hash": "hunter2hunter2", "contracts": ["c1"]},
            {"name": "b", "password_hash": weak, "contracts": ["c9"]},
            {"name": "a", "password_hash": hash_password("x" * 12), "contracts": ["c1"]}]}})
    problems = info.value.problems
    assert any(p.startswith("portal.session_secret: must be at least 32 characters") for p in problems), problems
    assert any(p.startswith("portal.users[0].password_hash: must be an argon2id hash") for p in problems), problems
    assert any(p.startswith("portal.users[1].password_hash: too weak an argon2id hash") for p in problems)
    assert any(p.startswith("portal.users[1].contracts[0]: no such contract") for p in problems), problems
    assert any(p.startswith("portal.users[2].name: duplicate name") for p in problems), problems
    assert not any("hunter2" in p for p in problems)  # a password written where the hash goes is never echoed
    # an address already taken: one line naming portal.listen, exit 2, no traceback
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    db = tmp_path / "s.db"
    seed(db)
    config = write_config(tmp_path, taken.getsockname()[1], db)
    r = subprocess.run(SLAWATCH + ["portal", "-c", str(config)], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    taken.close()
    assert r.returncode == 2 and "portal.listen: cannot listen on 127.0.0.1:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # portal-hash: a hash the config accepts, from stdin
    r = subprocess.run(SLAWATCH + ["portal-hash"], input="a-long-enough-password\n", capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("$argon2id$v=19$m=65536,t=3")


def test_in_a_real_browser(portal, tmp_path):
    """Headless Chromium: sign in through the form, see the circuits, follow an outage to its evidence; a
    screenshot of each page is taken and must be a real page."""
    if not shutil.which("chromedriver"):
        pytest.skip("chromium-driver is not installed (scripts/dev-setup installs it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    base, _ = portal
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(base + "/c/c1")
        assert driver.current_url.endswith("/login")  # not signed in
        driver.find_element(By.ID, "user").send_keys("alice")
        driver.find_element(By.ID, "password").send_keys(PASSWORDS["alice"])
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for("the contract page", lambda: driver.current_url.endswith("/c/c1"), timeout=30)
        rows = driver.find_elements(By.CSS_SELECTOR, "#circuits tbody tr")
        assert [r.get_attribute("data-target") for r in rows] == ["t1", "t2"]
        assert driver.find_element(By.CSS_SELECTOR, "#circuits tbody tr td.up").text == "up"
        driver.save_screenshot(str(tmp_path / "contract.png"))
        driver.find_element(By.CSS_SELECTOR, "#outages a").click()
        wait_for("the evidence", lambda: "/outage/t1/" in driver.current_url, timeout=30)
        assert "no reply from t1 (fibre cut)" in driver.find_element(By.ID, "evidence").text
        driver.save_screenshot(str(tmp_path / "outage.png"))
        driver.get(base + "/c/c2")
        assert "Not found" in driver.page_source and SECRET_OF_C2 not in driver.page_source
    finally:
        driver.quit()
    for shot in ("contract.png", "outage.png"):
        data = (tmp_path / shot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, shot


@needs_root
@pytest.mark.slow
def test_the_daemon_and_the_portal_together_during_a_blackout(tmp_path, netlab, icmp_mode):
    """`slawatch run` and `slawatch portal` on one SQLite store: a namespace circuit goes dark, and the next
    refresh of its contract's page shows it down, with the outage listed (the portal reads what the daemon
    wrote; nothing is cached between requests)."""
    host = netlab.add_host("portal", kernel_replies=False)
    dark = host.address(4)
    host.set_rules({"default": {}, "addresses": {}})
    db, port, exporter = tmp_path / "s.db", free_port(), free_port()
    config = write_config(tmp_path, port, db)
    text = config.read_text().replace("kind: voice, address: 127.0.0.2", f'kind: internet, address: "{dark}"')
    assert dark in text
    text = text.replace(f"storage: {{path: {db}}}",
                        f"storage: {{path: {db}, flush_interval: 200ms}}\nexporter: {{listen: \"127.0.0.1:{exporter}\"}}\n"
                        "defaults:\n  targets: {interval: 1s, failure_threshold: 2, probes: {icmp: {count: 2, "
                        "spacing: 20ms, timeout: 300ms}}}")
    config.write_text(text)
    daemon = spawn(SLAWATCH + ["run", "-c", str(config)], cwd=REPO, stdout=subprocess.DEVNULL,
                   stderr=open(tmp_path / "daemon.log", "w"))
    portal = None
    try:
        wait_for("the store", lambda: db.exists(), timeout=30)
        portal = spawn(SLAWATCH + ["portal", "-c", str(config)], cwd=REPO, stdout=subprocess.DEVNULL,
                       stderr=open(tmp_path / "portal.log", "w"))
        base = f"http://127.0.0.1:{port}"
        wait_for("the portal", lambda: _healthy(base), timeout=30)
        alice = sign_in(base, "alice")

        def row(target: str) -> str:
            page = alice.get("/c/c1").text
            m = re.search(rf'<tr data-target="{target}">.*?</tr>', page, re.S)
            return m.group(0) if m else ""

        wait_for("t2 up", lambda: '<td class="up">up</td>' in row("t2"), timeout=60)
        host.set_rules({"default": {}, "addresses": {dark: {"blackout": True}}})
        dark_at = time.monotonic()
        wait_for("t2 down on the page", lambda: '<td class="down">down</td>' in row("t2"), timeout=60)
        shown_after = time.monotonic() - dark_at
        page = alice.get("/c/c1").text
        outages = page[page.index('id="outages"'):page.index('id="maintenance"')]
        assert "/c/c1/outage/t2/" in outages and "ongoing" in outages, outages
        print(f"the portal showed the outage {shown_after:.1f} s after the blackout (interval 1 s x 2)")
    finally:
        for proc in (portal, daemon):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
                stop(proc)


def test_over_tls_with_secure_cookies_and_a_store_it_cannot_read(tmp_path):
    """``portal.tls``: HTTPS with the configured certificate (verified against its CA), session and CSRF
    cookies marked Secure; a store that cannot be read, and a certificate that cannot be loaded, are one-line
    errors naming what (no traceback)."""
    from servicepeers import Pki

    import ssl

    pki = Pki(tmp_path / "pki")
    cert, key = pki.leaf("portal", 30)
    trust = ssl.create_default_context(cafile=str(pki.ca))
    db, port = tmp_path / "s.db", free_port()
    seed(db)
    config = write_config(tmp_path, port, db, tls=f"{{cert_file: {cert}, key_file: {key}}}")
    proc = spawn(SLAWATCH + ["portal", "-c", str(config)], cwd=REPO, stdout=subprocess.DEVNULL,
                 stderr=open(tmp_path / "portal.log", "w"))
    try:
        base = f"https://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(base + "/-/healthy", verify=trust, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the portal over TLS", up, timeout=30)
        client = httpx.Client(base_url=base, verify=trust, follow_redirects=False, timeout=30)
        alice = sign_in(base, "alice", client=client)
        assert alice.last.status_code == 303
        cookies = alice.last.headers.get_list("set-cookie")
        assert any(c.startswith("slawatch_session=") and "Secure" in c for c in cookies), cookies
        assert alice.get("/c/c1").status_code == 200
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        stop(proc)
    broken = write_config(tmp_path, free_port(), db, tls=f"{{cert_file: {tmp_path / 'none.pem'}, key_file: {key}}}")
    r = subprocess.run(SLAWATCH + ["portal", "-c", str(broken)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "portal.tls: cannot load" in r.stderr and "Traceback" not in r.stderr, r.stderr
    missing = write_config(tmp_path, free_port(), tmp_path / "no-such-dir" / "s.db")
    r = subprocess.run(SLAWATCH + ["portal", "-c", str(missing)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "the portal cannot read the store" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "has `slawatch run` been started?" in r.stderr


def test_session_cookies_are_signed_expire_and_take_any_user_name():
    """A user name with dots and colons (an id) survives the cookie; a changed byte, another secret or an
    expired cookie is nobody."""
    from monitor.portal.auth import Sessions

    sessions = Sessions("k" * 40, 60)
    cookie = sessions.make("noc.ops:1", now=1000.0)
    assert sessions.user(cookie, now=1001.0) == "noc.ops:1"
    assert sessions.user(cookie, now=1061.0) is None  # expired
    assert sessions.user(cookie[:-1] + ("A" if cookie[-1] != "A" else "B"), now=1001.0) is None
    assert Sessions("j" * 40, 60).user(cookie, now=1001.0) is None
    assert sessions.user("noc.ops:1.9999999999.x", now=1001.0) is None
