"""The web surfaces, served as static files by the app itself (no front-end build step):

- `/widget.js`: the customer widget, one `<script>` tag on any page (the rest of its files are under `/web/`);
- `/console`: the agent console (agent token); `/dashboard`: the CX dashboard (cx token);
- `/demo`: a sample host page that embeds the widget as a verified sample customer, only when
  `CXA_WEB__DEMO_PAGE` is on (`cxa demo` turns it on): it computes `customer_hash` for whoever asks.

The pages carry a strict Content-Security-Policy (scripts, styles and API calls from this origin only; no
inline script), so an injected string can never run, and may not be framed (`frame-ancestors 'none'`,
`X-Frame-Options: DENY`). `PageHeaders` puts them on every HTML response the app sends, whichever route or static
file it comes from (`/web/*.html` too); the interactive API docs get a policy of their own that lets Swagger UI's
inline start-up script and its CDN files run. Assets are cached briefly (their names carry no version); the
vendored library for a week.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import KeysDep, ServicesDep
from api.errors import ApiError
from assistant.samples import sample_profiles

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc: an inline script and files from its CDN; still never framed, no plugins, no base.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
ASSET_MAX_AGE_S = 300
VENDOR_MAX_AGE_S = 7 * 24 * 3600

router = APIRouter(include_in_schema=False)


class WebAssets(StaticFiles):
    """`/web/*` with cache headers: a few minutes for our files (ETag revalidation after), a week for vendor/."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            age = VENDOR_MAX_AGE_S if path.startswith("vendor/") else ASSET_MAX_AGE_S
            response.headers["Cache-Control"] = f"public, max-age={age}"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((WEB_DIR / name).read_text(encoding="utf-8"), headers=PAGE_HEADERS)


@router.get("/widget.js")
def widget_js() -> FileResponse:
    """The one file a host page includes; it loads /web/widget.css into its shadow root."""
    return FileResponse(
        WEB_DIR / "widget.js",
        media_type="text/javascript",
        headers={"Cache-Control": f"public, max-age={ASSET_MAX_AGE_S}", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/console", response_class=HTMLResponse)
def console() -> HTMLResponse:
    return _page("console.html")


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    return _page("dashboard.html")


@router.get("/demo", response_class=HTMLResponse)
def demo(
    request: Request,
    services: ServicesDep,
    keys: KeysDep,
    customer: Annotated[str | None, Query(max_length=200, description="sample customer id")] = None,
) -> HTMLResponse:
    """Larkspur Home's page with the widget. Acting as the company's backend, it signs the chosen customer's
    id (`customer_hash`); so it exists only when the demo setting is on."""
    if not services.settings.web.demo_page:
        raise ApiError(404, "not_found", "the demo page is off (CXA_WEB__DEMO_PAGE=true turns it on)")
    customers = sample_profiles()
    known = {c.id: c for c in customers}
    chosen = customer if customer in known else None
    options = ['<option value="">Anonymous visitor</option>'] + [
        f'<option value="{html.escape(c.id)}"{" selected" if c.id == chosen else ""}>'
        f"{html.escape(c.name or c.id)} ({html.escape(c.id)})</option>"
        for c in customers
    ]
    identity = ""
    if chosen is not None:
        identity = (
            f' data-customer-id="{html.escape(chosen)}" data-customer-hash="{html.escape(keys.customer_hash(chosen))}"'
        )
    page = Template((WEB_DIR / "demo.html").read_text(encoding="utf-8")).substitute(
        widget_key=html.escape(keys.widget_key),
        identity=identity,
        options="\n".join(options),
        who=html.escape(known[chosen].name or chosen) if chosen else "an anonymous visitor",
        widget_src=html.escape(str(request.url_for("widget_js").path)),
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


class PageHeaders:
    """ASGI middleware: every `text/html` response gets the page headers (`PAGE_HEADERS`: the CSP, no framing,
    nosniff) unless it set its own, so no HTML leaves without them: the pages' routes, `/web/*.html` served as
    static files, FastAPI's docs (with `DOCS_CSP`), and any page added later."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    for name, value in {**PAGE_HEADERS, "Content-Security-Policy": csp}.items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def mount(app: FastAPI) -> None:
    """The pages, the static files under /web, and the page headers on every HTML response."""
    app.include_router(router)
    app.mount("/web", WebAssets(directory=WEB_DIR), name="web")
    app.add_middleware(PageHeaders)
