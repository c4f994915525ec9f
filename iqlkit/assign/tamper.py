"""What notebook cells import and reach for, read from their syntax tree (nothing runs).

`imports` lists what an assignment's read-only cells and visible checks import: the grading kernel loads and
records those before any submitted code, and re-binds them before each check. `scan` flags the submission's own
cells (answers and added cells) that reach into the grader, IPython's hooks, the interpreter, the check helpers or
the names the read-only cells define, or that start processes, threads or file access: for the instructor to
review, never to change a score (a flag is a reason to look, not proof).
"""
from __future__ import annotations

import ast

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbgrader import utils as nbgrader_utils

HIDDEN = "### BEGIN HIDDEN TESTS"
# name, attribute or module -> what reaching for it may do
REACHES = {
    **dict.fromkeys(("get_ipython", "IPython", "ipykernel", "jupyter_client", "zmq", "set_custom_exc", "CustomTB",
                     "custom_exceptions", "excepthook", "displayhook", "showtraceback", "showsyntaxerror",
                     "input_transformers_cleanup", "input_transformers_post", "input_transformer_manager",
                     "ast_transformers", "transform_cell", "run_cell", "events", "shell_handlers", "user_ns"),
                    "IPython or kernel internals"),
    **dict.fromkeys(("builtins", "__builtins__", "__import__", "importlib", "sys.modules", "settrace", "setprofile",
                     "_getframe", "f_back", "f_globals", "f_locals", "f_trace", "gc", "ctypes", "inspect",
                     "__code__", "__globals__", "__closure__", "__defaults__", "__subclasses__", "__dict__",
                     "__module__", "globals", "locals", "vars", "setattr", "delattr", "exec", "eval", "compile"),
                    "interpreter internals"),
    **dict.fromkeys(("iqlkit.assign", "nbformat", "nbgrader", "nbclient"), "the grader or the checks"),
    **dict.fromkeys(("os.fork", "os.forkpty", "os.system", "os.popen", "os.kill", "os.killpg", "os.setsid",
                     "os.execv", "os.execvp", "os.execl", "os.execlp", "os.spawnv", "os.posix_spawn", "subprocess",
                     "multiprocessing", "threading", "_thread", "signal", "socket", "pty"), "processes or threads"),
    **dict.fromkeys(("open", "os.listdir", "os.scandir", "os.walk", "os.remove", "os.unlink", "os.rename",
                     "os.replace", "os.chmod", "os.symlink", "glob", "shutil", "pathlib", "read_text", "read_bytes",
                     "write_text", "write_bytes", "iterdir"), "files"),
}
LYING = {"__array__", "__array_ufunc__", "__array_function__", "__array_interface__", "__float__", "__int__",
         "__index__", "__bool__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__abs__", "__sub__",
         "__rsub__", "__getattr__", "__getattribute__", "__torch_function__", "__del__"}  # conversions checks use
PATHS = (".ipynb", "grades", "assignments", "submissions", "/etc/", "/proc/")


def _tree(source: str) -> ast.Module | None:
    """The cell's syntax tree (IPython magics made Python first), None if it does not parse."""
    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return None


def _dotted(node: ast.AST) -> str:
    """'a.b.c' for a chain of attributes on a name, '' otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""


def _read_only(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and nbgrader_utils.is_locked(cell) and not nbgrader_utils.is_solution(cell)


def imports(source: nbformat.NotebookNode) -> list[list]:
    """[name bound or None, module, attribute or None] for the imports of the source's read-only and check cells
    (hidden tests excluded): the kernel imports them all and re-binds the module-level ones before each check."""
    found: list[list] = []
    for cell in filter(_read_only, source.cells):
        tree = _tree(cell.source.split(HIDDEN)[0])
        if tree is None:
            continue
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            bind = id(node) in top
            if isinstance(node, ast.Import):
                found += [[(a.asname or a.name.split(".")[0]) if bind else None, a.name, None] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found += [[(a.asname or a.name) if bind else None, node.module, a.name]
                          for a in node.names if a.name != "*"]
    return found


def protected_names(source: nbformat.NotebookNode) -> set[str]:
    """Names the source's read-only cells bind at module level and its check cells read without binding them
    first: what a submission must not rebind."""
    defined: set[str] = set()
    read: set[str] = set()
    own: set[str] = set()
    for cell in filter(_read_only, source.cells):
        tree = _tree(cell.source)
        if tree is None:
            continue
        if nbgrader_utils.is_grade(cell):
            read |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            own |= _bound(tree.body)
        else:
            defined |= _bound(tree.body)
    return defined & read - own


def _bound(body: list[ast.stmt]) -> set[str]:
    """Names a list of module-level statements binds (compound statements' bodies included)."""
    names: set[str] = set()
    for node in body:
        targets: list[ast.AST] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in node.names if a.name != "*"}
        elif isinstance(node, ast.Global):
            names |= set(node.names)
        elif isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
        names |= {n.id for t in targets for n in ast.walk(t)
                  if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
        for field in ("body", "orelse", "finalbody"):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names |= _bound(getattr(node, field, []))
        for handler in getattr(node, "handlers", []):
            names |= _bound(handler.body)
    return names


def scan(nb: nbformat.NotebookNode, protected: set[str]) -> list[str]:
    """Flags for the cells of `nb` that are not read-only (the submission's own), e.g. 'cell 3: IPython internals
    (get_ipython)'; `protected` holds the names the read-only cells define."""
    flags = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or _read_only(cell):
            continue
        tree = _tree(cell.source)
        if tree is None:
            continue
        modules = {a.asname or a.name.split(".")[0]: a.name for node in ast.walk(tree)
                   if isinstance(node, ast.Import) for a in node.names}
        hits: dict[str, set[str]] = {}
        for node in ast.walk(tree):
            words: list[str] = []
            if isinstance(node, ast.Name):
                words = [node.id]
            elif isinstance(node, ast.Attribute):
                dotted = _dotted(node)
                head, _, rest = dotted.partition(".")
                words = [node.attr, dotted, f"{modules[head]}.{rest}" if head in modules and rest else ""]
                if isinstance(node.ctx, (ast.Store, ast.Del)) and head in {*modules, *protected}:
                    hits.setdefault("patches a module or a read-only name", set()).add(dotted)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                words = [w for n in names for w in (n, n.split(".")[0], ".".join(n.split(".")[:2]))]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if any(p in node.value for p in PATHS):
                    hits.setdefault("files", set()).add(repr(node.value[:30]))
            elif isinstance(node, ast.ClassDef):
                lying = {f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))} & LYING
                if lying:
                    hits.setdefault("values that can lie to the checks", set()).update(lying)
            for word in filter(None, words):
                if word in REACHES:
                    hits.setdefault(REACHES[word], set()).add(word)
        rebound = _bound(tree.body) & protected
        if rebound:
            hits.setdefault("rebinds what the read-only cells define", set()).update(rebound)
        flags += [f"cell {index}: {kind} ({', '.join(sorted(words)[:4])})" for kind, words in sorted(hits.items())]
    return flags
