"""Sphinx configuration of the course site: the notebooks as pages (executed in smoke mode, cached), the guides, the
command-line and API references. Build: `sphinx-build -W -b html docs docs/_build/html` (docs/site.md says why these
tools and what the build does)."""
import os
import shutil
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
BUILD = DOCS / "_build"
sys.path.insert(0, str(DOCS / "_ext"))

# The notebooks run in smoke mode (IQLKIT_SMOKE=1: seconds each). IQLKIT_SMOKE=0 builds the full course (hours);
# each mode has its own cache, which MyST-NB keys by the notebook's code, so a rebuild re-runs changed notebooks only.
MODE = "smoke" if os.environ.setdefault("IQLKIT_SMOKE", "1") == "1" else "full"

# Everything the build and its notebook kernels write stays under docs/_build: datasets (never the user's
# ~/.minari), temporary folders, IPython's profile, Jupyter's connection files and matplotlib's font cache. The
# kernels of each build get their own temporary and datasets folders, removed when it ends.
RUN = BUILD / ".run"
RUN.mkdir(parents=True, exist_ok=True)
SCRATCH = Path(tempfile.mkdtemp(prefix="build-", dir=RUN))
for variable, folder in {"TMPDIR": SCRATCH / "tmp", "MINARI_DATASETS_PATH": SCRATCH / "minari",
                         "IPYTHONDIR": RUN / "ipython", "JUPYTER_RUNTIME_DIR": RUN / "jupyter-runtime",
                         "MPLCONFIGDIR": RUN / "matplotlib"}.items():
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[variable] = str(folder)
os.environ.pop("MPLBACKEND", None)  # the kernels draw with IPython's inline backend (the test suite sets Agg)
tempfile.tempdir = str(RUN / "sphinx")  # this process's own: MyST-NB's working folders, Sphinx's crash log
Path(tempfile.tempdir).mkdir(exist_ok=True)

project = "iqlkit"
author = "the iqlkit authors"
copyright = "the iqlkit authors"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.viewcode", "sphinx-mathjax-offline", "nbpages",
              "cli_reference", "api_reference"]
exclude_patterns = ["_build", "_ext", "_tables", "**.ipynb_checkpoints"]
root_doc = "index"
smartquotes = False  # `--out` stays two hyphens, in prose as in code

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

nb_custom_formats = {".nblink": "nbpages.read"}
nb_execution_mode = "cache"
nb_execution_cache_path = str(BUILD / ".jupyter_cache" / MODE)
nb_execution_raise_on_error = True  # a failing notebook fails the build, naming the notebook and the cell
nb_execution_show_tb = True
nb_execution_timeout = 600  # seconds per cell
nb_execution_in_temp = True  # the kernels' working folder is a temporary one (under TMPDIR above)
nb_merge_streams = True
nb_ipywidgets_js = {}  # the sliders' widgets are drawn as strips (nbpages); no widget JavaScript from the web

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True  # defaults as written (config=IQLConfig()), not as their repr

html_theme = "sphinx_book_theme"
html_title = "iqlkit: offline RL through Implicit Q-Learning"
html_theme_options = {"show_toc_level": 2, "use_download_button": False, "home_page_in_toc": True}
html_copy_source = False
html_last_updated_fmt = None


_toctrees_changed: list[str] = []


def _note_toctrees(app, env, added, changed, removed) -> list[str]:
    """Remember a build that adds or removes a page or changes a page with a toctree (it re-reads nothing more)."""
    _toctrees_changed.extend([*added, *removed, *(doc for doc in changed if doc in env.toctree_includes)])
    return []


def _rewrite_sidebars(app, env) -> list[str]:
    """Every page shows the sidebar of the whole site: after a change in it, write every page again (from the
    cache; nothing is re-run), not only the pages that changed."""
    return sorted(env.found_docs) if _toctrees_changed else []


def _remove_scratch(app, exception) -> None:
    """The build's own temporary folders go when it ends (a crash log stays in docs/_build/.run/sphinx)."""
    shutil.rmtree(SCRATCH, ignore_errors=True)


def setup(app) -> None:
    """Hooks of this configuration."""
    app.connect("env-get-outdated", _note_toctrees)
    app.connect("env-get-updated", _rewrite_sidebars)
    app.connect("build-finished", _remove_scratch)
