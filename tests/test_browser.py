"""Real-browser smoke test: start the Streamlit app, open every page in headless Chromium.

Each page must render its title without an exception; a full-page screenshot of each lands in
test-artifacts/screenshots/ (and, with SER_UPDATE_SCREENSHOTS=1, in tests/screenshots/ too,
which the README shows).

Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package; never runs
`playwright install`. Skipped when either is missing, except under CI (``CI=true``), where
a missing browser fails the run instead of passing it silently. Only loopback traffic.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
COMMITTED = REPO / "tests" / "screenshots"

# (name, URL path).
PAGES = [
    ("home", "/"),
    ("dataset", "/dataset"),
    ("train", "/train"),
    ("results", "/results"),
    ("studies", "/studies"),
    ("predict", "/predict"),
    ("architectures", "/architectures"),
]

VIEWPORT = {"width": 1400, "height": 1000}
HEALTH_TIMEOUT_S = 60
PAGE_TIMEOUT_S = 90
QUIET_S = 1.0  # how long the page must stay idle to count as settled
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # A fake microphone (a beep) that needs no permission prompt: the Record tab is tested.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]
# Anything that means "the script or a part of it is still working".
BUSY_SELECTOR = ", ".join([
    '[data-testid="stStatusWidgetRunningIcon"]',
    '[data-testid="stStatusWidgetRunningManIcon"]',
    '[data-testid="stSpinner"]',
    '[data-testid="stSkeleton"]',
])


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


def _missing(reason: str):
    """Skip on a developer's machine; fail under CI, where the browser test must run."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} — CI=true, so the browser test may not be skipped")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_api():
    try:
        from playwright import sync_api
    except ImportError:
        _missing("playwright is not installed (pip install -r requirements-dev.txt)")
    return sync_api


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = _chromium()
    if path is None:
        _missing("chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def app_url(session_dir, sync_api, chromium_path):
    """The app served on a free loopback port with private cache/runs folders."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env["SER_CACHE_DIR"] = str(session_dir / "browser-cache")
    env["SER_RUNS_DIR"] = str(session_dir / "browser-runs")
    env.pop("SER_DATA_DIR", None)
    log_path = session_dir / f"streamlit-{port}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "Home.py",
         "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def server_log() -> str:
        log.flush()
        return log_path.read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode}:\n{server_log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy after {HEALTH_TIMEOUT_S} s:\n{server_log()}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def page(app_url, sync_api, chromium_path):
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            pg = context.pages[0] if context.pages else context.new_page()
            pg.set_default_timeout(PAGE_TIMEOUT_S * 1000)
            yield pg
        finally:
            context.close()


def _settle(pg, deadline: float) -> None:
    """Wait until the app is idle (script not running, no spinner) for QUIET_S seconds."""
    pg.locator('[data-testid="stApp"]').wait_for(state="attached")
    pg.locator("h1").first.wait_for(state="visible")
    quiet_since = None
    while time.monotonic() < deadline:
        state = pg.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
        busy = state in ("initial", "running", "rerunRequested") or \
            pg.locator(BUSY_SELECTOR).count() > 0
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= QUIET_S:
            return
        time.sleep(0.1)
    pytest.fail(f"page still busy after {PAGE_TIMEOUT_S} s")


def _screenshot(pg, path: Path) -> None:
    """Full-page screenshot. Streamlit scrolls inside stMain, not the document, so grow the
    viewport to the content height for the shot, then restore it."""
    height = pg.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.documentElement.scrollHeight; }"
    )
    height = max(VIEWPORT["height"], min(int(height), 12000))
    try:
        if height > VIEWPORT["height"]:
            pg.set_viewport_size({"width": VIEWPORT["width"], "height": height})
            pg.wait_for_timeout(1000)  # let charts re-layout
        pg.screenshot(path=str(path), full_page=True)
    finally:
        pg.set_viewport_size(VIEWPORT)


def test_a_shared_link_to_a_page_opens_it_inside_the_app(page, app_url):
    """Regression: when the first request after the server started went straight to a page
    (a link to /predict shared with a class), Streamlit ran pages/predict.py in its older
    multipage mode, without Home.py: narrow layout, a menu of file names with "welcome".
    This module's server is fresh and this is its first request, so it must stay first."""
    deadline = time.monotonic() + 2 * PAGE_TIMEOUT_S  # also generates the demo corpus
    page.goto(app_url + "/predict", wait_until="domcontentloaded")
    _settle(page, deadline)
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "Dataset" in nav and "Architectures" in nav, nav
    assert "welcome" not in nav.lower(), nav
    assert page.locator("h1").first.inner_text().strip().endswith("Predict")


@pytest.mark.parametrize("name, path", PAGES, ids=[p[0] for p in PAGES])
def test_page_renders(page, app_url, name, path):
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    page.goto(app_url + path, wait_until="domcontentloaded")
    _settle(page, deadline)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    _screenshot(page, shot)
    if os.environ.get("SER_UPDATE_SCREENSHOTS") == "1":
        COMMITTED.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, COMMITTED / f"{name}.png")

    errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    for text in errors:  # not a failure (pages may report bad input), but worth seeing
        print(f"\n[{name}] st.error: {text.strip()}")
    exceptions = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not exceptions, f"{name}: exception on page:\n" + "\n---\n".join(exceptions)
    body = page.locator("body").inner_text()
    assert "Traceback" not in body, f"{name}: 'Traceback' on page:\n{body[:3000]}"
    assert page.locator("h1").first.inner_text().strip(), f"{name}: empty title"


