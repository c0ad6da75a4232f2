"""The archive's web page (``GET /``) in headless Chromium, against the real ``sbert-siamese serve``.

Two servers (``conftest.Server``: ``python -m sbert_siamese serve`` in a subprocess) over archives of the
tiny BERT: an open one and one started with an API key. One browser for the module. The module skips when
Debian's chromium / chromium-driver are not installed (``make test`` installs them).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(
        "needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from .conftest import QUESTIONS, Server, make_archive  # noqa: E402

API_KEY = "s3cret-page-key"
KEY_ENV = {"QA_PAGE_KEY": API_KEY}
WAIT_S = 30  # seconds for one Check / Add on a busy 2-core machine (they take milliseconds)


# ---------------------------------------------------------------------------------------- servers
@pytest.fixture(scope="module")
def servers(model_dir, tmp_path_factory, request):
    """(open server, server started with an API key), each over its own archive of ``QUESTIONS`` (ids 0..11)
    that this module writes to. The open one decides at cosine 0.99: with the tiny BERT only the same text is
    a duplicate (the others score 0.88-0.97); the keyed one has no threshold, so its decisions are null.
    Each takes seconds to start (torch, the model): they start side by side, and the browser meanwhile."""
    root = tmp_path_factory.mktemp("page")
    open_archive = make_archive(root / "open" / "qa", model_dir, threshold=0.99)
    keyed_archive = make_archive(root / "keyed" / "qa", model_dir)
    started = []
    try:
        with ThreadPoolExecutor(2) as pool:
            starting = [
                pool.submit(Server, open_archive),
                pool.submit(Server, keyed_archive, "--api-key-env", "QA_PAGE_KEY", env=KEY_ENV),
            ]
            try:
                request.getfixturevalue("browser")
            finally:
                started += [future.result() for future in starting if future.exception() is None]
        for future in starting:
            if future.exception() is not None:
                raise future.exception()
        yield started
    finally:
        for server in started:
            server.stop()


def size(server) -> int:
    status, body = server.request("GET", "/health")
    assert status == 200, body
    return body["questions"]


# ---------------------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    # Both paths given: Selenium Manager (which would try the network) is not consulted.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


class Page:
    """The page of one server. Each Check / Add bumps ``body[data-completed]`` when it has finished (the
    results drawn, the header's count refreshed): the waits key on that, not on sleeps."""

    def __init__(self, driver, server: Server):
        self.driver = driver
        self.wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.02)
        driver.get(f"http://127.0.0.1:{server.port}/")
        self.wait.until(lambda d: self.text("count").isdigit())

    def el(self, element_id: str):
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.el(element_id).text

    def enabled(self, element_id: str) -> bool:
        return self.el(element_id).is_enabled()

    def _completed(self) -> int:
        return int(self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-completed"))

    def _step(self, action) -> None:
        before = self._completed()
        action()
        try:
            self.wait.until(lambda d: self._completed() > before)
        except TimeoutException:
            pytest.fail(f"the page did not finish in {WAIT_S} s; #status: {self.text('status')!r}")

    def check(self, question: str, *, enter: bool = False, top_k: int | None = None) -> None:
        box = self.el("question")
        box.clear()
        box.send_keys(question)
        if top_k is not None:
            self.el("top-k").clear()
            self.el("top-k").send_keys(str(top_k))
        self._step(lambda: box.send_keys(Keys.ENTER) if enter else self.el("check").click())

    def add(self) -> int:
        """Clicks Add; the new id from "Added as #ID"."""
        self._step(self.el("add").click)
        status = self.text("status")
        assert status.startswith("Added as #"), status
        return int(status.removeprefix("Added as #"))

    def rows(self) -> list[dict]:
        rows = []
        for tr in self.el("results").find_elements(By.TAG_NAME, "tr"):
            rank, id_, text, score, decision, probability = (
                td.get_attribute("textContent") for td in tr.find_elements(By.TAG_NAME, "td")
            )
            rows.append(
                dict(rank=int(rank), id=int(id_.removeprefix("#")), text=text, score=score, decision=decision)
            )
        return rows


# ---------------------------------------------------------------------------------------- tests
def test_check_shows_the_archived_question_first_and_add_grows_the_archive(servers, browser):
    server, _ = servers
    page = Page(browser, server)
    before = size(server)
    assert int(page.text("count")) == before >= len(QUESTIONS)
    assert not page.enabled("add")  # nothing checked yet

    question = QUESTIONS[7]
    page.check(question)
    rows = page.rows()
    assert page.text("status") == ""
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]  # top_k defaults to 5
    assert (rows[0]["id"], rows[0]["text"], rows[0]["score"]) == (7, question, "1.000")
    assert [r["decision"] for r in rows] == ["duplicate"] + 4 * ["different"]  # threshold 0.99
    assert page.text("summary") == "Likely duplicate of #7"

    # Exactly the server's answer, scores to 3 decimals, decisions in words.
    status, body = server.request("POST", "/duplicates", {"texts": [question], "top_k": 5})
    assert status == 200, body
    expected = body["results"][0]["matches"]
    assert [(r["id"], r["text"]) for r in rows] == [(m["id"], m["text"]) for m in expected]
    assert [r["score"] for r in rows] == [f"{m['score']:.3f}" for m in expected]
    assert [r["decision"] for r in rows] == ["duplicate" if m["duplicate"] else "different" for m in expected]

    assert page.enabled("add")
    new_id = page.add()
    assert new_id not in range(len(QUESTIONS))
    assert int(page.text("count")) == size(server) == before + 1
    assert not page.enabled("add")  # one add per check

    page.check(question, enter=True, top_k=3)  # Enter submits too
    rows = page.rows()
    assert len(rows) == 3
    assert {rows[0]["id"], rows[1]["id"]} == {7, new_id}  # the same text twice: both at 1.000
    assert rows[0]["score"] == rows[1]["score"] == "1.000"
    assert rows[1]["text"] == question
    assert [r["decision"] for r in rows] == ["duplicate", "duplicate", "different"]


