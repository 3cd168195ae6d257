"""Build the vae-digits demo page into a static site, and serve it with the headers threads need.

    python web/site.py build [--bundle cvae] [--bundle vae] [--bundle PATH/TO/BUNDLE] [--out site] [--force]
                             [--brotli-quality 11]
    python web/site.py serve [site] [--port 8000] [--host 127.0.0.1] [--no-isolation]

The site holds the page, the library, onnxruntime-web's two files and, per bundle, its manifest.json
and the files the browser uses (the default ONNX decoder and encoder, prior.json when there is one),
each checked by vae_runtime as every consumer of a bundle checks it (the manifest, then each file's
size and sha256) before it is copied. Deploy it to any static host; serve it with
`Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp` for
multi-threaded WebAssembly (the `_headers` file written into the site says so to Netlify and
Cloudflare Pages). Next to every file that compresses (the page, the scripts, the JSON and the
WebAssembly; not the ONNX weights, which shrink by 8 %) the build writes a gzip copy (NAME.gz) and, with
the `brotli` package installed (`pip install ".[web]"`), a brotli copy (NAME.br); `serve` sends the
copy the browser accepts with `Content-Encoding`, as static hosts do. Needs vae_runtime
(`pip install .`); the server is Python's standard library.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NoReturn

try:
    from vae_runtime.bundle import DEFAULT, EMBEDDED_BUNDLES, embedded_bundle, read_manifest, verified_path
    from vae_runtime.errors import BundleError
    from vae_runtime.manifest import Manifest, ModelFile
except ImportError:
    sys.exit("web/site.py needs vae_runtime: run it in the project's venv, or `pip install .` first")

WEB = Path(__file__).resolve().parent
ORT_DIST = WEB / "node_modules" / "onnxruntime-web" / "dist"
ORT_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "app.js", "style.css", "vae-digits.js")
LIBRARY = "lib"  # the modules vae-digits.js imports, copied to the same place in the site
CONFIG_MARK = '<script type="application/json" id="site-config">{"bundles": []}</script>'
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}
# Measured on the built site: these shrink to 15-35 % (the .wasm to 16 % with brotli, 26 % with gzip);
# float32 ONNX weights only to 92 %, not worth a copy.
COMPRESSIBLE = frozenset({".html", ".js", ".mjs", ".css", ".json", ".wasm", ".svg", ".txt"})
COPIES = {"br": ".br", "gzip": ".gz"}  # Content-Encoding -> suffix, in the order the server prefers them
BROTLI_QUALITY = 11  # the smallest (the .wasm: 2.35 MB, 2.83 at quality 5) and slow: minutes, once a build
HAS_BROTLI = importlib.util.find_spec("brotli") is not None  # else gzip copies only
QUALITY = re.compile(r"q=(0(\.\d{0,3})?|1(\.0{0,3})?)")


class SiteError(Exception):
    """Bad input to build or serve: the message is one line saying what to do."""


def build(
    bundles: list[str], out: Path, force: bool = False, brotli_quality: int | None = BROTLI_QUALITY
) -> list[str]:
    """Write the static site for `bundles` (embedded names or bundle directories) into `out`.

    Returns the bundle names in the site; the page opens the first unless its URL says ?bundle=NAME.
    brotli_quality: 0-11 for the .br copies (lower is faster and larger); None writes no compressed copies.
    Example: build(["cvae", "runs/my-bundle"], Path("site"))
    """
    out = Path(out)
    blocking = next((path for path in (out, *out.parents) if path.exists() and not path.is_dir()), None)
    if blocking is not None:
        raise SiteError(f"{blocking} is a file, not a directory: give --out a directory path")
    if out.exists() and not force:
        raise SiteError(f"{out} already exists; pass --force to replace it")
    missing = [name for name in ORT_FILES if not (ORT_DIST / name).is_file()]
    if missing:
        raise SiteError(f"{ORT_DIST / missing[0]} is missing: run `npm ci` in {WEB}")
    sources = {bundle_name(bundle): bundle_dir(bundle) for bundle in bundles}
    if len(sources) != len(bundles):
        raise SiteError("two bundles would share a name in the site; give bundles distinct directory names")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
    except OSError as error:
        raise SiteError(f"cannot write the site to {out} ({error.strerror or error})") from None
    stage.chmod(0o755)  # mkdtemp makes it private; a site is for everyone to read
    try:
        for name, source in sources.items():
            copy_bundle(source, stage / "bundles" / name)
        write_page(stage, list(sources))
        if brotli_quality is not None:
            compress_site(stage, brotli_quality)
        replace_dir(stage, out)
    except OSError as error:
        raise SiteError(f"cannot write the site to {out} ({error.strerror or error})") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return list(sources)


def bundle_name(bundle: str) -> str:
    """The bundle's name in the site (bundles/NAME/, ?bundle=NAME): its directory's name."""
    name = Path(bundle).resolve().name if Path(bundle).is_dir() else bundle
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", name):
        raise SiteError(f"bundle {bundle}: name the directory with letters, digits, '.', '_' or '-' only")
    return name


def bundle_dir(bundle: str) -> Path:
    """A bundle directory, or the embedded bundle of that name when there is no such directory."""
    path = Path(bundle)
    if not path.is_dir() and bundle in EMBEDDED_BUNDLES:
        path = embedded_bundle(bundle)
    if not (path / "manifest.json").is_file():
        raise SiteError(
            f"bundle {bundle} is not a bundle directory (no manifest.json) nor an embedded bundle"
        )
    return path


def browser_files(manifest: Manifest, bundle: Path) -> list[ModelFile]:
    """The manifest entries the page downloads: the default ONNX decoder and encoder, and the prior."""
    chosen = [manifest.prior] if manifest.prior else []
    for role in ("decoder", "encoder"):
        entry = manifest.find(role, "onnx")
        if entry is None:
            raise SiteError(
                f"bundle {bundle} has no default ONNX {role}: the browser runs ONNX files "
                "(export with vae-export onnx or all)"
            )
        chosen.append(entry)
    return chosen


def copy_bundle(source: Path, target: Path) -> None:
    """The manifest and the files the browser uses, each checked as vae_runtime checks it."""
    try:
        entries = browser_files(read_manifest(source), source)
        checked = {entry.path: verified_path(source, entry) for entry in entries}
    except BundleError as error:  # said of this bundle: "bundle runs/x: decoder.onnx does not match ..."
        raise SiteError(f"bundle {source}: {str(error).removeprefix('bundle file ')}") from None
    target.mkdir(parents=True)
    shutil.copyfile(source / "manifest.json", target / "manifest.json")
    for name, path in checked.items():
        shutil.copyfile(path, target / name)


def write_page(site: Path, bundles: list[str]) -> None:
    for name in PAGE_FILES:
        shutil.copyfile(WEB / name, site / name)
    (site / LIBRARY).mkdir()
    for module in sorted((WEB / LIBRARY).glob("*.js")):
        shutil.copyfile(module, site / LIBRARY / module.name)
    for name in ORT_FILES:
        shutil.copyfile(ORT_DIST / name, site / name)
    page = (site / "index.html").read_text(encoding="utf-8")
    config = json.dumps({"bundles": bundles}).replace("<", "\\u003c")
    if CONFIG_MARK not in page:
        raise SiteError(f"{WEB / 'index.html'} lacks the site-config script the build fills in")
    page = page.replace(CONFIG_MARK, CONFIG_MARK.replace('{"bundles": []}', config))
    (site / "index.html").write_text(page, encoding="utf-8")
    headers = "".join(f"  {key}: {value}\n" for key, value in ISOLATION_HEADERS.items())
    (site / "_headers").write_text(f"/*\n{headers}", encoding="utf-8")


def compress_site(site: Path, brotli_quality: int) -> None:
    """Next to every compressible file, its gzip copy and (with the brotli package) its brotli copy."""
    compressors: dict[str, Callable[[bytes], bytes]] = {
        ".gz": functools.partial(gzip.compress, compresslevel=9, mtime=0)
    }
    if HAS_BROTLI:
        import brotli

        compressors[".br"] = functools.partial(brotli.compress, quality=brotli_quality)
    for path in sorted(site.rglob("*")):
        if path.suffix in COMPRESSIBLE and path.is_file():
            data = path.read_bytes()
            for suffix, compress in compressors.items():
                packed = compress(data)
                if len(packed) < len(data):
                    path.with_name(path.name + suffix).write_bytes(packed)


def chosen_encoding(accept_encoding: str, available: list[str]) -> str | None:
    """The Content-Encoding to send among `available` (in the server's order of preference) for a
    request's Accept-Encoding: the acceptable one of highest q, the server's order breaking ties."""
    weights = {
        name.strip(): q_value(parameters)
        for name, _, parameters in (item.partition(";") for item in accept_encoding.lower().split(","))
    }

    def weight(name: str) -> float:
        return weights.get(name, weights.get("*", 0.0))

    acceptable = [name for name in available if weight(name) > 0]
    return max(acceptable, key=weight, default=None)


def q_value(parameters: str) -> float:
    """An Accept-Encoding entry's weight: its q= (1 without one; 0, never chosen, when malformed)."""
    if not parameters.strip():
        return 1.0
    quality = QUALITY.fullmatch(parameters.replace(" ", ""))
    return float(quality.group(1)) if quality else 0.0


def replace_dir(stage: Path, out: Path) -> None:
    """Move the finished `stage` to `out`: a reader sees the old site or the new one, never half."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{stage.name[-8:]}")
        out.rename(old)
        stage.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        stage.rename(out)


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files with the media types the page needs, no caching, (isolation) COOP/COEP, and the
    build's precompressed copy of a file when the request's Accept-Encoding takes it."""

    isolation = True
    # not a ClassVar: the base class declares it per instance (mypy); shared here, and never mutated
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MEDIA_TYPES}  # noqa: RUF012
    encoding: str | None = None  # of the response being sent
    varies = False  # whether the response depends on Accept-Encoding

    def translate_path(self, path: str) -> str:
        """The file to send: the precompressed copy when the client accepts it (a directory's index.html
        too), so that SimpleHTTPRequestHandler sends it with its size, date and 304s."""
        local = Path(super().translate_path(path))
        if local.is_dir() and path.split("?")[0].endswith("/") and (local / "index.html").is_file():
            local = local / "index.html"
        available = [name for name, suffix in COPIES.items() if Path(f"{local}{suffix}").is_file()]
        self.varies = bool(available)
        self.encoding = chosen_encoding(self.headers.get("Accept-Encoding", ""), available)
        return f"{local}{COPIES[self.encoding]}" if self.encoding else str(local)

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        name = str(path)
        if self.encoding:
            name = name.removesuffix(COPIES[self.encoding])
        return super().guess_type(name)

    def end_headers(self) -> None:
        if self.isolation:
            for key, value in ISOLATION_HEADERS.items():
                self.send_header(key, value)
        if self.encoding:
            self.send_header("Content-Encoding", self.encoding)
        if self.varies:
            self.send_header("Vary", "Accept-Encoding")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # one line per request is noise for a demo
        pass