def test_clicking_a_confusion_cell_lists_its_clips(page, app_url):
    """Regression: clicking a confusion-matrix cell did nothing (the transparent cell markers
    ignored clicks). Click the sad/sad cell of the first matrix on Results; the clips of that
    cell are listed (the fallback chooser, angry/disgust, is gone)."""
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    page.goto(app_url + "/results", wait_until="domcontentloaded")
    _settle(page, deadline)
    chart = page.locator('[class*="st-key-cm-"] .js-plotly-plot').first
    chart.scroll_into_view_if_needed()
    x, y = chart.evaluate(
        "gd => { const L = gd._fullLayout, r = gd.getBoundingClientRect();"
        " return [r.left + L._size.l + L.xaxis.d2p('sad'),"
        " r.top + L._size.t + L.yaxis.d2p('sad')]; }")
    page.mouse.click(x, y)
    text = page.get_by_text("test clips that are sad and were predicted sad")
    text.first.wait_for(state="visible", timeout=PAGE_TIMEOUT_S * 1000)
    _settle(page, time.monotonic() + PAGE_TIMEOUT_S)
    assert page.get_by_text("Or click a cell of a confusion matrix above.").count() == 0


def test_recording_with_a_fake_microphone_reaches_the_app(page, app_url):
    """Regression: the recorder failed silently with Chromium's fake microphone. Record two
    seconds on Predict's Record tab; the recording must arrive and be analysed."""
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    page.goto(app_url + "/predict", wait_until="domcontentloaded")
    _settle(page, deadline)
    page.get_by_role("tab", name="Record").click()
    # The Record tab's recorder (the voice panel below has one of its own).
    button = page.get_by_test_id("stTabs").get_by_test_id("stAudioInputActionButton")
    button.click()
    page.wait_for_timeout(2500)
    button.click()
    page.get_by_text("recording.wav").first.wait_for(state="visible",
                                                     timeout=PAGE_TIMEOUT_S * 1000)
    _settle(page, time.monotonic() + PAGE_TIMEOUT_S)
    assert not page.locator('[data-testid="stException"]').all_inner_texts()


