"""The command-line reference, generated from the argparse parser at build time, so it cannot disagree with --help.

In a page: a `{cli-reference}` directive naming the parser's factory, `iqlkit.cli:parser`. It writes one section per
command and sub-command (nested: `controller train` under `controller`), each with the command's description and
its `--help` text, verbatim; each section is a label, `cli-<words>` ({ref}`cli-controller-train`).
"""
from __future__ import annotations

import argparse
import os
from importlib import import_module

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

HELP_COLUMNS = "80"  # argparse wraps --help to the terminal's width: fixed here, so every build writes the same page


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) of each sub-command of `parser`, in the order --help lists them."""
    found = []
    for action in parser._actions:  # argparse keeps its sub-parsers here only
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: (choice.help or "").replace("%%", "%") for choice in action._choices_actions}
            found += [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return found


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command as its words after the program's name, the program itself first: (), ('train',), ('controller',),
    ('controller', 'train'), ..."""
    return [words] + [path for name, sub, _ in subcommands(parser) for path in commands(sub, (*words, name))]


def section_id(words: tuple[str, ...]) -> str:
    """The anchor of a command's section: cli-train, cli-controller-train (cli for the program itself)."""
    return "-".join(("cli", *words))


def help_text(parser: argparse.ArgumentParser) -> str:
    """`parser.format_help()` at HELP_COLUMNS columns, whatever terminal the build runs in."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        return parser.format_help()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


class CliReference(SphinxDirective):
    """`{cli-reference} module:factory`: the sections of every command of the parser that `factory()` returns."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name, _, factory = self.arguments[0].partition(":")
        module = import_module(module_name)
        if getattr(module, "__file__", None):
            self.env.note_dependency(module.__file__)
        return [self._section(getattr(module, factory)(), (), "")]

    def _section(self, parser: argparse.ArgumentParser, words: tuple[str, ...], summary: str) -> nodes.section:
        title, ident = parser.prog, section_id(words)
        section = nodes.section(ids=[ident], names=[nodes.fully_normalize_name(title)])
        std = self.env.get_domain("std")  # so that {ref}`cli-train` links here from any page
        std.anonlabels[ident] = (self.env.docname, ident)
        std.labels[ident] = (self.env.docname, ident, title)
        section += nodes.title("", "", nodes.literal(title, title))
        for text in dict.fromkeys(t for t in (summary, parser.description) if t):  # both, once each
            section += nodes.paragraph(text, text)
        text = help_text(parser)
        section += nodes.literal_block(text, text, language="text")
        for name, sub, sub_summary in subcommands(parser):
            section += self._section(sub, (*words, name), sub_summary)
        return section


def setup(app: Sphinx) -> dict:
    """Register the `cli-reference` directive."""
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
