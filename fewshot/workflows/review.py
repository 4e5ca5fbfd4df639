"""`fewshot review` as a library call: check the options, open the review, serve the page.

`open_review(request)` checks everything that can be wrong before anything is served or
written (the results file, the images root, the host, the port: bound here, so a port in use
is one line) and returns a `ReviewServer`; `ReviewServer.serve()` runs uvicorn until
Ctrl-C, then releases the journal. Tests and scripts can instead take ``server.app`` to a
Starlette ``TestClient``, or ``server.session`` to drive the review without HTTP.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from fewshot.errors import FewshotError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass
class ReviewRequest:
    """The settings of `fewshot review`."""

    results: Path
    images: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    export_dir: Path | None = None
    encoder: str | None = None  # the refit's encoder (None: fewshot predict's default)
    device: str = "cpu"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno == 98:  # EADDRINUSE
            raise FewshotError(
                f"--port {port} is in use: choose another (--port 0 takes a free one)"
            ) from None
        raise FewshotError(
            f"--host {host} --port {port}: cannot listen there ({err.strerror or err})"
        ) from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def allowed_hosts(host: str) -> list[str]:
    """Host names the server answers to (anything else is refused: DNS rebinding)."""
    if host in ("0.0.0.0", "::"):
        return ["*"]
    names = [host] + (["127.0.0.1", "localhost"] if is_loopback(host) else [])
    return list(dict.fromkeys(f"[{h}]" if ":" in h else h for h in names))


class ReviewServer:
    """A review ready to serve: `url`, `session`, `app` (a Starlette app), `sock` (bound)."""

    def __init__(self, request: ReviewRequest, sock: socket.socket) -> None:
        from fewshot.review.app import build_app
        from fewshot.review.session import ReviewSession

        self.request, self.sock = request, sock
        self.port = sock.getsockname()[1]
        shown = f"[{request.host}]" if ":" in request.host else request.host
        self.url = f"http://{shown}:{self.port}/"
        try:
            self.session = ReviewSession(
                request.results, request.images, request.export_dir, request.encoder, request.device
            )
        except BaseException:
            sock.close()
            raise
        self.app = build_app(self.session, allowed_hosts(request.host))

    def serve(self) -> None:
        """Serve until interrupted (Ctrl-C), then close the review."""
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        try:
            uvicorn.Server(config).run(sockets=[self.sock])
        except KeyboardInterrupt:
            pass  # uvicorn shut down cleanly and re-raised the Ctrl-C: a normal stop
        finally:
            self.close()

    def close(self) -> None:
        self.sock.close()
        self.session.close()


def open_review(request: ReviewRequest) -> ReviewServer:
    """Check `request` and open the review (journal locked, socket bound); nothing served yet.

    Raises:
        FewshotError: a missing or foreign results file, a bad images root, a port in use,
            another review of the same results, a damaged journal.
    """
    if not 0 <= request.port <= 65535:
        raise FewshotError("--port is between 0 and 65535")
    if request.images is not None and not Path(request.images).expanduser().is_dir():
        raise FewshotError(f"--images {request.images} is not a folder")
    results = Path(request.results).expanduser()
    if results.is_dir():
        raise FewshotError(f"{results} is a folder: give the CSV that fewshot label or predict wrote")
    if not results.is_file():
        raise FewshotError(f"results file {results} does not exist (give the CSV of fewshot label/predict)")
    if request.encoder is not None:
        check_encoder(request.encoder)
    return ReviewServer(request, _bind(request.host, request.port))


def check_encoder(spec: str) -> None:
    """Refuse an ``--encoder`` that names neither a file nor an encoder (it is built only at
    the first refit, which would be too late to say so)."""
    from fewshot.build import split_spec
    from fewshot.encoders import ENCODERS

    if not Path(spec).expanduser().is_file() and split_spec(spec)[0] not in ENCODERS:
        names = ", ".join(ENCODERS.names())
        raise FewshotError(f"--encoder {spec!r} is neither a checkpoint file nor an encoder name ({names})")
