"""`deep-emotion serve`: the browser page (web/) on localhost, with the headers that let onnxruntime-web use several
WASM threads.

    deep-emotion serve                 # http://localhost:8000/, from anywhere inside a clone of the repository
    deep-emotion serve --web_dir DIR   # another copy of the page's folder

Threads need SharedArrayBuffer, which browsers give only to cross-origin-isolated pages: the
Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers below. `python -m http.server`
from web/ serves the page too, with one thread. The page's files (index.html, app.js, pipeline.js and
onnxruntime-web under node_modules/) come with the repository, not with the installed package.
"""
import functools
import http.server
import sys
from pathlib import Path

from deep_emotion.utils import ArgumentParser, UserError, int_at_least

PAGE_FILES = ("index.html", "pipeline.js")  # what makes a folder the page's


class QuietServer(http.server.ThreadingHTTPServer):
    """Says nothing when the browser drops a download it no longer wants (a reload, a closed tab)."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm"}

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):  # quiet: one line per file would drown the page's own messages
        pass


def serve(folder, port=8000, host="127.0.0.1"):
    """An http.server on (host, port) serving folder with cross-origin isolation; call serve_forever()."""
    handler = functools.partial(IsolatedHandler, directory=str(folder))
    return QuietServer((host, port), handler)


def page_folder(cwd=None):
    """The web/ folder of the checkout the current folder is in (the page's files in it), else None."""
    cwd = Path(cwd or Path.cwd()).resolve()
    for folder in [cwd, *cwd.parents]:
        for candidate in (folder / "web", folder):
            if all((candidate / name).is_file() for name in PAGE_FILES):
                return candidate
    return None


def get_args_parser():
    parser = ArgumentParser(prog="deep-emotion serve", description="Serve the browser page on localhost.")
    parser.add_argument("--port", type=int_at_least(0), default=8000, help="port (default: 8000)")
    parser.add_argument("--web_dir", default=None,
                        help="the page's folder (default: the web/ of the checkout the current folder is in)")
    return parser


def main(args):
    folder = Path(args.web_dir) if args.web_dir else page_folder()
    if folder is None or not all((folder / name).is_file() for name in PAGE_FILES):
        raise UserError(f"{folder or 'no folder here'} holds no page ({', '.join(PAGE_FILES)}): the page comes with "
                        "the repository's web/; run this from inside a clone of it, or give --web_dir")
    if not (folder / "models" / "models.json").is_file():
        print(f"note: {folder / 'models'} has no models yet: run `deep-emotion export --web` first")
    try:
        server = serve(folder, args.port)
    except OSError as error:
        raise UserError(f"cannot listen on port {args.port}: {error.strerror or error}") from None
    print(f"http://localhost:{server.server_address[1]}/  serving {folder} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