def test_an_unrelated_question_is_no_duplicate(servers, browser):
    server, _ = servers
    page = Page(browser, server)
    question = "a dog runs on the beach in the rain"
    page.check(question, top_k=2)
    rows = page.rows()
    _, body = server.request("POST", "/duplicates", {"texts": [question], "top_k": 2})
    matches = body["results"][0]["matches"]
    assert [(r["id"], r["score"]) for r in rows] == [(m["id"], f"{m['score']:.3f}") for m in matches]
    assert float(rows[0]["score"]) < 0.99
    assert [r["decision"] for r in rows] == ["different", "different"]
    assert page.text("summary") == "No duplicate found"


def test_an_empty_question_shows_the_servers_error(servers, browser):
    server, _ = servers
    page = Page(browser, server)
    status, body = server.request("POST", "/duplicates", {"texts": [" "], "top_k": 5})
    assert (status, body["error"]["field"]) == (422, "texts[0]")

    page.check(" ")
    alert = page.el("status")
    assert alert.get_attribute("role") == "alert" and alert.is_displayed()
    assert alert.text == f"texts[0]: {body['error']['message']}"
    assert page.rows() == [] and page.text("summary") == ""
    assert not page.enabled("add")


def test_server_text_is_shown_as_text_never_as_markup(servers, browser):
    server, _ = servers
    page = Page(browser, server)
    question = "is <b>x</b> bold? <img src=x onerror=window.pwned=1><script>window.pwned=2</script>"
    page.check(question)
    new_id = page.add()
    page.check(question)
    rows = page.rows()
    assert {"id": new_id, "text": question} in [{"id": r["id"], "text": r["text"]} for r in rows]
    results = page.el("results")
    for tag in ("b", "img", "script"):
        assert results.find_elements(By.TAG_NAME, tag) == []
    assert browser.execute_script("return window.pwned === undefined")


def test_a_server_with_an_api_key(servers, browser):
    _, server = servers
    page = Page(browser, server)  # the page and /health need no key: the count shows
    assert int(page.text("count")) == len(QUESTIONS)

    page.check(QUESTIONS[0])
    assert (
        page.text("status")
        == "This server needs an API key: enter it under \u201cAPI key\u201d and try again."
    )
    assert page.rows() == [] and not page.enabled("add")
    assert page.el("api-key").is_displayed()  # the key box opened itself

    page.el("api-key").send_keys("wrong-key")
    page.check(QUESTIONS[0])
    assert page.text("status") == "The API key was not accepted: check it under \u201cAPI key\u201d."

    page.el("api-key").clear()
    page.el("api-key").send_keys(API_KEY)
    page.check(QUESTIONS[0])
    assert page.text("status") == ""
    rows = page.rows()
    assert (rows[0]["id"], rows[0]["text"], rows[0]["score"]) == (0, QUESTIONS[0], "1.000")
    assert [r["decision"] for r in rows] == 5 * ["\u2014"]  # no threshold: no decision
    assert page.text("summary") == "Closest: #0 (score 1.000); no duplicate decision available"
    assert "no-probability" in page.el("matches").get_attribute("class")  # no head: no probability column
    new_id = page.add()
    assert int(page.text("count")) == size(server) == len(QUESTIONS) + 1
    assert server.request("GET", f"/questions/{new_id}", headers={"Authorization": f"Bearer {API_KEY}"}) == (
        200,
        {"id": new_id, "text": QUESTIONS[0], "metadata": None},
    )

    # Kept in this tab's sessionStorage only (never localStorage), so a reload still has it.
    assert browser.execute_script("return localStorage.length") == 0
    assert API_KEY in browser.execute_script("return Object.values(sessionStorage)")
    page = Page(browser, server)
    assert page.el("api-key").get_attribute("value") == API_KEY
