"""The course book as a reader meets it: ``scripts/build_book.py`` (``make book``) builds it into a temporary
folder, a local HTTP server serves it, and headless Chromium opens every page: each chapter's figures load
(no broken image), its math is typeset (no raw ``$...$`` left, no MathJax error) and it has its launch link;
the landing page lists the chapters in course order. A notebook that is not executed is refused by name.

The Chromium part needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and is
skipped, saying so, where they are absent. Screenshots of the landing page and of a chapter go to the
temporary folder and to ``/tmp/book_landing.png`` and ``/tmp/book_chapter.png``, to be looked at.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build_book.py"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPOSITORY = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = ["tinyworld", "measurements", "architectures", "code", "setup"]  # moved out of the README
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)")
PAGE_TIMEOUT = 60
RAW_MATH = re.compile(r"\$[^$\s][^$]*\$|\\\(|\\\[")  # math MathJax left as typed


def run_build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """The book built from the committed notebooks into a temporary folder."""
    out = tmp_path_factory.mktemp("book") / "html"
    result = run_build("--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == f"book built: {out / 'index.html'}"
    return out


@pytest.fixture(scope="module")
def served(book):
    """The base URL of a local HTTP server serving the book (MathJax's fonts need http, not file://)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(book))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_landing_page_lists_every_chapter_in_course_order_and_the_reference(book):
    index = (book / "index.html").read_text()
    linked = re.findall(r'href="notebooks/([0-9]{2}_[^"#]+)\.html"', index)
    assert list(dict.fromkeys(linked)) == [path.stem for path in CHAPTERS]
    assert 'href="glossary.html"' in index and 'href="api.html"' in index
    for page in PAGES:
        assert f'href="{page}.html"' in index, page


def test_the_student_copies_are_linked_and_have_no_solutions(book):
    page = (book / "students.html").read_text()
    linked = re.findall(r'href="(_downloads/[^"]+\.ipynb)"', page)
    with_solutions = [p for p in CHAPTERS if any("solution" in c.get("metadata", {}).get("tags", [])
                                                 for c in nbformat.read(p, as_version=4).cells)]
    assert sorted(Path(link).name for link in linked) == sorted(p.name for p in with_solutions)
    for link in linked:
        copy = nbformat.read(book / link, as_version=4)
        assert not any("solution" in c.get("metadata", {}).get("tags", []) for c in copy.cells), link
        assert any("exercise" in c.get("metadata", {}).get("tags", []) for c in copy.cells), link
    assert 'href="students.html"' in (book / "index.html").read_text()


def test_the_readme_is_a_landing_page_whose_links_lead_somewhere():
    """Under 150 lines; every relative link and image it shows exists in the repository."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150, "the README is a landing page: measurements live in the book"
    targets = re.findall(r"\]\(((?!https?:)[^)#]+)", readme)
    assert {f"book/{page}.md" for page in PAGES} <= set(targets)
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert not missing, f"the README links to files that do not exist: {missing}"


def test_the_measurement_tables_are_the_ones_their_commands_wrote():
    """Every ``timelab eval`` summary that book/measurements.md cites (``benchmarks/results/NAME.md``, which
    the command writes beside its results file) is in the page as written: the same table, line for line,
    and the same command. A table copied by hand, or left behind when the command ran again, fails here."""
    page = (ROOT / "book" / "measurements.md").read_text()
    cited = sorted(set(re.findall(r"benchmarks/results/([\w.]+?)\.md", page)))
    summaries = {name: (ROOT / "benchmarks" / "results" / f"{name}.md").read_text() for name in cited
                 if (ROOT / "benchmarks" / "results" / f"{name}.jsonl").exists()}
    assert {"tinyworld_eval", "tinyworld_bias", "tinyworld_bias_guidance1"} <= set(summaries)
    for name, summary in summaries.items():
        lines = summary.splitlines()
        table = "\n".join(line for line in lines if line.startswith("|"))
        command = next(line for line in lines if line.startswith("Command: "))[len("Command: "):]
        assert table and table in page, f"{name}: the page's table is not the one in benchmarks/results/{name}.md"
        assert command in page, f"{name}: the page does not give the command that wrote it, {command}"


def test_every_chapter_has_its_launch_links_and_no_page_loads_from_the_network(book):
    org_repo = REPOSITORY.removeprefix("https://github.com/")
    for path in CHAPTERS:
        page = (book / "notebooks" / f"{path.stem}.html").read_text()
        assert f"colab.research.google.com/github/{org_repo}/blob/main/notebooks/{path.name}" in page, path.name
        assert f"mybinder.org/v2/gh/{org_repo}/main" in page, path.name
    for page in book.rglob("*.html"):
        remote = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?:[^"]+)"', page.read_text())
        assert not remote, f"{page.relative_to(book)} loads {remote[0]}: the book must open offline"


def test_the_glossary_and_the_api_reference_are_there(book):
    glossary = (book / "glossary.html").read_text()
    for term in ("efficacy", "generality", "specificity", "attributes kept", "oracle", "leakage", "Delta",
                 "lambda", "preservation", "TinyWorld"):
        assert re.search(rf'<dt id="term-{re.escape(term.replace(" ", "-"))}"', glossary), term
    api = (book / "api.html").read_text()
    for name in ("timelab.time_edit", "timelab.load_pipeline", "timelab.generation.generate",
                 "timelab.AttentionRecorder", "timelab.evaluation.evaluate"):
        assert f'id="{name}"' in api, name


def test_a_notebook_that_is_not_executed_is_refused_by_name(tmp_path):
    chapters = tmp_path / "notebooks"
    chapters.mkdir()
    shutil.copy(CHAPTERS[0], chapters / CHAPTERS[0].name)
    draft = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 · A draft"),
                                            nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(draft, chapters / "99_draft.ipynb")
    out = tmp_path / "book"
    result = run_build("--notebooks", str(chapters), "--out", str(out))
    assert result.returncode == 1
    assert "99_draft.ipynb: 1 of 1 code cells never ran" in result.stderr and "make notebooks" in result.stderr
    assert CHAPTERS[0].name not in result.stderr, "only the unexecuted notebook is named"
    assert not out.exists() and list(tmp_path.glob(".book-*")) == [], "nothing is written when refused"


@needs_chromium
@pytest.mark.parametrize("page", ["index", "glossary", *PAGES, *(f"notebooks/{p.stem}" for p in CHAPTERS)])
def test_each_page_shows_its_figures_and_typeset_math_in_chromium(page, served, browser, book, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served}/{page}.html")
    WebDriverWait(browser, PAGE_TIMEOUT).until(lambda d: d.execute_script("return document.readyState") == "complete")
    browser.set_script_timeout(PAGE_TIMEOUT)
    browser.execute_async_script(  # MathJax typesets after the page loads; its promise settles when done
        "const done = arguments[arguments.length - 1];"
        "(window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve()).then(() => done(true));")
    images = browser.execute_script(
        "return Array.from(document.querySelectorAll('article img'))"
        ".map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);")
    assert all(loaded for _, loaded in images), f"broken images on {page}: {[s for s, ok in images if not ok]}"
    source = (book / f"{page}.html").read_text()
    prose = browser.execute_script(
        "const a = document.querySelector('article').cloneNode(true);"
        "a.querySelectorAll('pre, code, mjx-container, .cell_output').forEach(e => e.remove());"
        "return a.textContent;")
    assert not RAW_MATH.findall(prose), f"math left untypeset on {page}: {RAW_MATH.findall(prose)[:3]}"
    typeset = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    errors = browser.execute_script("return document.querySelectorAll('mjx-merror').length")
    written = source.count('class="math')
    assert errors == 0, f"{errors} formulas on {page} failed to typeset"
    assert typeset >= min(written, 1), f"{page} has math but MathJax typeset none of it"
    if page.startswith("notebooks/"):
        assert images, f"{page} shows no figure"
        if page.startswith("notebooks/00_"):
            save_screenshot(browser, tmp_path / "chapter.png", Path("/tmp/book_chapter.png"),
                            "(//section[@id='from-noise-to-image-step-by-step']//img)[1]")
    if page == "index":
        save_screenshot(browser, tmp_path / "landing.png", Path("/tmp/book_landing.png"))


def save_screenshot(browser, path: Path, copy: Path, xpath: str | None = None) -> None:
    """A screenshot of the page (scrolled to ``xpath`` when given), kept in ``path`` and ``copy``."""
    from selenium.webdriver.common.by import By

    if xpath:
        found = browser.find_elements(By.XPATH, xpath)
        if found:
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", found[0])
    assert browser.save_screenshot(str(path))
    shutil.copy(path, copy)
