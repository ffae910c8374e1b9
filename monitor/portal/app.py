"""The portal's web application (Starlette, Jinja2 templates, served by uvicorn): server-rendered pages that
work without JavaScript, a JSON view per contract for API tokens, and one rule for access: a contract the
principal may not read is "not found", whichever route asks, with nothing of it in the answer."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from monitor.portal import data
from monitor.portal.auth import LoginLimiter, Principal, Sessions, token_principal, verify_password

__all__ = ["build_app", "SECURITY_HEADERS", "MAX_FORM_BYTES"]

SESSION_COOKIE, CSRF_COOKIE = "slawatch_session", "slawatch_csrf"
#: every answer's headers: no framing, no referrer, no inline script, no sniffing
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
#: a login form is a few hundred bytes: anything much larger is refused before it is read
MAX_FORM_BYTES = 4096
_CONTRACT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class _Headers(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            response: Response = PlainTextResponse("request too large\n", status_code=413)
        else:
            try:
                response = await call_next(request)
            except Exception:  # never a traceback to the client
                import logging

                logging.getLogger("slawatch.portal").exception("portal request %s failed", request.url.path)
                response = PlainTextResponse("internal error\n", status_code=500)
        response.headers.update(SECURITY_HEADERS)
        return response


class Portal:
    """The portal's handlers on ``store`` for ``config`` (its ``portal`` section: users, tokens, session secret)."""

    def __init__(self, config: Any, store: Any, secure_cookies: bool = False):
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        self.config, self.store, self.secure = config, store, secure_cookies
        portal = self.portal = config.portal
        self.sessions = Sessions(portal.session_secret.get_secret_value(), portal.session_lifetime)
        self.limiter = LoginLimiter(portal.login_attempts, portal.login_window)
        self.users = {u.name: u for u in portal.users}
        self.contracts = {c.id: c for c in config.contracts}
        self.env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                               autoescape=select_autoescape(["html"]))
        self.env.filters["pct"] = lambda v, places=3: "-" if v is None else f"{v * 100:.{places}f} %"
        self.env.filters["duration"] = _duration
        self.lock = asyncio.Lock()  # one store read at a time (the store serialises them anyway)
        #: (contract, month) -> (when, summary) of the reports page
        self.summaries: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    async def read(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on a worker thread (the store blocks)."""
        async with self.lock:
            return await asyncio.to_thread(fn, *args)

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A rendered template."""
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=status)

    def principal(self, request: Request) -> Principal | None:
        """Who asks: an API token's bearer, or a signed-in user's session."""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return token_principal(auth[7:].strip(), self.portal.tokens)
        user = self.sessions.user(request.cookies.get(SESSION_COOKIE))
        if user is None or user not in self.users:
            return None
        return Principal(user, frozenset(self.users[user].contracts))

    def contract_for(self, request: Request, who: Principal) -> Any:
        """The contract the URL names, if this principal may read it (else None: "not found" to them)."""
        cid = request.path_params.get("contract", "")
        if not _CONTRACT.match(cid) or cid not in who.contracts or cid not in self.contracts:
            return None
        return self.contracts[cid]

    def not_found(self) -> Response:
        """The one answer for what does not exist and for what this principal may not read."""
        return self.page("error.html", 404, title="Not found", message="There is no such page.")

    def csrf_of(self, request: Request) -> str:
        """The CSRF token of this client's forms."""
        return self.sessions.csrf(request.cookies.get(CSRF_COOKIE) or "")

    def login_form(self, request: Request, message: str | None = None, status: int = 200) -> Response:
        """The sign-in form, with a CSRF token bound to a cookie."""
        nonce = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)
        response = self.page("login.html", status, csrf=self.sessions.csrf(nonce), message=message)
        response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="strict", secure=self.secure)
        return response

    async def login(self, request: Request) -> Response:
        """GET: the form; POST: check the CSRF token, the rate limit and the password, then start a session."""
        if request.method == "GET":
            return self.login_form(request)
        form = await request.form()
        name, password = str(form.get("user", ""))[:128], str(form.get("password", ""))[:1024]
        if not self.sessions.csrf_ok(request.cookies.get(CSRF_COOKIE), str(form.get("csrf", ""))):
            return self.login_form(request, "The form expired; please sign in again.", 400)
        client = request.client.host if request.client else "-"
        if self.limiter.blocked(client, name):
            return self.login_form(request, "Too many failed sign-ins; wait a few minutes.", 429)
        user = self.users.get(name)
        ok = await asyncio.to_thread(verify_password, user.password_hash.get_secret_value() if user else None,
                                     password)
        if not ok:
            self.limiter.failed(client, name)
            return self.login_form(request, "Wrong user name or password.", 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, self.sessions.make(name), max_age=int(self.portal.session_lifetime),
                            httponly=True, samesite="strict", secure=self.secure)
        return response

    async def logout(self, request: Request) -> Response:
        """End the session (a POST with the CSRF token)."""
        form = await request.form()
        if not self.sessions.csrf_ok(request.cookies.get(CSRF_COOKIE), str(form.get("csrf", ""))):
            return PlainTextResponse("bad request\n", status_code=400)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def signed_in(self, handler: Any) -> Any:
        """``handler`` for a signed-in principal (and, for a contract's route, a contract it may read)."""
        async def wrapped(request: Request) -> Response:
            api = request.url.path.startswith("/api/")
            who = self.principal(request)
            if who is None:
                return JSONResponse({"error": "unauthorized"}, status_code=401) if api else \
                    RedirectResponse("/login", status_code=303)
            if "contract" not in request.path_params:
                return await handler(request, who)
            contract = self.contract_for(request, who)
            if contract is None:
                return JSONResponse({"error": "not found"}, status_code=404) if api else self.not_found()
            return await handler(request, who, contract)
        return wrapped

    async def home(self, request: Request, who: Principal) -> Response:
        """The principal's contracts (straight to the one, when there is one)."""
        mine = [self.contracts[c] for c in sorted(who.contracts) if c in self.contracts]
        if len(mine) == 1:
            return RedirectResponse(f"/c/{mine[0].id}", status_code=303)
        return self.page("home.html", contracts=mine, who=who, csrf=self.csrf_of(request))

    async def contract_page(self, request: Request, who: Principal, contract: Any) -> Response:
        """A contract's overview."""
        view = await self.read(data.overview, self.config, self.store, contract)
        return self.page("contract.html", c=contract, v=view, who=who, csrf=self.csrf_of(request),
                         months=data.months(contract, time.time()))

    async def outage_list(self, request: Request, who: Principal, contract: Any) -> Response:
        """The contract's outages of the last twelve months."""
        now = time.time()
        items = await self.read(data.outages, self.store, contract, now - 366 * 86400, now, self.config)
        return self.page("outages.html", c=contract, outages=items, who=who, csrf=self.csrf_of(request))

    async def outage_page(self, request: Request, who: Principal, contract: Any) -> Response:
        """One outage with its evidence."""
        item = await self.read(data.outage, self.store, contract, request.path_params["unit"],
                               request.path_params["start"])
        if item is None:
            return self.not_found()
        return self.page("outage.html", c=contract, o=item, who=who, csrf=self.csrf_of(request))

    async def circuit_page(self, request: Request, who: Principal, contract: Any) -> Response:
        """A circuit's month to date with its days as a chart, and its outages."""
        view = await self.read(data.circuit, self.config, self.store, contract, request.path_params["target"])
        if view is None:
            return self.not_found()
        from markupsafe import Markup

        return self.page("circuit.html", c=contract, v=view, svg=Markup(view["svg"]), who=who,
                         csrf=self.csrf_of(request))

    async def reports(self, request: Request, who: Principal, contract: Any) -> Response:
        """The contract's months with their availability, coverage and credit, final or provisional (a closed
        month's summary is kept for an hour: its figures change only with maintenance entered after the fact)."""
        now = time.time()
        rows = []
        for i, month in enumerate(data.months(contract, now)):
            key = (contract.id, month)
            cached = self.summaries.get(key)
            if i > 0 and cached is not None and now - cached[0] < 3600:
                rows.append(cached[1])
                continue
            summary = await self.read(data.month_summary, self.config, self.store, contract, month, now)
            self.summaries[key] = (now, summary)
            rows.append(summary)
        return self.page("reports.html", c=contract, rows=rows, who=who, csrf=self.csrf_of(request))

    async def report(self, request: Request, who: Principal, contract: Any) -> Response:
        """A month's report of the contract, as HTML, PDF, CSV or JSON."""
        from monitor.reports.html import render_html
        from monitor.reports.model import report_dict
        from monitor.reports.report import build_report, render_csv

        month, fmt = request.path_params["month"], request.path_params["fmt"]
        if not _MONTH.match(month) or fmt not in ("json", "csv", "html", "pdf"):
            return self.not_found()
        model = await self.read(lambda: build_report(self.store, self.config, month, now=time.time(),
                                                     contract_id=contract.id))
        headers = {"Content-Disposition": f'attachment; filename="slawatch-{contract.id}-{month}.{fmt}"'}
        if fmt == "json":
            return JSONResponse(report_dict(model), headers=headers)
        if fmt == "csv":
            return Response(render_csv(model), media_type="text/csv; charset=utf-8", headers=headers)
        if fmt == "pdf":
            return Response(await asyncio.to_thread(_pdf, render_html(model)), media_type="application/pdf",
                            headers=headers)
        return HTMLResponse(render_html(model), headers=headers)

    async def api_contract(self, request: Request, who: Principal, contract: Any) -> Response:
        """The contract's circuits and this month's outages as JSON (for API tokens)."""
        view = await self.read(data.overview, self.config, self.store, contract)
        return JSONResponse({
            "contract": contract.id, "customer": contract.customer, "timezone": contract.timezone,
            "objective_pct": view["objective_pct"],
            "circuits": [{k: r[k] for k in ("target", "kind", "state", "since", "month_availability",
                                            "error_budget_left", "rtt_median", "loss", "last_cycle")}
                         for r in view["circuits"]],
            "outages": [{k: o[k] for k in ("target", "site", "start", "end", "duration_s", "cause")}
                        for o in view["outages"]],
        })


