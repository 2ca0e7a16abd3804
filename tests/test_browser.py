"""The gallery in a real browser: headless Chromium loads every page and reports back.

A test-only harness page (served beside the gallery, so it shares its origin) opens
each gallery page in an iframe, switches its lazy images to eager, waits for them and
writes a JSON report into its own DOM, which ``--dump-dom`` prints. Console messages
come from Chromium's log on stderr; every request that would leave the machine goes
to a recording proxy (Chromium sends loopback requests direct and everything else to
``--proxy-server``). A negative control checks that the harness does catch a broken
image, a foreign request and a console error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socketserver
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from featviz.gallery import build_gallery
from test_report import HOSTILE, LAYERS, make_attacks, make_checkpoint, make_hierarchy, make_visuals

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (/usr/bin/chromium) is not installed; "
                                                             "CI installs Debian's `chromium` package")
FOLD = 800  # height of the harness's iframe: what a first screen shows
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter", "--disable-default-apps",
         "--disable-domain-reliability", "--no-pings"]
# Chromium's own updater and sign-in services still call home whatever the flags; the
# proxy ignores exactly those hosts (page requests are also checked in the harness,
# through the resource-timing entries, and blocked by the CSP, which logs to the console).
# Newer Chromium (150) also opens TLS tunnels to www.google.com and android.clients.google.com
# on its own; no gallery page names a Google host (and the CSP would block and log it).
BROWSER_SERVICES = ("update.googleapis.com", "accounts.google.com", "clients2.google.com",
                    "CONNECT www.google.com:443", "CONNECT android.clients.google.com:443")
# A real gallery checked besides the hand-made one: FEATVIZ_GALLERY, else the shipped gallery/.
REPO_GALLERY = Path(os.environ.get("FEATVIZ_GALLERY") or Path(__file__).resolve().parents[1] / "gallery")

HARNESS = """<!DOCTYPE html><html><body><pre id="result">pending</pre><script>
const pages = %s;
async function check(url) {
  const frame = document.createElement("iframe");
  frame.style.width = "1200px"; frame.style.height = "800px";
  const loaded = new Promise(r => frame.onload = r);
  frame.src = url; document.body.appendChild(frame);
  await loaded;
  const doc = frame.contentDocument;
  const imgs = Array.from(doc.images);
  // on the first screen: an image still lazy, or not decoded when the page has loaded
  const late = imgs.filter(img => img.getBoundingClientRect().top < %d &&
                                  (img.loading === "lazy" || !(img.complete && img.naturalWidth > 0)))
                   .map(img => img.getAttribute("src"));
  imgs.forEach(img => { img.loading = "eager"; });
  await Promise.all(imgs.map(img => img.complete ? null :
    new Promise(r => { img.addEventListener("load", r); img.addEventListener("error", r); })));
  const broken = imgs.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute("src"));
  // text a reader cannot read: any visible text node set under 10 px
  const small = [];
  const walker = doc.createTreeWalker(doc.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || !el || el.getClientRects().length === 0) continue;
    const size = parseFloat(frame.contentWindow.getComputedStyle(el).fontSize);
    if (size < 10) small.push(el.tagName + " " + size + "px: " + node.textContent.trim().slice(0, 40));
  }
  // figures shown far below their drawn size shrink their text with them
  const plots = imgs.filter(img => img.classList.contains("plot") && img.naturalWidth > 0)
                    .map(img => [img.getAttribute("src"), img.getBoundingClientRect().width / img.naturalWidth]);
  const resources = frame.contentWindow.performance.getEntriesByType("resource").map(e => e.name);
  const sheets = doc.styleSheets.length;
  frame.remove();
  return {url, images: imgs.length, broken, late, resources, sheets, small, plots};
}
(async () => { const out = []; for (const p of pages) out.push(await check(p));
  document.getElementById("result").textContent = JSON.stringify(out); })()
  .catch(e => { document.getElementById("result").textContent = "ERROR " + e; });
</script></body></html>"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


