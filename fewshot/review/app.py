"""The review page: a Starlette app over a `ReviewSession`.

Routes (``ROW`` is a row number of the results; the page never sends a file path):

- ``GET /`` the gallery (``?label=&queue=&sort=&page=&threshold=``); plain ``/`` goes back to
  the view of the last decision (where you left off);
- ``GET /api/summary``, ``GET /api/rows?...``: the same as JSON;
- ``GET /thumb/ROW``, ``GET /image/ROW``: the thumbnail (made once, cached), the original;
  404 for a row whose file is outside the images root (`fewshot.review.files`);
- ``POST /api/decide`` (accept / correct / skip), ``/api/undo``, ``/api/bulk-accept``,
  ``/api/export``, ``/api/refit``: JSON bodies; each needs the page's per-run token in the
  ``X-Review-Token`` header and is refused (403) from another origin (``Origin`` /
  ``Sec-Fetch-Site``), with another content type (415) or an unknown ``Host`` (400: DNS
  rebinding).

Every response forbids framing and sniffing, and the page's Content-Security-Policy allows
only this server's own scripts, styles and images: nothing is fetched from elsewhere.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fewshot.errors import FewshotError
from fewshot.review.results import displayable
from fewshot.review.session import ReviewSession
from fewshot.review.state import QUEUES, SORTS, Conflict
from fewshot.review.thumbnails import ThumbnailError

HERE = Path(__file__).parent
PER_PAGE = 48
MAX_BODY = 1 << 20
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _templates():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )


def _view(request: Request, session: ReviewSession) -> dict:
    """The gallery settings of a request, checked (bad values fall back to the defaults)."""
    q = request.query_params
    label = q.get("label") or None
    queue = q.get("queue") if q.get("queue") in QUEUES else "all"
    sort = q.get("sort") if q.get("sort") in SORTS else "confidence"
    try:
        page = max(1, int(q.get("page", "1")))
    except ValueError:
        page = 1
    try:
        threshold = min(1.0, max(0.0, float(q.get("threshold", "0.5"))))
    except ValueError:
        threshold = 0.5
    return {"label": label, "queue": queue, "sort": sort, "page": page, "threshold": threshold}


def _query(view: dict, **changes) -> str:
    merged = {**view, **changes}
    return "?" + urlencode({k: v for k, v in merged.items() if v is not None and v != ""})


class ReviewApp:
    """The routes of one session (`build_app` makes the Starlette app)."""

    def __init__(self, session: ReviewSession) -> None:
        self.session = session
        self.templates = _templates()

    # -- pages and files -------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        last = self.session.state.last_view()
        if not request.query_params and last:
            return RedirectResponse("/" + _query(last), status_code=303)
        view = _view(request, self.session)
        state = self.session.state
        page = state.page(per_page=PER_PAGE, **view)
        html = self.templates.get_template("index.html").render(
            title=displayable(self.session.results_path.name),
            root=displayable(str(self.session.root.root)),
            token=self.session.token,
            view=view,
            query=lambda **changes: _query(view, **changes),
            page=page,
            cards=[{**state.row_view(i), "shown": self.session.shown(i)} for i in page.rows],
            counts=state.counts(),
            summary=state.summary(),
            labels=state.labels,
            queues=QUEUES,
            sorts=SORTS,
            view_json=json.dumps(view),
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def summary(self, request: Request) -> Response:
        state = self.session.state
        return JSONResponse({"summary": state.summary(), "counts": state.counts(), "labels": state.labels})

    async def rows(self, request: Request) -> Response:
        view = _view(request, self.session)
        try:
            per_page = min(500, max(1, int(request.query_params.get("per_page", PER_PAGE))))
        except ValueError:
            per_page = PER_PAGE
        page = self.session.state.page(per_page=per_page, **view)
        rows = [self.session.state.row_view(i) for i in page.rows]
        return JSONResponse({"total": page.total, "page": page.page, "pages": page.pages, "rows": rows})

    def _file(self, request: Request) -> Path:
        path = self.session.file(request.path_params["row"])
        if path is None:
            raise Refused(404, "not found")
        return path

    async def thumb(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        path = self._file(request)
        try:
            thumb = await run_in_threadpool(self.session.thumbs.get, path)
        except ThumbnailError as err:
            raise Refused(404, str(err)) from None
        return FileResponse(thumb, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})

    async def image(self, request: Request) -> Response:
        path = self._file(request)
        return FileResponse(path, media_type=self.session.media_type(path))

    # -- state changes -------------------------------------------------------------------

    async def _body(self, request: Request) -> dict:
        token = request.headers.get("x-review-token", "")
        if not hmac.compare_digest(token.encode(), self.session.token.encode()):
            raise Refused(403, "missing or wrong review token: reload the page")
        origin = request.headers.get("origin")
        # same origin: the page's own address (its Host header is checked by TrustedHostMiddleware)
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            raise Refused(403, f"cross-origin request from {origin} refused")
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Refused(403, "cross-site request refused")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise Refused(415, "send JSON (Content-Type: application/json)")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise Refused(413, "request too large")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(400, "the body must be a JSON object")
        return body

    def _changed(self, rows) -> list[dict]:
        return [self.session.state.row_view(i) for i in rows]

    async def decide(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        b = await self._body(request)
        rows = b.get("rows") if isinstance(b.get("rows"), list) else [b.get("row")]
        view = b.get("view") if isinstance(b.get("view"), dict) else None
        record = await run_in_threadpool(
            self.session.state.decide,
            b.get("action"),
            rows,
            b.get("label"),
            b.get("base"),
            b.get("tab"),
            view,
        )
        return self._done(record, rows)

    def _done(self, record: dict, rows) -> Response:
        return JSONResponse(
            {
                "id": record["id"],
                "rows": self._changed(rows),
                "summary": self.session.state.summary(),
                "counts": self.session.state.counts(),
            }
        )

    async def undo(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        b = await self._body(request)
        record, rows = await run_in_threadpool(self.session.state.undo, b.get("target"), b.get("tab"))
        return self._done(record, rows)

    async def bulk_accept(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        b = await self._body(request)
        threshold = b.get("threshold")
        if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise FewshotError("threshold is a probability between 0 and 1")
        record, accepted = await run_in_threadpool(
            self.session.state.bulk_accept, b.get("label"), float(threshold), b.get("tab")
        )
        summary = self.session.state.summary()
        return JSONResponse(
            {"id": record["id"] if record else None, "accepted": accepted, "summary": summary}
        )

    async def export(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        b = await self._body(request)
        result = await run_in_threadpool(self.session.export, str(b.get("kind")), str(b.get("mode", "copy")))
        return JSONResponse(result)

    async def refit(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        b = await self._body(request)
        return JSONResponse(await run_in_threadpool(self.session.refit, str(b.get("method", "simpleshot"))))


async def _errors(request: Request, exc: Exception) -> Response:
    if isinstance(exc, Conflict):
        state = request.app.state.review.session.state
        rows = [state.row_view(i) for i in exc.rows]
        return JSONResponse({"error": str(exc), "rows": rows}, status_code=409)
    if isinstance(exc, Refused):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    return JSONResponse({"error": str(exc)}, status_code=400)


class SecurityHeaders:
    """ASGI middleware: `SECURITY_HEADERS` on every response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_app(session: ReviewSession, hosts: list[str]) -> Starlette:
    """The app for `session`, answering only requests addressed to one of `hosts`."""
    review = ReviewApp(session)
    routes = [
        Route("/", review.index),
        Route("/api/summary", review.summary),
        Route("/api/rows", review.rows),
        Route("/thumb/{row:int}", review.thumb),
        Route("/image/{row:int}", review.image),
        Route("/api/decide", review.decide, methods=["POST"]),
        Route("/api/undo", review.undo, methods=["POST"]),
        Route("/api/bulk-accept", review.bulk_accept, methods=["POST"]),
        Route("/api/export", review.export, methods=["POST"]),
        Route("/api/refit", review.refit, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers = {FewshotError: _errors, Refused: _errors}
    middleware = [Middleware(SecurityHeaders), Middleware(TrustedHostMiddleware, allowed_hosts=hosts)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.review = review
    return app