async def _health(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def build_app(config: Any, store: Any, *, secure_cookies: bool = False) -> Starlette:
    """The portal's Starlette application."""
    p = Portal(config, store, secure_cookies)
    routes = [
        Route("/login", p.login, methods=["GET", "POST"]),
        Route("/logout", p.logout, methods=["POST"]),
        Route("/-/healthy", _health),
        Route("/", p.signed_in(p.home)),
        Route("/c/{contract}", p.signed_in(p.contract_page)),
        Route("/c/{contract}/outages", p.signed_in(p.outage_list)),
        Route("/c/{contract}/t/{target}", p.signed_in(p.circuit_page)),
        Route("/c/{contract}/reports", p.signed_in(p.reports)),
        Route("/c/{contract}/outage/{unit}/{start:int}", p.signed_in(p.outage_page)),
        Route("/c/{contract}/report/{month}.{fmt}", p.signed_in(p.report)),
        Route("/api/c/{contract}", p.signed_in(p.api_contract)),
    ]

    async def missing(request: Request, exc: Exception) -> Response:
        return p.not_found()

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("method not allowed\n", status_code=405)

    return Starlette(routes=routes, middleware=[Middleware(_Headers)],
                     exception_handlers={404: missing, 405: not_allowed})


def _pdf(html: str) -> bytes:
    """The report's HTML printed to PDF by headless Chromium (monitor.reports.html.render_pdf)."""
    import tempfile

    from monitor.reports.html import render_pdf

    with tempfile.TemporaryDirectory(prefix="slawatch-portal-") as tmp:
        source, target = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        source.write_text(html)
        render_pdf(str(source), str(target))
        return target.read_bytes()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + f"{h}:{m:02d}:{s:02d}"
