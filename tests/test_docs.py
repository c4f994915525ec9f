"""The course site (docs/): a page for every notebook and a section for every command, a README that fits on two
screens, the site built in smoke mode with warnings as errors, and notebook 01's page as a browser shows it."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHROMIUM = Path("/usr/bin/chromium")
README_WORDS = 1000
FIRST_SCREEN_LINES = 30  # the README's set-up commands must come before this line


def extension(name: str):
    """A module of docs/_ext (they need the docs extra: pip install -e '.[docs]')."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / f"{name}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def toctree_entries(page: Path) -> list[str]:
    """The documents a page's MyST toctrees list."""
    blocks = re.findall(r"```\{toctree\}\n(.*?)```", page.read_text(), re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip() and
            not line.startswith(":")]


def cli_commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the parser, as words: what `--help` lists under its sub-commands, recursively."""
    found = [words]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += cli_commands(sub, (*words, name))
    return found


# -- the sources: fast, no build ------------------------------------------------------------------------------------

@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_page_in_the_course(notebook):
    page = DOCS / "notebooks" / f"{notebook.stem}.nblink"
    assert page.is_file(), f"{notebook.name} has no page: add {page.relative_to(ROOT)} (docs/site.md, 'Add a notebook')"
    assert extension("nbpages").notebook_path(json.loads(page.read_text())) == notebook
    assert f"notebooks/{notebook.stem}" in toctree_entries(DOCS / "index.md"), \
        f"list notebooks/{notebook.stem} in the Course toctree of docs/index.md"


def test_every_page_names_a_notebook_and_a_strip_for_each_slider():
    nbpages = extension("nbpages")
    pages = sorted((DOCS / "notebooks").glob("*.nblink"))
    assert len(pages) == len(NOTEBOOKS)
    strips = 0
    for page in pages:
        nb = nbpages.read(page.read_text())  # raises for a missing notebook or a slider without its strip
        added = [cell for cell in nb.cells if cell.get("id", "").startswith(nbpages.SITE_CELL)]
        link = json.loads(page.read_text())
        assert len(added) == sum(1 + len(controls) for controls in link.get("strips", {}).values()), page.name
        strips += len(link.get("strips", {}))
    assert strips >= 4  # the sliders of notebooks 01, 02, 03 and 05


def test_a_slider_without_its_strip_stops_the_page(tmp_path):
    nbpages = extension("nbpages")
    link = {"path": "notebooks/01_expectile_regression.ipynb"}
    with pytest.raises(ValueError, match=r"01_expectile_regression.ipynb: .*no strips for \['w'\]"):
        nbpages.read(json.dumps(link))
    with pytest.raises(ValueError, match=r"no slider \['v'\]"):
        nbpages.read(json.dumps({**link, "strips": {"w": {"tau": [0.5]}, "v": {"tau": [0.5]}}}))
    unnamed = {"cells": [{"cell_type": "code", "id": "a", "metadata": {}, "outputs": [], "execution_count": None,
                          "source": "display(interactive_figure(plots.f, tau=tau_slider()))"}],
               "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "unnamed.ipynb").write_text(json.dumps(unnamed))
    with pytest.raises(ValueError, match=r"unnamed.ipynb: 1 interactive_figure\(...\) not assigned to a variable"):
        nbpages.read(json.dumps({"path": str(tmp_path / "unnamed.ipynb")}))


def test_every_command_has_a_section_in_the_cli_reference():
    from iqlkit.cli import parser

    cli_reference = extension("cli_reference")
    expected = cli_commands(parser())
    assert {("controller", "train"), ("controller", "check"), ("assign", "release"),
            ("assign", "autograde")} <= set(expected)
    assert cli_reference.commands(parser()) == expected
    ids = [cli_reference.section_id(words) for words in expected]
    assert len(set(ids)) == len(ids)
    assert "```{cli-reference} iqlkit.cli:parser" in (DOCS / "cli.md").read_text()


def test_every_subpackage_has_an_api_page():
    import iqlkit

    packages = sorted(p.name for p in Path(iqlkit.__path__[0]).iterdir() if (p / "__init__.py").is_file())
    pages = " ".join(page.read_text() for page in (DOCS / "api").glob("*.md"))
    missing = [p for p in packages if f"{{package-reference}} iqlkit.{p}" not in pages]
    assert not missing, f"no API page for iqlkit.{missing}: add docs/api/<name>.md with a package-reference"


def test_the_readme_fits_on_two_screens_and_links_to_pages_that_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.split()) <= README_WORDS, f"README.md has {len(text.split())} words: keep it to {README_WORDS}"
    first_screen = "\n".join(text.splitlines()[:FIRST_SCREEN_LINES])
    for command in ("pip install -r requirements.txt", "nbstripout --install", "pytest"):
        assert command in first_screen, f"README.md: {command!r} belongs on its first screen"
    for command in ("sphinx-build -W -b html docs docs/_build/html", "python -m http.server -d docs/_build/html"):
        assert command in text, "README.md: give the command that builds and the one that serves the site"
    links = re.findall(r"\]\(([^)#\s]+)", text)
    local = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in local)
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


# -- the build: the site in smoke mode, warnings as errors ----------------------------------------------------------

def offline_prefix() -> list[str]:
    """A command prefix that runs what follows in a network namespace with loopback only (root with unshare and ip);
    nothing where that is not possible."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return []
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return []
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def user_files() -> set[str]:
    """What git sees in notebooks/ and docs/ (modified and untracked files), docs/_build aside."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "notebooks", "docs"],
                            cwd=ROOT, capture_output=True, text=True)
    return set(status.stdout.splitlines()) if status.returncode == 0 else set()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built as the README says (smoke mode, -W), offline where possible, into a temporary folder, from a
    fresh environment (-E: every page is read again; notebooks come from the cache in docs/_build where they have
    not changed), with a home folder of its own."""
    pytest.importorskip("sphinx")
    out = tmp_path_factory.mktemp("site")
    home = out / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "IQLKIT_SMOKE": "1"}
    before = user_files()
    build = subprocess.run([*offline_prefix(), sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-b",
                            "html", "-d", str(out / "doctrees"), "docs", str(out / "html")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, f"the site did not build:\n{build.stdout[-3000:]}\n{build.stderr[-6000:]}"
    assert not list(home.iterdir()), f"the build wrote into HOME: {sorted(p.name for p in home.iterdir())}"
    assert user_files() == before, f"the build changed files outside docs/_build: {user_files() ^ before}"
    return out / "html"


@pytest.mark.long
def test_the_site_builds_with_every_notebook_and_command(site):
    for notebook in NOTEBOOKS:
        page = (site / "notebooks" / f"{notebook.stem}.html").read_text()
        assert "<img" in page, f"the page of {notebook.name} shows no figure"
    from iqlkit.cli import parser

    cli = (site / "cli.html").read_text()
    missing = [" ".join(words) for words in cli_commands(parser())
               if f'id="{extension("cli_reference").section_id(words)}"' not in cli]
    assert not missing, f"no section in the CLI reference for {missing}"
    for package in ("theory", "envs", "engine", "experiments", "plots", "assign"):
        assert f'id="module-iqlkit.{package}.' in (site / "api" / f"{package}.html").read_text()


def test_a_failing_notebook_fails_the_build_and_names_the_cell(tmp_path):
    pytest.importorskip("sphinx")
    notebook = {"cells": [{"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# Broken\n"},
                          {"cell_type": "code", "id": "fine", "metadata": {}, "source": "x = 1", "outputs": [],
                           "execution_count": None},
                          {"cell_type": "code", "id": "broken", "metadata": {}, "outputs": [],
                           "execution_count": None, "source": "raise RuntimeError('broken on purpose')"}],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "broken.ipynb").write_text(json.dumps(notebook))
    source = tmp_path / "src"
    source.mkdir()
    (source / "broken.nblink").write_text(json.dumps({"path": str(tmp_path / "broken.ipynb")}))
    (source / "index.md").write_text("# Broken site\n\n```{toctree}\nbroken\n```\n")
    crash_logs = DOCS / "_build" / ".run" / "sphinx"  # where conf.py lets Sphinx write its traceback
    before = set(crash_logs.glob("*")) if crash_logs.is_dir() else set()
    build = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-b", "html", "-c", "docs", "-D",
                            f"nb_execution_cache_path={tmp_path / 'cache'}", str(source), str(tmp_path / "html")],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    for log in set(crash_logs.glob("*")) - before:
        log.unlink()  # this test's own
    assert build.returncode != 0
    assert (f"{tmp_path / 'broken.ipynb'} failed while the site executed it, in cell 3 (id broken): RuntimeError: "
            f"broken on purpose") in build.stderr


# -- the page in a browser ------------------------------------------------------------------------------------------

def first_match(screen: np.ndarray, figure: np.ndarray) -> tuple[int, int] | None:
    """Where `figure` appears pixel for pixel (within 2 levels) in `screen` (both RGB uint8), or None."""
    height, width = figure.shape[:2]
    ink = (figure < 250).any(axis=-1)
    row = int(np.argmax(ink.sum(axis=1)))
    col = int(np.flatnonzero(ink[row])[0])
    probe = figure[row, col:col + 24].astype(int)
    windows = np.lib.stride_tricks.sliding_window_view
    for y in range(row, screen.shape[0] - height + row + 1):
        strip = windows(screen[y].astype(int), (len(probe), 3))[:, 0]
        for x in np.flatnonzero(np.abs(strip - probe).max(axis=(1, 2)) <= 2):
            top, left = y - row, int(x) - col
            if left >= 0 and left + width <= screen.shape[1] and np.abs(
                    screen[top:top + height, left:left + width].astype(int) - figure).mean() < 1:
                return top, left
    return None


def rgb(path: Path) -> np.ndarray:
    """A PNG's pixels as RGB uint8."""
    import matplotlib.image as mpimg

    pixels = mpimg.imread(path)
    return (pixels[..., :3] * 255).round().astype(np.uint8) if pixels.dtype != np.uint8 else pixels[..., :3]


def screenshot(url: str, out: Path, height: int = 4000) -> None:
    """Headless Chromium's screenshot of `url`, 1280 pixels wide, in a profile of its own that is removed after."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
                        f"--window-size=1280,{height}", f"--screenshot={out}", url],
                       capture_output=True, timeout=120, check=True)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (Debian: apt-get install chromium)")
def test_notebook_01_page_shows_its_figures_in_a_browser(site, tmp_path):
    page = site / "notebooks" / "01_expectile_regression.html"
    images = re.findall(r'<img[^>]*src="([^"]+\.png)"', page.read_text())
    assert len(images) >= 5  # its figures and the strip of its slider
    for src in images:
        assert (page.parent / src).is_file(), f"the page's image {src} is missing"
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "-d", str(site), "--bind", "127.0.0.1", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # as the README serves it
    try:
        port = re.search(r"port (\d+)", server.stdout.readline()).group(1)
        shot = tmp_path / "notebook01.png"
        screenshot(f"http://127.0.0.1:{port}/notebooks/01_expectile_regression.html", shot)
    finally:
        server.terminate()
        server.wait(timeout=30)
    screen, figure = rgb(shot), rgb(page.parent / images[0])
    assert (screen < 250).any(axis=-1).mean() > 0.05, "the screenshot is (nearly) blank"
    assert first_match(screen, figure) is not None, f"the page's first figure ({images[0]}) is not on the screen"
