"""Build the vae-digits demo page into a static site, and serve it with the headers threads need.

    python web/site.py build [--bundle cvae] [--bundle vae] [--bundle PATH/TO/BUNDLE] [--out site] [--force]
    python web/site.py serve [site] [--port 8000] [--host 127.0.0.1] [--no-isolation]

The site holds the page, the library, onnxruntime-web's two files and, per bundle, its manifest.json
and the files the browser uses (the default ONNX decoder and encoder, prior.json when there is one),
each checked against the manifest's sha256 and size while it is copied. Deploy it to any static host;
serve it with `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy:
require-corp` for multi-threaded WebAssembly (the `_headers` file written into the site says so to
Netlify and Cloudflare Pages). Python standard library only.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import shutil
import sys
import tempfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

WEB = Path(__file__).resolve().parent
EMBEDDED = WEB.parent / "runtime" / "bundles"  # the pretrained bundles shipped with vae_runtime
ORT_DIST = WEB / "node_modules" / "onnxruntime-web" / "dist"
ORT_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "app.js", "style.css", "vae-digits.js")
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


class SiteError(Exception):
    """Bad input to build or serve: the message is one line saying what to do."""


def build(bundles: list[str], out: Path, force: bool = False) -> list[str]:
    """Write the static site for `bundles` (embedded names or bundle directories) into `out`.

    Returns the bundle names in the site; the page opens the first unless its URL says ?bundle=NAME.
    Example: build(["cvae", "runs/my-bundle"], Path("site"))
    """
    out = Path(out)
    if out.exists() and not force:
        raise SiteError(f"{out} already exists; pass --force to replace it")
    missing = [name for name in ORT_FILES if not (ORT_DIST / name).is_file()]
    if missing:
        raise SiteError(f"{ORT_DIST / missing[0]} is missing: run `npm ci` in {WEB}")
    sources = {bundle_name(bundle): bundle_dir(bundle) for bundle in bundles}
    if len(sources) != len(bundles):
        raise SiteError("two bundles would share a name in the site; give bundles distinct directory names")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
    stage.chmod(0o755)  # mkdtemp makes it private; a site is for everyone to read
    try:
        for name, source in sources.items():
            copy_bundle(source, stage / "bundles" / name)
        write_page(stage, list(sources))
        replace_dir(stage, out)
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
    if not path.is_dir() and (EMBEDDED / bundle / "manifest.json").is_file():
        path = EMBEDDED / bundle
    if not (path / "manifest.json").is_file():
        raise SiteError(
            f"bundle {bundle} is not a bundle directory (no manifest.json) nor an embedded bundle"
        )
    return path


def browser_files(manifest: dict, bundle: Path) -> list[dict]:
    """The manifest entries the page downloads: the default ONNX decoder and encoder, and the prior."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not all(isinstance(entry, dict) for entry in files):
        raise SiteError(f"bundle {bundle}: manifest.json has no list of files")
    chosen = [entry for entry in files if entry.get("role") == "prior"]
    for role in ("decoder", "encoder"):
        found = [
            e for e in files if e.get("role") == role and e.get("format") == "onnx" and e.get("default", True)
        ]
        if not found:
            raise SiteError(
                f"bundle {bundle} has no default ONNX {role}: the browser runs ONNX files "
                "(export with vae-export onnx or all)"
            )
        chosen.append(found[0])
    return chosen


def copy_bundle(source: Path, target: Path) -> None:
    try:
        manifest = json.loads((source / "manifest.json").read_bytes())
    except (OSError, ValueError) as error:
        raise SiteError(f"bundle {source}: manifest.json is not readable JSON ({error})") from None
    target.mkdir(parents=True)
    shutil.copyfile(source / "manifest.json", target / "manifest.json")
    for entry in browser_files(manifest, source):
        name = str(entry.get("path", ""))
        if Path(name).name != name or name in ("", ".", ".."):
            raise SiteError(f"bundle {source}: manifest names {name!r}, which is not a file of the bundle")
        try:
            data = (source / name).read_bytes()
        except OSError as error:
            raise SiteError(f"bundle {source}: {name} cannot be read ({error.strerror})") from None
        if len(data) != entry.get("size") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise SiteError(
                f"bundle {source}: {name} does not match its manifest checksum (damaged or altered)"
            )
        (target / name).write_bytes(data)


def write_page(site: Path, bundles: list[str]) -> None:
    for name in PAGE_FILES:
        shutil.copyfile(WEB / name, site / name)
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
    """Static files with the media types the page needs, no caching, and (isolation) COOP/COEP."""

    isolation = True
    extensions_map: ClassVar[dict[str, str]] = {**SimpleHTTPRequestHandler.extensions_map, **MEDIA_TYPES}

    def end_headers(self) -> None:
        if self.isolation:
            for key, value in ISOLATION_HEADERS.items():
                self.send_header(key, value)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # one line per request is noise for a demo
        pass


def make_server(
    site: Path, host: str = "127.0.0.1", port: int = 8000, isolation: bool = True
) -> ThreadingHTTPServer:
    """An HTTP server for the built `site` (port 0: any free port, see server.server_address).

    Example:
        server = make_server(Path("site"), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    """
    site = Path(site)
    if not (site / "index.html").is_file():
        raise SiteError(f"{site} is not a built site (no index.html): run `python web/site.py build` first")
    handler = type("Handler", (SiteHandler,), {"isolation": isolation})
    try:
        return ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(site)))
    except OSError as error:
        raise SiteError(f"cannot serve on {host}:{port} ({error.strerror})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python web/site.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="write the static site for one or more bundles")
    build_parser.add_argument(
        "--bundle", action="append", help="a bundle directory or cvae|vae|cvae-hq (repeatable)"
    )
    build_parser.add_argument(
        "--out", type=Path, default=Path("site"), help="the site directory (default: site)"
    )
    build_parser.add_argument("--force", action="store_true", help="replace an existing site directory")
    serve_parser = commands.add_parser("serve", help="serve a built site on 127.0.0.1 with COOP/COEP")
    serve_parser.add_argument("site", type=Path, nargs="?", default=Path("site"))
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="leave out COOP/COEP (onnxruntime-web then runs one thread)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            names = build(args.bundle or ["cvae"], args.out, args.force)
            bundles = ", ".join(names)
            print(f"built {args.out} with bundles {bundles}; serve it: python web/site.py serve {args.out}")
        else:
            serve(args.site, args.host, args.port, not args.no_isolation)
    except SiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


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
