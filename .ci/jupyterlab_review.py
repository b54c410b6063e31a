"""Run notebooks in JupyterLab in headless Chromium, as a learner would, and collect what
a reader sees: every figure and widget as a screenshot, every red (stderr) output and
every error. Not part of CI; a review aid (issue 22: "every notebook run in JupyterLab in
a browser").

    pip install playwright            # uses Debian's chromium: apt-get install chromium
    CNNLAB_FAST=1 CNNLAB_OFFLINE=1 python .ci/jupyterlab_review.py OUT 01 02 ... [other.ipynb]

For each notebook it writes OUT/NN/figure-K.png (each output with an image or a widget),
OUT/NN/sheet.png (all of them on one contact sheet) and OUT/NN/report.txt (stderr
outputs, errors, widgets, timings). The notebook on disk is not modified.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from check_site import chromium  # noqa: E402  (one way to find the browser: $CHROMIUM, then Debian's)

CHROMIUM = chromium()
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_lab(workdir: Path, port: int) -> subprocess.Popen:
    """JupyterLab without a token, with every cell rendered (no windowing), so that the
    page holds the whole notebook."""
    settings = workdir / ".lab-settings"
    settings.mkdir(exist_ok=True)
    overrides = {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
                 "@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                                 "checkForUpdates": False}}  # fmt: skip
    (settings / "overrides.json").write_text(json.dumps(overrides))
    env = os.environ | {"JUPYTERLAB_SETTINGS_DIR": str(settings)}
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
               "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.root_dir={workdir}", "--LabApp.news_url=None", "--allow-root",
               "--ServerApp.disable_check_xsrf=True"]  # fmt: skip
    log = open(workdir / "lab.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(url: str, seconds: float = 60) -> None:
    import urllib.request

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer at {url}")


def _shut_down_kernels(base: str) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{base}/api/kernels") as answer:
        kernels = json.load(answer)
    for kernel in kernels:
        request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}", method="DELETE")
        urllib.request.urlopen(request).close()


def _sheet(pictures: list[Path], out: Path, width: int = 1400) -> None:
    """All figures of a notebook on one image, scaled to ``width``, one under another."""
    images = [Image.open(p).convert("RGB") for p in pictures]
    if not images:
        return
    scaled = [im.resize((min(width, im.width), int(im.height * min(width, im.width) / im.width)))
              for im in images]  # fmt: skip
    sheet = Image.new("RGB", (width, sum(im.height + 12 for im in scaled)), "white")
    y = 0
    for im in scaled:
        sheet.paste(im, (0, y))
        y += im.height + 12
    sheet.save(out)


def review(notebook: Path, page, base: str, out: Path, timeout_s: float) -> str:
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    page.goto(f"{base}/lab/tree/{notebook.name}?reset")  # this notebook alone
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)  # kernel ready
    time.sleep(3)
    news = page.get_by_role("button", name="No", exact=True)  # "notified about Jupyter news?"
    if news.count():
        news.first.click()
    page.locator(".jp-Notebook >> visible=true").click()  # focus the notebook, then Run > Run All Cells
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    try:
        page.wait_for_selector(".jp-InputPrompt:has-text('[*]')", timeout=60_000)
    except Exception:
        page.screenshot(path=str(out / "stuck.png"))
        raise
    end, idle_since = time.monotonic() + timeout_s, None
    idle = page.get_by_text("Python 3 (ipykernel) | Idle")
    while time.monotonic() < end:  # done when the kernel has been idle for 5 s
        if idle.count() and page.locator(".jp-InputPrompt:has-text('[*]')").count() == 0:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 5:
                break
        else:
            idle_since = None
        time.sleep(1)
    seconds = time.monotonic() - start
    page.screenshot(path=str(out / "page.png"))
    lines = [f"{notebook.name}: ran in {seconds:.0f} s in JupyterLab"]
    for kind, selector in (("stderr", "[data-mime-type='application/vnd.jupyter.stderr']"),
                           ("error", ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")):  # fmt: skip
        for item in page.locator(selector).all():
            lines.append(f"--- {kind}:\n{(item.text_content() or '')[:1500]}")
    widgets = page.locator(".jp-OutputArea-output .jupyter-widgets").count()
    broken = page.get_by_text("Error displaying widget").count()
    lines.append(f"widgets rendered: {widgets}, widget errors: {broken}")
    pictures = []
    outputs = page.locator(
        ".jp-OutputArea-output:has(img), .jp-OutputArea-output:has(.jupyter-widgets)"
    )
    for k, item in enumerate(outputs.all()):
        item.scroll_into_view_if_needed()
        path = out / f"figure-{k:02d}.png"
        item.screenshot(path=str(path))
        pictures.append(path)
    _sheet(pictures, out / "sheet.png")
    lines.append(f"figures and widgets captured: {len(pictures)}")
    texts = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']")
    (out / "stdout.txt").write_text("\n----\n".join(t.text_content() or "" for t in texts.all()))
    page.locator(".jp-Notebook >> visible=true").click()
    page.keyboard.press("Control+s")  # the executed notebook, outputs and all, for reading
    time.sleep(3)
    shutil.copy(notebook, out / notebook.name)
    report = "\n".join(lines)
    (out / "report.txt").write_text(report)
    return report


def main() -> int:
    out, wanted = Path(sys.argv[1]), sys.argv[2:]
    workdir = Path(tempfile.mkdtemp(prefix="cnnlab-review-"))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if not wanted or path.name[:2] in wanted:
            shutil.copy(path, workdir / path.name)
    for extra in wanted:  # a notebook of your own, by path
        if extra.endswith(".ipynb"):
            shutil.copy(extra, workdir / Path(extra).name)
    for extra in ("models", "data"):
        if (ROOT / "notebooks" / extra).exists():
            os.symlink(ROOT / "notebooks" / extra, workdir / extra)
    port = _free_port()
    lab = _start_lab(workdir, port)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/lab")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for notebook in sorted(workdir.glob("*.ipynb")):
                print(
                    review(
                        notebook,
                        page,
                        base,
                        out / notebook.name[:2],
                        float(os.environ.get("REVIEW_TIMEOUT", "1800")),
                    ),
                    flush=True,
                )
                _shut_down_kernels(base)  # one notebook's memory at a time
            browser.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
