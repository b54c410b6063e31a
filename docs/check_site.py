"""Read the built website as a reader does: serve it on 127.0.0.1, open every page in
headless Chromium, and fail on what a reader would see as broken.

    python docs/check_site.py _site                 # after python docs/build.py smoke
    python docs/check_site.py _site --screenshots /tmp/shots --chapters 01 02 07 09

Fails on: a JavaScript console error or uncaught exception, a request that fails or
leaves 127.0.0.1 (the site must work offline), an image that does not load, math left as
raw ``$...$`` or not typeset, a chapter with fewer figures than its notebook made, an
error output in a cell not tagged ``raises-exception``, a solution shown open, a page
without (smoke) or with (full) the smoke banner, a broken internal link or anchor, and
search finding nothing for "Grad-CAM". Uses Playwright with Debian's ``chromium`` (``$CHROMIUM`` overrides).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import json
import os
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

PAGE_FACTS = """() => {
  const skip = 'pre, code, script, style, mjx-container, .cell_output, .highlight, .math';
  const walker = document.createTreeWalker(document.querySelector('main') || document.body,
                                           NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest(skip)) continue;
    const m = n.textContent.match(/\\$[^$\\s][^$]{0,80}\\$/);
    if (m) raw.push(m[0]);
  }
  const untypeset = [...document.querySelectorAll('span.math, div.math')]
    .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60));
  const errors = [...document.querySelectorAll('.cell_output .output.traceback, .cell_output .output.error')]
    .filter(e => !e.closest('.tag_raises-exception')).map(e => e.textContent.slice(0, 300));
  return {
    raw, untypeset, errors,
    ids: [...document.querySelectorAll('[id]')].map(e => e.id)
      .concat([...document.querySelectorAll('a[name]')].map(e => e.name)),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    broken_images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
      .map(i => i.getAttribute('src')),
    figures: document.querySelectorAll('.cell_output img').length,
    open_solutions: document.querySelectorAll('main details[open]').length,
    banner: (document.querySelector('.bd-header-announcement') || {}).textContent || '',
  };
}"""
MATHJAX_DONE = "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
SEARCH_DONE = """() => {
  const box = document.querySelector('#search-results');
  return box && (box.querySelectorAll('li').length > 0 || /did not match|found \\d+/i.test(box.textContent));
}"""


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A quiet static server on a free port of 127.0.0.1."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        # As a web host serves it: connections kept open, and the theme's scripts, styles
        # and fonts cached for ten minutes (GitHub Pages' max-age) rather than asked for
        # again on every page: 1,718 requests for 82 pages became 152, and the check took
        # 15 s instead of 22 (2-core Xeon, measured 2026-12-01).
        protocol_version = "HTTP/1.1"

        def end_headers(self) -> None:
            if not urlsplit(self.path).path.endswith((".html", "/")):
                self.send_header("Cache-Control", "max-age=600")
            super().end_headers()

        def log_message(self, *args) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            pass  # the browser closing a connection early is not the site's fault

    handler = functools.partial(Quiet, directory=str(folder))
    server = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def chromium() -> str | None:
    """The system Chromium Playwright should drive (None: Playwright's own)."""
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


def target_file(site: Path, path: str) -> Path:
    file = site / unquote(path).lstrip("/")
    return file / "index.html" if path.endswith("/") or file.is_dir() else file


async def _browse(base: str, names: list[str], shots: Path | None, chapters: list[str],
                  problems: list[str]) -> dict[str, dict]:  # fmt: skip
    """Open each page (three tabs, each reading page after page) and collect what :data:`PAGE_FACTS` finds."""
    from playwright.async_api import async_playwright

    facts: dict[str, dict] = {}
    queue = [*names, "search.html?q=Grad-CAM"]
    async with async_playwright() as pw:
        offline = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
        browser = await pw.chromium.launch(executable_path=chromium(),
                                           args=["--no-sandbox", offline])  # fmt: skip
        context = await browser.new_context(viewport={"width": 1280, "height": 900})

        async def reader() -> None:
            # One tab reads page after page: a new tab per page costs Chromium a renderer
            # process each, and took twice as long (measured on the 67 API pages).
            page = await context.new_page()
            name = ""
            note = lambda what: problems.append(f"{name}: {what}")  # noqa: E731

            # Requests that leave the site are seen here and fail in the browser (the host
            # rules at launch). Not page.route: routing turns Chromium's cache off.
            page.on("request", lambda r: not r.url.startswith((base, "data:", "blob:"))
                    and note(f"request leaves the site: {r.url}"))  # fmt: skip
            page.on("console", lambda m: m.type == "error" and note(
                f"console error: {m.text[:300]}"))  # fmt: skip
            page.on("pageerror", lambda e: note(f"uncaught: {e}"))
            # ERR_ABORTED: a request the last page left unfinished, cancelled by leaving it
            page.on("requestfailed", lambda r: r.url.startswith(base)
                    and r.failure != "net::ERR_ABORTED"
                    and note(f"failed to load {r.url[len(base):]} ({r.failure})"))  # fmt: skip
            page.on("response", lambda r: r.status >= 400 and note(
                f"HTTP {r.status} for {r.url[len(base):]}"))  # fmt: skip
            while queue:
                name = queue.pop(0)
                await page.goto(base + name, wait_until="load")
                if name.startswith("search.html"):
                    await page.wait_for_function(SEARCH_DONE, timeout=30_000)
                    if not await page.locator("#search-results li").count():
                        problems.append("search.html: nothing found for 'Grad-CAM'")
                    continue
                await page.evaluate(MATHJAX_DONE)
                facts[name] = await page.evaluate(PAGE_FACTS)
                if shots and any(name.startswith(f"notebooks/{c}_") for c in chapters):
                    shots.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(path=str(shots / f"{Path(name).stem}.png"),
                                          full_page=True)  # fmt: skip
            await page.close()

        await asyncio.gather(*(reader() for _ in range(3)))
        await browser.close()
    return facts


def check(site: Path, expect_smoke: bool, shots: Path | None, chapters: list[str]) -> list[str]:
    """Every problem found, as ``page: what``; empty when the site reads well."""
    manifest = json.loads((site / "site.json").read_text())
    server, base = serve(site)
    problems: list[str] = []
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                   if not p.relative_to(site).as_posix().startswith(("_", "search.html")))  # fmt: skip
    try:
        facts = asyncio.run(_browse(base, pages, shots, chapters, problems))
    finally:
        server.shutdown()
    for name, f in facts.items():
        problems += [f"{name}: raw math {m!r}" for m in f["raw"]]
        problems += [f"{name}: math not typeset {m!r}" for m in f["untypeset"]]
        problems += [f"{name}: error output: {e}" for e in f["errors"]]
        problems += [f"{name}: image does not load: {s}" for s in f["broken_images"]]
        if f["open_solutions"]:
            problems.append(f"{name}: {f['open_solutions']} solutions shown open")
        if expect_smoke != ("Smoke build" in f["banner"]):
            problems.append(f"{name}: smoke banner {'missing' if expect_smoke else 'present'}")
        want = manifest["figures"].get(name)
        if want is not None and f["figures"] < want:
            problems.append(f"{name}: {f['figures']} figures shown, the notebook made {want}")
        for link in f["links"]:
            parts = urlsplit(link)
            if not link.startswith(base) or parts.path.endswith("search.html"):
                continue
            path = parts.path[len(urlsplit(base).path) :] or "index.html"
            file = target_file(site, path)
            if not file.exists():
                problems.append(f"{name}: broken link to {path}")
            elif parts.fragment and file.suffix == ".html":
                ids = facts.get(file.relative_to(site).as_posix(), {}).get("ids", [])
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{name}: broken anchor {path}#{parts.fragment}")
    missing = set(manifest["figures"]) - set(facts)
    problems += [f"{name}: chapter page missing" for name in sorted(missing)]
    print(f"checked {len(facts)} pages and search in Chromium: {len(problems)} problems")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, nargs="?", default=Path("_site"))
    parser.add_argument("--screenshots", type=Path, help="save full-page shots of chapters")
    parser.add_argument("--chapters", nargs="*", default=[], help="chapter numbers to shoot")
    args = parser.parse_args(argv)
    manifest = json.loads((args.site / "site.json").read_text())
    problems = check(args.site, manifest["mode"] == "smoke", args.screenshots, args.chapters)
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