def test_silence_in_a_spectrogram_is_dark(page, app_url):
    """Regression: Streamlit's chart theme drew −80 dB (silence, the empty band above
    8 kHz of a 16-kHz clip) bright pink. Look at the pixels of the Dataset's STFT image:
    its top quarter (above ~8.3 kHz, empty in the demo corpus's 16-kHz clips) must be dark."""
    import io

    from PIL import Image

    deadline = time.monotonic() + PAGE_TIMEOUT_S
    page.goto(app_url + "/dataset", wait_until="domcontentloaded")
    _settle(page, deadline)
    page.get_by_text("Clip browser", exact=True).first.click()
    _settle(page, time.monotonic() + PAGE_TIMEOUT_S)
    chart = page.locator(".js-plotly-plot").filter(has_text="STFT spectrogram").first
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    left, top_, w, h = chart.evaluate(
        "gd => { const s = gd._fullLayout._size; return [s.l, s.t, s.w, s.h]; }")
    shot = Image.open(io.BytesIO(chart.screenshot())).convert("RGB")
    top = shot.crop((int(left) + 2, int(top_) + 2, int(left + w) - 2, int(top_ + h / 4)))
    pixels = list(top.getdata())
    luminance = sum(0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b in pixels) / (
        255 * len(pixels))
    assert luminance < 0.3, f"the silent band is bright (mean luminance {luminance:.2f})"


PHONE = {"width": 390, "height": 844}


@pytest.mark.parametrize("path", ["/results", "/dataset", "/predict"])
def test_chart_titles_fit_a_phone_and_clear_the_toolbar(page, app_url, path, tmp_path):
    """Regression: on a phone Plotly's toolbar is always shown (touch screens have no hover)
    and sat on top of every chart title, and a long title ran off the chart's right edge
    ("Probabilities (calibrated), speech only, weighted by duration" on Predict; "Test
    accuracy by model, best first" and its subtitle, the legend over both, on Results). At a
    phone's width each chart's title must stay inside the chart and below its toolbar,
    which hovering the chart brings up here. Predict is checked with a clip uploaded and
    its Grad-CAM view open."""
    page.set_viewport_size(PHONE)
    try:
        page.goto(app_url + path, wait_until="domcontentloaded")
        _settle(page, time.monotonic() + PAGE_TIMEOUT_S)
        if path == "/predict":
            from ser.corpora import demo

            root = demo.generate(tmp_path / "demo", n_speakers=1, sentences=("TIE",), seed=0)
            clip = sorted(root.glob("*.wav"))[0]  # synthetic speech the detector accepts
            page.locator("input[type='file']").first.set_input_files(str(clip))
            page.get_by_text("Emotion over time").first.wait_for(
                state="visible", timeout=PAGE_TIMEOUT_S * 1000)
            _settle(page, time.monotonic() + PAGE_TIMEOUT_S)
            page.get_by_text("Where each model listens").first.click()  # Grad-CAM too
            _settle(page, time.monotonic() + PAGE_TIMEOUT_S)
        charts = page.locator(".js-plotly-plot")
        checked = 0
        for i in range(charts.count()):
            chart = charts.nth(i)
            titles = chart.locator(".gtitle")
            if titles.count() == 0 or not (titles.first.text_content() or "").strip():
                continue
            chart.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.wait_for_timeout(200)
            box = chart.bounding_box()
            if not box or box["height"] < 50:  # in a closed expander or an unchosen tab
                continue
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_timeout(300)
            title = chart.locator(".gtitle").bounding_box()
            bar = chart.locator(".modebar").bounding_box()
            text = chart.locator(".gtitle").text_content()
            assert title["x"] + title["width"] <= box["x"] + box["width"] + 1, \
                f"{path}: title '{text}' runs off the chart"
            assert bar is not None, f"{path}: no toolbar on hover over '{text}'"
            assert title["y"] >= bar["y"] + bar["height"] - 1, \
                f"{path}: the toolbar covers the title '{text}'"
            legend = chart.locator(".legend")
            if legend.count():
                lb = legend.first.bounding_box()
                assert lb is None or lb["y"] >= title["y"] + title["height"] - 1, \
                    f"{path}: the legend covers the title '{text}'"
            checked += 1
        assert checked, f"{path}: no titled chart found"
    finally:
        page.set_viewport_size(VIEWPORT)
