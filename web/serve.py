"""Serves web/ on localhost with the headers that let onnxruntime-web use several WASM threads.

    python web/serve.py              # http://localhost:8000/  (--port to change it)

Threads need SharedArrayBuffer, which browsers give only to cross-origin-isolated pages: the
Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers below. `python -m http.server`
from web/ serves the page too, with one thread.
"""
import argparse
import functools
import http.server
import sys
from pathlib import Path


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--folder", default=str(Path(__file__).resolve().parent), help="what to serve (default: web/)")
    args = parser.parse_args()
    server = serve(args.folder, args.port)
    print(f"http://localhost:{args.port}/  (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