def make_server(
    site: Path, host: str = "127.0.0.1", port: int = 8000, isolation: bool = True
) -> ThreadingHTTPServer:
    """An HTTP server for the built `site` (port 0: any free port, see server.server_address).

    Example:
        make_server(Path("site")).serve_forever()
    """
    site = Path(site)
    if not (site / "index.html").is_file():
        raise SiteError(f"{site} is not a built site (no index.html): run `python web/site.py build` first")
    handler = type("Handler", (SiteHandler,), {"isolation": isolation})
    try:
        return ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(site)))
    except OverflowError:
        raise SiteError(f"cannot serve on port {port}: ports are 0-65535") from None
    except OSError as error:
        raise SiteError(f"cannot serve on {host}:{port} ({error.strerror})") from None


@contextmanager
def serving(site: Path, isolation: bool = True) -> Iterator[str]:
    """The built `site` served from a background thread on a free port of 127.0.0.1: yields its URL.

    Example:
        with serving(Path("site")) as url:
            page.goto(url)
    """
    server = make_server(site, port=0, isolation=isolation)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line and exit 2, like every vae-digits command (--help still shows usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def integer(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an int in [low, high]; the error names the value and the bounds."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python web/site.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="write the static site for one or more bundles")
    build_parser.add_argument(
        "--bundle",
        action="append",
        help=f"a bundle directory or {'|'.join(EMBEDDED_BUNDLES)} (repeatable; default: {DEFAULT} and cvae)",
    )
    build_parser.add_argument(
        "--out", type=Path, default=Path("site"), help="the site directory (default: site)"
    )
    build_parser.add_argument("--force", action="store_true", help="replace an existing site directory")
    build_parser.add_argument(
        "--brotli-quality",
        type=integer(0, 11),
        default=BROTLI_QUALITY,
        help=f"0-11 for the .br copies: lower builds faster, larger (default: {BROTLI_QUALITY})",
    )
    build_parser.add_argument(
        "--no-compress", action="store_true", help="write no .br/.gz copies (served then as they are)"
    )
    serve_parser = commands.add_parser("serve", help="serve a built site on 127.0.0.1 with COOP/COEP")
    serve_parser.add_argument("site", type=Path, nargs="?", default=Path("site"))
    serve_parser.add_argument("--port", type=integer(0, 65535), default=8000, help="0: any free port")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="leave out COOP/COEP (onnxruntime-web then runs one thread)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            quality = None if args.no_compress else args.brotli_quality
            names = build(args.bundle or [DEFAULT, "cvae"], args.out, args.force, quality)
            print(
                f"built {args.out} with bundles {', '.join(names)}, {copies_written(quality)}; "
                f"serve it: python web/site.py serve {args.out}"
            )
        else:
            serve(args.site, args.host, args.port, not args.no_isolation)
    except SiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def copies_written(brotli_quality: int | None) -> str:
    if brotli_quality is None:
        return "no compressed copies"
    if not HAS_BROTLI:
        return "gzip copies (no brotli: pip install brotli)"
    return f"gzip and brotli (quality {brotli_quality}) copies"


def serve(site: Path, host: str, port: int, isolation: bool) -> None:
    server = make_server(site, host, port, isolation)
    threads = "multi-threaded (COOP/COEP sent)" if isolation else "single-threaded (no COOP/COEP)"
    print(
        f"serving {site} at http://{host}:{server.server_address[1]}/ , {threads}; Ctrl-C stops", flush=True
    )
    with server:
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
