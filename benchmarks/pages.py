"""How fast every page becomes interactive in a real browser, cold and warm.

    python benchmarks/pages.py [--data /path/to/CREMA-D] [--idle-seconds 20]

Starts the app (``streamlit run Home.py`` on a free loopback port; runs in a private temp
folder, the usual feature/corpus cache), drives Debian's chromium through playwright and
prints, per page, the seconds from navigation until the page is idle (script finished,
no spinner or skeleton):

* **cold**: the first visit after the server started (a new browser session per page);
* **first**: reached through the sidebar in a new session whose browser has not drawn a
  Plotly chart yet (the first chart page also loads Plotly's script);
* **warm**: the same page again through the sidebar, later in that session.

Then: the share of a CPU core the server uses while the Train page sits open with no
active run, and the seconds from uploading a 3-s clip on Predict to the verdict, for the
first clip (models loading) and a second clip (models loaded).

Budgets (issue #18): every page ≤ 1 s warm; idle Train ≤ 2 % of a core; Predict verdict
≤ 1 s after the models load (printed: when the verdict is on screen, and when the whole
page, charts and players included, is idle). ``--data`` points the app at a corpus (SER_DATA_DIR);
without it the synthetic demo corpus is used.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = ["", "dataset", "train", "results", "predict", "architectures"]
BUSY = ", ".join(f'[data-testid="{t}"]' for t in (
    "stStatusWidgetRunningIcon", "stStatusWidgetRunningManIcon", "stSpinner", "stSkeleton"))
QUIET_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().strip() == b"ok"
    except OSError:
        return False


def wait_idle(page, t0: float, timeout: float = 300.0) -> float:
    """Seconds from ``t0`` until the app went idle (and stayed so for QUIET_S)."""
    idle_since = None
    while time.monotonic() - t0 < timeout:
        state = page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
        busy = state in (None, "initial", "running", "rerunRequested") or \
            page.locator(BUSY).count() > 0
        now = time.monotonic()
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= QUIET_S:
            return idle_since - t0
        time.sleep(0.03)
    raise TimeoutError("page still busy")


def wait_verdict(page, t0: float, name: str, timeout: float = 300.0) -> float:
    """Seconds from ``t0`` until the verdict for the clip ``name`` is on screen (the line
    naming the clip and the confidence figure both current, not the previous clip's stale
    ones); the charts below it may still be drawing."""
    fresh = '[data-testid="stElementContainer"][data-stale="false"]'
    named = page.locator(f'{fresh} [data-testid="stMarkdown"]', has_text=name)
    confidence = page.locator(f'{fresh} [data-testid="stMetric"]')
    while time.monotonic() - t0 < timeout:
        if named.count() and confidence.count():
            return time.monotonic() - t0
        time.sleep(0.02)
    raise TimeoutError("no verdict")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def three_second_clips(folder: Path, data: str | None) -> list[Path]:
    """Two 3-s WAV clips: cut from the corpus (or the demo corpus)."""
    import numpy as np
    import soundfile as sf

    from ser.audio import load_audio
    from ser.corpora import load_corpus

    manifest = load_corpus(data).manifest
    loud = manifest[manifest["emotion"] == "angry"].sort_values("duration_s")
    picks = loud["path"].iloc[[len(loud) // 2, len(loud) // 2 + 1]]  # typical clips
    out = []
    for i, path in enumerate(picks):
        y, sr = load_audio(path, sr=16000)
        y = np.resize(y, 3 * sr)  # repeat a shorter clip to 3 s
        out.append(folder / f"clip{i}.wav")
        sf.write(out[-1], y, sr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="corpus folder (SER_DATA_DIR); default: demo corpus")
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="ser-bench-"))
    env = dict(os.environ, SER_RUNS_DIR=str(tmp / "runs"))
    env.pop("SER_DATA_DIR", None)
    if args.data:
        env["SER_DATA_DIR"] = args.data
        os.environ["SER_DATA_DIR"] = args.data
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "streamlit.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0 = time.monotonic()
        while not healthy(url):
            if server.poll() is not None or time.monotonic() - t0 > 120:
                raise SystemExit(f"server did not start; see {tmp / 'streamlit.log'}")
            time.sleep(0.3)
        print(f"corpus: {args.data or 'synthetic demo corpus'}; server {url}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium,
                                         args=["--no-sandbox", "--headless=new"])
            cold = {}
            for name in PAGES:  # cold: first visit, fresh session each
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t = time.monotonic()
                page.goto(f"{url}/{name}", wait_until="commit")
                cold[name] = wait_idle(page, t)
                page.close()
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            wait_idle(page, time.monotonic())
            first, warm = {}, {}
            for seen in (first, warm):  # through the sidebar, one session, twice
                for name in PAGES[1:] + PAGES[:1]:
                    link = page.locator(f'[data-testid="stSidebarNav"] a[href$="/{name}"]')
                    t = time.monotonic()
                    link.first.click()
                    seen[name] = wait_idle(page, t)
            print(f"\n{'page':<15}{'cold s':>8}{'first s':>9}{'warm s':>8}")
            for name in PAGES:
                print(f"{name or 'home':<15}{cold[name]:>8.2f}{first[name]:>9.2f}"
                      f"{warm[name]:>8.2f}")

            # Idle Train page: server CPU while nothing runs.
            page.locator('[data-testid="stSidebarNav"] a[href$="/train"]').first.click()
            wait_idle(page, time.monotonic())
            c0, w0 = cpu_seconds(server.pid), time.monotonic()
            time.sleep(args.idle_seconds)
            share = (cpu_seconds(server.pid) - c0) / (time.monotonic() - w0)
            print(f"\nidle Train page: server CPU {share:.1%} of one core over "
                  f"{args.idle_seconds:.0f} s")

            # Predict: upload a 3-s clip; time to the verdict, first and second clip.
            clips = three_second_clips(tmp, args.data)
            page.locator('[data-testid="stSidebarNav"] a[href$="/predict"]').first.click()
            wait_idle(page, time.monotonic())
            for label, clip in zip(("first clip (models load)", "second clip (loaded)"),
                                   clips):
                t = time.monotonic()
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').first \
                    .set_input_files(str(clip))
                shown = wait_verdict(page, t, clip.name)
                seconds = wait_idle(page, t)
                verdict = page.get_by_role("heading", name="Verdict").count() > 0
                print(f"Predict, 3-s clip, {label}: "
                      + (f"verdict on screen in {shown:.2f} s, whole page (charts, players) "
                         f"idle in {seconds:.2f} s" if verdict else
                         f"no verdict after {seconds:.2f} s: " + " / ".join(
                             page.locator('[data-testid="stAlert"]').all_inner_texts())))
            browser.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()


if __name__ == "__main__":
    main()
