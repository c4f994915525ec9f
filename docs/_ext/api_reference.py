"""The API reference, from the docstrings, found at build time so that a new module gets its section by itself.

In a page: `{package-reference} iqlkit.engine` writes the package's docstring and one section per module of the
package (autodoc's automodule with its members); modules may be named too. The kit's docstrings are written as plain
text with Markdown's `code` spans and tables, so they are read as Markdown (MyST) rather than reStructuredText:
`autodoc-process-docstring` wraps each one in an `md-docstring` directive.
"""
from __future__ import annotations

import pkgutil
from importlib import import_module

from docutils import nodes
from docutils.parsers.rst import Parser as RstParser
from docutils.utils import new_document
from myst_parser.parsers.sphinx_ import MystParser
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def parse_rst(text: str, document: nodes.document) -> list[nodes.Node]:
    """reStructuredText (autodoc's directives) parsed into nodes for `document`, whatever its own markup (MyST here,
    as MyST's eval-rst does)."""
    scratch = new_document(document["source"], document.settings)
    scratch.reporter = document.reporter
    RstParser().parse(text, scratch)
    for node in scratch.children:
        if node["names"]:
            document.note_implicit_target(node, node)
    return list(scratch.children)


def modules(package: str) -> list[str]:
    """The package's modules and sub-packages, by name, sorted."""
    path = import_module(package).__path__
    return sorted(info.name for info in pkgutil.iter_modules(path, package + "."))


class PackageReference(SphinxDirective):
    """`{package-reference} name ...`: for a package, its docstring, then a section per module (autodoc's automodule
    with the members); for a module, its section."""

    required_arguments = 1
    optional_arguments = 20

    def run(self) -> list[nodes.Node]:
        lines = []
        for name in self.arguments:
            if hasattr(import_module(name), "__path__"):  # a package: its docstring here, its modules below
                lines += [f".. automodule:: {name}", ""] if len(self.arguments) == 1 else []
                lines += [line for module in modules(name) for line in self._module(module)]
            else:
                lines += self._module(name)
        return parse_rst("\n".join(lines), self.state.document)

    @staticmethod
    def _module(name: str) -> list[str]:
        """The reStructuredText of one module's section."""
        return [f"``{name}``", "=" * (len(name) + 4), "", f".. automodule:: {name}", "   :members:",
                "   :show-inheritance:", ""]


class MarkdownDocstring(SphinxDirective):
    """`md-docstring`: its content parsed as MyST Markdown."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        document = new_document(str(self.env.doc2path(self.env.docname)), self.state.document.settings)
        MystParser().parse("\n".join(self.content), document)
        return list(document.children)


def _as_markdown(app: Sphinx, what: str, name: str, obj: object, options: dict, lines: list[str]) -> None:
    """Wrap a docstring in `md-docstring` (autodoc-process-docstring edits `lines` in place)."""
    if any(line.strip() for line in lines):
        lines[:] = [".. md-docstring::", "", *(f"   {line}" if line else "" for line in lines), ""]


def setup(app: Sphinx) -> dict:
    """Register the directives and the docstring hook."""
    app.setup_extension("sphinx.ext.autodoc")
    app.add_directive("package-reference", PackageReference)
    app.add_directive("md-docstring", MarkdownDocstring)
    app.connect("autodoc-process-docstring", _as_markdown)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