class _RecordingProxy(socketserver.ThreadingTCPServer):
    """Answers every proxied request with 502 and remembers its first line."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.seen: list[str] = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(4096).decode("latin-1").strip()
                if line and not any(host in line for host in BROWSER_SERVICES):
                    server.seen.append(line)
                self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        super().__init__(("127.0.0.1", 0), Handler)


def _serve(server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def _chromium(args: list[str], profile: Path, timeout: int = 90) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _run_harness(root: Path, pages: list[str], tmp: Path, mode: str) -> tuple[list[dict], list[str], list[str]]:
    """Open ``pages`` (paths relative to ``root``) through the harness over ``mode``
    (``http`` on 127.0.0.1 behind the recording proxy, or ``file``). Returns the per-page
    reports, the console lines and the requests the proxy saw."""
    (root / "check.html").write_text(HARNESS % (json.dumps(pages), FOLD), encoding="utf-8")
    budget = ["--virtual-time-budget=30000", "--dump-dom"]
    if mode == "file":
        res = _chromium(["--allow-file-access-from-files", *budget, (root / "check.html").as_uri()], tmp / "profile-f")
        seen: list[str] = []
    else:
        http = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
        proxy = _RecordingProxy()
        _serve(http), _serve(proxy)
        try:
            res = _chromium([f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}", *budget,
                             f"http://127.0.0.1:{http.server_address[1]}/check.html"], tmp / "profile-h")
        finally:
            http.shutdown(), proxy.shutdown()
            http.server_close(), proxy.server_close()
        seen = list(proxy.seen)
    match = re.search(r'<pre id="result">(.*?)</pre>', res.stdout, re.S)
    assert match and match.group(1).startswith("["), f"harness did not finish: {res.stdout[-500:]} {res.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&amp;", "&")), _console(res.stderr), seen


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A gallery built from hand-made results (fast), under a root that also holds the harness."""
    root = tmp_path_factory.mktemp("browser")
    inputs = root / "inputs"
    ckpts = [make_checkpoint(inputs / "joint", "joint", "joint", 1),
             make_checkpoint(inputs / "layerwise", HOSTILE, "layerwise", 2),
             make_checkpoint(inputs / "adv", "adv", "joint", 3, adv={"attack": "pgd", "eps": 0.1})]
    visuals = [[make_visuals(inputs / f"vis{i}", LAYERS, i)] for i in range(3)]
    build_gallery(ckpts, root / "gallery", visuals=visuals, attacks=make_attacks(inputs / "attacks", ckpts),
                  hierarchy=make_hierarchy(inputs / "hierarchy"), progress=False)
    return root


def _galleries(site: Path) -> list[Path]:
    found = [site / "gallery"]
    if (REPO_GALLERY / "index.html").is_file():  # the example gallery, when it has been built
        found.append(REPO_GALLERY)
    return found


@needs_chromium
@pytest.mark.parametrize("mode", ["http", "file"])
def test_every_page_loads_every_image_with_no_console_error_and_no_foreign_request(site, tmp_path, mode):
    for gallery in _galleries(site):
        root = tmp_path / "root"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(gallery, root / "gallery")
        pages = sorted(f"gallery/{p.name}" for p in (root / "gallery").glob("*.html"))
        reports, console, seen = _run_harness(root, pages, tmp_path, mode)
        assert [r["url"] for r in reports] == pages
        assert sum(r["images"] for r in reports) > 10
        # a gallery built before first screens loaded eagerly has no output marker either
        current = gallery == site / "gallery" or (gallery / ".featviz-output").is_file()
        for r in reports:
            assert r["broken"] == [], r  # naturalWidth 0 after loading: an image that never decodes
            assert r["late"] == [] or not current, r  # on the first screen but lazy: blank in a screenshot
            assert r["sheets"] == 1, r  # the stylesheet applied despite the CSP
            if mode == "http":
                assert all(u.startswith("http://127.0.0.1:") for u in r["resources"]), r
        assert console == [], console
        assert seen == [], seen


# A figure drawn by matplotlib at 100-130 dpi with 10 pt labels keeps them >= 10 px on screen at this scale.
MIN_PLOT_SCALE = 0.6


@needs_chromium
def test_text_is_at_least_10px_and_figures_are_not_shrunk(site, tmp_path):
    """Every page of a freshly built gallery: no text under 10 px, no figure shown at less than
    MIN_PLOT_SCALE of its drawn width, no image decoded asynchronously (blank in screenshots)."""
    root = tmp_path / "root"
    shutil.copytree(site / "gallery", root / "gallery")
    pages = sorted(f"gallery/{p.name}" for p in (root / "gallery").glob("*.html"))
    reports, _, _ = _run_harness(root, pages, tmp_path, "file")
    assert any(r["plots"] for r in reports)
    for r in reports:
        assert r["small"] == [], r["url"]
        assert all(scale >= MIN_PLOT_SCALE for _, scale in r["plots"]), (r["url"], r["plots"])
    for page in (site / "gallery").glob("*.html"):
        assert 'decoding="async"' not in page.read_text(encoding="utf-8"), page.name


