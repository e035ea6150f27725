"""The reviewer web page end to end: a real gateway on podman, Debian's Chromium driven by Playwright.

Researcher alice runs a task that writes a frequency table with a small cell (`counts.csv`) and a text
summary (`summary.txt`). Output checker carol logs in with her bearer token, opens the request from the
queue (by keyboard), reads the CSV preview and the checks, rejects the table and approves the summary.
Alice then logs in with a personal access token and can download the summary, and nothing else.

Needs scripts/setup-browser.sh (Debian `chromium` and the `playwright` package; Playwright never downloads
a browser here). Set UPDATE_SCREENSHOTS=1 to refresh docs/airlock-review.png from carol's review page.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import BIN, REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT = REPO / "docs" / "airlock-review.png"

COUNTS = "region,sex,n\nNorth,F,12\nNorth,M,3\nSouth,F,25\nSouth,M,18\n"
SUMMARY = "Counts of participants by region and sex.\nSource: cohort extract v2; see counts.csv.\n"
REJECT_REASON = "North/M is a cell of 3: suppress or merge cells below 10, then submit again."

# The small-cell check (gateway/domain/disclosure.py) is being wired into the egress checks in parallel.
# While it is not, the request carries no flagged cell and the test checks what the page shows for the
# checks that did run. Once it is wired, set this to True: the highlighted cell then becomes mandatory.
EXPECT_SMALL_CELL_FLAG = True


def _sync_playwright():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-browser.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: run scripts/setup-browser.sh")
    return sync_playwright


def _submit_and_wait_paused(gw, token: str) -> str:
    api = gw.base_url + "/ga4gh/tes/v1"
    headers = {"Authorization": f"Bearer {token}"}
    script = (
        f"cat > /out/counts.csv <<'EOF'\n{COUNTS}EOF\n"
        f"cat > /out/summary.txt <<'EOF'\n{SUMMARY}EOF\n"
    )
    body = {
        "name": "review-page-e2e",
        "executors": [{"image": "alpine", "command": ["sh", "-c", script]}],
        "outputs": [
            {"path": "/out/counts.csv", "url": gw.released_url("p1", "counts.csv")},
            {"path": "/out/summary.txt", "url": gw.released_url("p1", "summary.txt")},
        ],
    }
    response = httpx.post(api + "/tasks", json=body, headers=headers)
    assert response.status_code == 200, response.text
    task_id = response.json()["id"]
    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/tasks/{task_id}", headers=headers).json()["state"]
        if state == "PAUSED":
            return str(task_id)
        assert state in ("QUEUED", "INITIALIZING", "RUNNING"), f"task ended {state} instead of waiting for review"
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} stayed {state}")


def _personal_access_token(gw, user: str, project: str) -> str:
    args = [str(BIN), "token", "--user", user, "--project", project, "--basic", "--with-user", "--lifetime", "3600"]
    return subprocess.run(args, env=gw.env, check=True, capture_output=True, text=True).stdout.strip()


def _watch_console(page, errors: list[str]) -> None:
    page.on("console", lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))


def _login(page, base_url: str, credential: str) -> None:
    page.goto(base_url + "/airlock/")
    assert re.search(r"/airlock/login\?next=/airlock/$", page.url), page.url
    page.get_by_label("Bearer token, or personal access token").fill(credential)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/airlock/")


def test_checker_reviews_in_the_browser_and_researcher_downloads_the_release(gateway_factory, tmp_path):
    sync_playwright = _sync_playwright()
    from playwright.sync_api import expect

    gw = gateway_factory(egress_review="human")
    gw.start()
    alice_bearer = gw.token("alice", "p1")
    carol_token = gw.token("carol", "p1", "output_checker")
    task_id = _submit_and_wait_paused(gw, alice_bearer)

    # The request as the API shows it: its id, the file ids, and whether the checks flagged a cell.
    listed = httpx.get(gw.base_url + "/airlock/v1/requests", headers={"Authorization": f"Bearer {carol_token}"})
    assert listed.status_code == 200, listed.text
    (request_doc,) = [r for r in listed.json()["requests"] if r["task_id"] == task_id]
    request_id = request_doc["id"]
    files = {f["path"].rsplit("/", 1)[-1]: f for f in request_doc["files"]}
    assert set(files) == {"counts.csv", "summary.txt"}
    counts_id, summary_id = files["counts.csv"]["file_id"], files["summary.txt"]["file_id"]
    flagged_by_checks = files["counts.csv"]["flagged_cells"] > 0
    assert files["summary.txt"]["checks_passed"], files["summary.txt"]["checks"]

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # ------------------------------------------------------------ carol, output checker
            carol = browser.new_context(viewport={"width": 1000, "height": 900})
            page = carol.new_page()
            _watch_console(page, errors)
            _login(page, gw.base_url, carol_token)
            expect(page.get_by_role("heading", name="Egress requests")).to_be_visible()
            expect(page.get_by_text("Signed in as carol")).to_be_visible()
            review_link = page.get_by_role("link", name=f"Review {request_id}")
            expect(review_link).to_be_visible()

            # Keyboard only: the skip link comes first, then Tab on to the request's link and press Enter.
            page.keyboard.press("Tab")
            expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
            for _ in range(15):
                page.keyboard.press("Tab")
                if review_link.evaluate("link => link === document.activeElement"):
                    break
            expect(review_link).to_be_focused()
            page.keyboard.press("Enter")
            page.wait_for_url(f"{gw.base_url}/airlock/requests/{request_id}")
            expect(page.get_by_role("heading", name=f"Egress request {request_id}")).to_be_visible()

            # The facts of each file, as stored.
            counts = page.locator(f"#file-{counts_id}")
            expect(counts.get_by_role("heading", name=re.compile(r"^counts\.csv PENDING"))).to_be_visible()
            expect(counts).to_contain_text(files["counts.csv"]["sha256"])
            expect(counts).to_contain_text(f"{len(COUNTS)} bytes")
            expect(counts).to_contain_text(files["counts.csv"]["media_type"])

            # The CSV preview is a real table with column headers; the cell of 3 is in it.
            table = page.locator(f"#preview-{counts_id}")
            expect(table.locator("thead th")).to_have_text(["Row", "region", "sex", "n"])
            expect(table.locator("tbody tr")).to_have_count(4)
            expect(table.locator("tbody tr").nth(1).locator("td")).to_have_text(["North", "M", re.compile(r"^3\b")])

            # Every automated check is listed with its rule id and its outcome, as the API reports it.
            check_rows = counts.locator("table.checks tbody tr")
            expect(check_rows).to_have_count(len(files["counts.csv"]["checks"]))
            for row, check in zip(check_rows.all(), files["counts.csv"]["checks"], strict=True):
                expect(row.locator("th")).to_have_text(check["rule_id"])
                expect(row.locator("td").first).to_have_text("✓ pass" if check["passed"] else "✗ FAIL")

            flagged = table.locator("td.flagged")
            if EXPECT_SMALL_CELL_FLAG or flagged_by_checks:
                # A flagged cell is marked up (<mark>) and labelled in words, not by colour alone.
                expect(flagged).to_have_count(files["counts.csv"]["flagged_cells"])
                expect(flagged.locator("mark")).to_have_text(["3"])
                expect(flagged).to_contain_text("flagged: table.small_cells")
                expect(counts.locator("table.checks tbody tr.fail")).not_to_have_count(0)
                expect(counts.get_by_label(re.compile(r"^Override failed checks"))).to_be_visible()
            else:
                # Nothing flagged: the page must not invent highlights, and it says so in the caption.
                expect(flagged).to_have_count(0)
                expect(page.locator(f"#preview-{counts_id}-note")).to_contain_text("No cell was flagged by the checks.")

            # The text file's preview.
            expect(page.locator(f"#preview-{summary_id}")).to_have_text(SUMMARY.rstrip("\n"))

            # The page down to the end of the table's section: header, facts, checks, preview, decision forms.
            box = counts.bounding_box()
            assert box is not None
            shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / SCREENSHOT.name
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot), full_page=True,
                            clip={"x": 0, "y": 0, "width": 1000, "height": box["y"] + box["height"] + 16})

            # Reject counts.csv by keyboard: write the reason, Tab to the button, press Enter.
            counts.get_by_label("Reason for rejecting").fill(REJECT_REASON)
            page.keyboard.press("Tab")
            reject = counts.get_by_role("button", name="Reject counts.csv")
            expect(reject).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.get_by_role("status")).to_have_text("Recorded: you rejected counts.csv.")
            expect(page.locator(f"#file-{counts_id} h2")).to_contain_text("REJECTED")
            expect(page.locator(f"#file-{counts_id} table.decisions")).to_contain_text(REJECT_REASON)
            expect(page.locator("#request-state")).to_have_text("AWAITING_REVIEW")

            summary = page.locator(f"#file-{summary_id}")
            expect(summary.locator('input[name="override"]')).to_have_count(0)
            summary.get_by_label("Reason for approving").fill("Descriptive text, no figures.")
            summary.get_by_role("button", name="Approve summary.txt").click()
            expect(page.get_by_role("status")).to_have_text("Recorded: you approved summary.txt.")
            expect(page.locator("#request-state")).to_have_text("PARTIALLY_RELEASED")
            expect(page.locator("#closed-note")).to_contain_text("This request is closed (PARTIALLY_RELEASED)")
            expect(page.locator("form button.approve, form button.reject")).to_have_count(0)
            carol.close()

            released = gw.data_dir / "store" / "released" / "p1"
            assert (released / "summary.txt").read_text() == SUMMARY
            assert not (released / "counts.csv").exists()

            # ------------------------------------------------------------ alice, researcher (new context)
            # JavaScript off: the pages are plain HTML forms and links.
            alice = browser.new_context(java_script_enabled=False)
            page = alice.new_page()
            _watch_console(page, errors)
            _login(page, gw.base_url, _personal_access_token(gw, "alice", "p1"))
            expect(page.get_by_text("Signed in as alice")).to_be_visible()
            expect(page.get_by_text("No egress requests in state AWAITING_REVIEW.")).to_be_visible()
            page.get_by_label("Show requests in state").select_option("ANY")
            page.get_by_role("button", name="Filter").click()
            page.get_by_role("link", name=f"View {request_id}").click()
            page.wait_for_url(f"{gw.base_url}/airlock/requests/{request_id}")
            expect(page.locator("#request-state")).to_have_text("PARTIALLY_RELEASED")
            # The researcher sees states and reasons, never quarantined bytes or decision forms.
            expect(page.locator("table.preview, pre.text-preview")).to_have_count(0)
            expect(page.locator("form textarea")).to_have_count(0)
            expect(page.get_by_role("link", name=re.compile("quarantined"))).to_have_count(0)
            expect(page.locator(f"#file-{counts_id}")).to_contain_text(REJECT_REASON)
            expect(page.locator(f"#file-{counts_id}")).to_contain_text("counts.csv was not released.")
            expect(page.get_by_role("link", name="Download counts.csv")).to_have_count(0)

            with page.expect_download() as download_info:
                page.get_by_role("link", name="Download summary.txt").click()
            download = download_info.value
            assert download.suggested_filename == "summary.txt"
            assert Path(download.path()).read_text() == SUMMARY

            base = f"{gw.base_url}/airlock/requests/{request_id}/files"
            refused = alice.request.get(f"{base}/{counts_id}/download")
            assert refused.status == 404
            assert "has not been released" in refused.text()
            assert alice.request.get(f"{base}/{counts_id}/quarantined").status == 403
            alice.close()
        finally:
            browser.close()

    assert errors == [], errors