@needs_chromium
def test_harness_sees_small_text_and_shrunk_figures(site, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(site / "gallery", root / "gallery")
    shutil.copyfile(site / "gallery" / "img" / "hf_ratio.png", root / "gallery" / "ok.png")
    (root / "gallery" / "tiny.html").write_text(
        '<!DOCTYPE html><p style="font-size:6px">tiny words</p><img class="plot" src="ok.png" style="width:40px">',
        encoding="utf-8")
    (report,), _, _ = _run_harness(root, ["gallery/tiny.html"], tmp_path, "file")
    assert report["small"] and "tiny words" in report["small"][0]
    assert report["plots"][0][1] < MIN_PLOT_SCALE


@needs_chromium
def test_harness_catches_broken_images_foreign_requests_and_console_errors(site, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(site / "gallery", root / "gallery")
    (root / "gallery" / "bad.html").write_text(
        '<!DOCTYPE html><img src="missing.png"><img src="http://featviz.invalid/x.png">'
        '<script>console.error("boom")</script>', encoding="utf-8")
    shutil.copyfile(site / "gallery" / "img" / "hf_ratio.png", root / "gallery" / "ok.png")
    (root / "gallery" / "notpng.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)  # arrives, never decodes
    (root / "gallery" / "lazy.html").write_text(
        '<!DOCTYPE html><img src="ok.png" loading="lazy" width="300" height="200"><img src="notpng.png">',
        encoding="utf-8")
    reports, console, seen = _run_harness(root, ["gallery/index.html", "gallery/bad.html", "gallery/lazy.html"],
                                          tmp_path, "http")
    assert reports[2]["late"] == ["ok.png", "notpng.png"] and reports[2]["broken"] == ["notpng.png"]
    assert reports[0]["broken"] == [] and sorted(reports[1]["broken"]) == ["http://featviz.invalid/x.png",
                                                                          "missing.png"]
    assert any("boom" in line for line in console)
    assert any("featviz.invalid" in line for line in seen)


def _screenshot(page: Path, shot: Path, profile: Path) -> subprocess.CompletedProcess:
    return _chromium(["--window-size=1280,1600", "--virtual-time-budget=10000", f"--screenshot={shot}",
                      page.as_uri()], profile)


def _not_blank(shot: Path) -> int:
    """Grey levels in a coarse version of the screenshot (a blank page has one or two)."""
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 1600)
        return len(im.convert("L").resize((64, 80)).getcolors(4096))


def test_first_images_of_every_page_load_eagerly(site):
    """The first screen of each page has no lazy image (headless screenshots left them blank)."""
    from featviz.report.site import EAGER_IMAGES

    for page in sorted((site / "gallery").glob("*.html")):
        imgs = re.findall(r"<img [^>]*>", page.read_text(encoding="utf-8"))
        assert imgs, page.name
        assert not any('loading="lazy"' in tag for tag in imgs[:EAGER_IMAGES]), page.name
        assert all('loading="lazy"' in tag for tag in imgs[EAGER_IMAGES:]), page.name


@needs_chromium
def test_screenshot_of_every_page_shows_its_images(site, tmp_path):
    """Every page, screenshotted as a user would: none is blank. attacks.html (whose example
    sheets were missing from headless screenshots while they loaded lazily) is also shot with
    its images removed: the two must differ, so the images were really drawn."""
    from PIL import Image, ImageChops

    gallery = site / "gallery"
    pages = sorted(gallery.glob("*.html"))
    assert len(pages) >= 5
    for page in pages:
        shot = tmp_path / f"{page.stem}.png"
        res = _screenshot(page, shot, tmp_path / "profile-s")
        assert shot.is_file() and shot.stat().st_size > 5_000, (page, res.stderr[-1000:])
        assert _not_blank(shot) > 4, page
    bare = gallery / "bare-attacks.html"
    bare.write_text(re.sub(r"<img [^>]*>", "", (gallery / "attacks.html").read_text(encoding="utf-8")),
                    encoding="utf-8")
    try:
        _screenshot(bare, tmp_path / "bare.png", tmp_path / "profile-s")
    finally:
        bare.unlink()
    with Image.open(tmp_path / "attacks.png") as a, Image.open(tmp_path / "bare.png") as b:
        assert ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is not None


@needs_chromium
def test_screenshot_of_the_index(site, tmp_path):
    gallery = _galleries(site)[-1]
    shot = tmp_path / "gallery.png"
    res = _chromium(["--window-size=1280,1600", "--virtual-time-budget=10000", f"--screenshot={shot}",
                     (gallery / "index.html").as_uri()],
                    tmp_path / "profile-s")
    assert shot.is_file() and shot.stat().st_size > 10_000, res.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 1600)
        assert len(im.convert("L").resize((64, 80)).getcolors(4096)) > 8  # not a blank page
    target = os.environ.get("FEATVIZ_SCREENSHOT")
    if target:  # e.g. FEATVIZ_SCREENSHOT=docs/gallery.png to refresh the README picture
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
