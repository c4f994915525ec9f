"""The grading kernel: ipykernel that, before each check cell, puts back what a submission may have changed.

The grader starts it inside the sandbox as `python -m iqlkit.assign.kernel IMPORTS -f CONNECTION_FILE`, where
IMPORTS is a JSON list of [name bound or null, module, attribute or null]: what the assignment's read-only cells and
visible checks import. Before any submitted cell runs, the kernel imports those and records the interpreter: every
loaded module's functions and classes, the methods of those classes, sys.path and the import machinery, IPython's
hooks, transformers and event callbacks, the kernel's handlers. A request the grader marks as a check (message
metadata `iqlkit_check`) first puts all of that back, before the kernel even looks up its handler; it also re-binds
the imported names in the user namespace, forgets kit modules that only the submission imported and clears trace
functions. The reply's metadata (`iqlkit_restored`) says which kinds of things had changed. Code the submission runs
*during* a check can still change what the rest of that check uses: the grader flags such code for review
(`iqlkit.assign.tamper`).
"""
from __future__ import annotations

import functools
import json
import sys
import threading
import types
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from importlib import import_module

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp

from iqlkit.assign.sandbox import KIT

# what a module's or a class's namespace holds that code runs through, besides callables (data is left alone)
CODE = (types.ModuleType, classmethod, staticmethod, property)
DATA = (int, float, complex, str, bytes, type(None), list, dict, set)  # state that legitimately changes
CHANGING = {"_shell_context", "loop_runner"}  # attributes of the kernel's objects that change on their own
HEAP, IMMUTABLE = 1 << 9, 1 << 8  # Py_TPFLAGS_HEAPTYPE, Py_TPFLAGS_IMMUTABLETYPE
MISSING = object()


def _is_code(value: object) -> bool:
    """Whether a namespace entry is something code runs through (a callable, a module, a descriptor)."""
    return issubclass(type(value), CODE) or callable(value)


def _inherited(cls: type, name: str) -> bool:
    """Whether a base class of `cls` defines `name`."""
    return any(name in vars(base) for base in cls.__mro__[1:])


def _objects(shell) -> dict[str, list]:
    """The objects whose attributes steer how a cell runs and how its reply is built, by the kind reported."""
    kernel = shell.kernel
    found = {"IPython hooks": [shell, shell.displayhook, shell.display_pub, shell.display_trap, shell.compile,
                               shell.events, shell.builtin_trap],
             "input transformers": [shell.input_transformer_manager],
             "kernel objects": [kernel, kernel.session, getattr(kernel, "iopub_socket", None),
                                getattr(kernel, "iopub_thread", None), sys.stdout, sys.stderr]}
    return {kind: [o for o in objects if o is not None] for kind, objects in found.items()}


class Snapshot:
    """The interpreter as it was before any submitted code ran, and how to put it back."""

    def __init__(self, shell, imports: list[list]) -> None:
        self.shell = shell
        self.names: dict[str, object] = {}
        for name, module, attribute in imports:
            try:
                value = import_module(module)
                if attribute is not None:
                    value = (getattr(value, attribute) if hasattr(value, attribute)
                             else import_module(f"{module}.{attribute}"))
                elif name is not None and module.startswith(f"{name}."):  # `import a.b` binds a
                    value = sys.modules[name]
            except Exception:  # noqa: BLE001 - the cell itself will fail the same way
                continue
            if name is not None:
                self.names[name] = value
        if "matplotlib.pyplot" in sys.modules:  # pick the backend now: it registers IPython event callbacks
            sys.modules["matplotlib"].get_backend()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            modules = [(name, module, module.__dict__) for name, module in list(sys.modules.items())
                       if isinstance(getattr(module, "__dict__", None), dict)]
            self.modules = {name: (module, namespace, {k: v for k, v in namespace.items() if _is_code(v)})
                            for name, module, namespace in modules if namespace is not shell.user_ns}  # not __main__
            self.classes = [(cls, cls.__dict__, {k: v for k, v in cls.__dict__.items() if _is_code(v)})
                            for _, namespace, code in self.modules.values() for cls in code.values()
                            if isinstance(cls, type) and cls.__flags__ & HEAP and not cls.__flags__ & IMMUTABLE
                            and namespace.get("__name__") == cls.__dict__.get("__module__")]
        self.sys_lists = [(lst, list(lst)) for lst in (sys.path, sys.meta_path, sys.path_hooks)]
        manager = shell.input_transformer_manager
        self.transformer_lists = [(lst, list(lst)) for lst in (
            shell.input_transformers_post, shell.ast_transformers, manager.cleanup_transforms, manager.line_transforms,
            manager.token_transformers)]
        self.objects = [(kind, obj, dict(vars(obj)), dict(getattr(obj, "_trait_values", {})))
                        for kind, objects in _objects(shell).items() for obj in objects]
        self.events = {name: list(callbacks) for name, callbacks in shell.events.callbacks.items()}
        self.handlers = [(table, dict(table)) for table in (shell.kernel.shell_handlers, shell.kernel.control_handlers)]
        self.user_builtins = shell.user_ns.get("__builtins__")
        self.builtin_names = set(vars(sys.modules["builtins"]))
        self.libraries = tuple({sys.prefix, sys.base_prefix, *(p for p in sys.path if "-packages" in p)})
        self.kit = tuple(p for name in KIT if name in sys.modules for p in sys.modules[name].__path__)

    def restore(self) -> set[str]:
        """Put the recorded state back; return the kinds of things that had changed."""
        changed: set[str] = set()
        for name, (module, namespace, code) in self.modules.items():
            kind = ("builtins" if name == "builtins" else "check helpers" if name == "iqlkit.assign.checks"
                    else "library modules")
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changed.add(kind)
            if self._put_back(namespace, code, self.builtin_names.__contains__, namespace.__setitem__, namespace.pop):
                changed.add(kind)
        for cls, namespace, code in self.classes:
            if self._put_back(namespace, code, partial(_inherited, cls), partial(type.__setattr__, cls),
                              partial(type.__delattr__, cls)):
                changed.add("classes")
        for kind, lists in (("library modules", self.sys_lists), ("input transformers", self.transformer_lists)):
            for lst, items in lists:
                if len(lst) != len(items) or any(a is not b for a, b in zip(lst, items)):
                    lst[:] = items
                    changed.add(kind)
        self._forget_kit_modules()
        for kind, obj, attributes, traits in self.objects:
            if _restore_attributes(obj, vars(obj), attributes) | _restore_attributes(
                    obj, getattr(obj, "_trait_values", {}), traits):
                changed.add(kind)
        for table, recorded in self.handlers:
            if table.keys() != recorded.keys() or any(table[k] is not v for k, v in recorded.items()):
                table.clear()
                table.update(recorded)
                changed.add("kernel objects")
        for name, callbacks in self.shell.events.callbacks.items():
            kept = [cb for cb in callbacks if cb in self.events.get(name, ()) or self._from_library(cb)]
            if len(kept) != len(callbacks):
                callbacks[:] = kept
                changed.add("event callbacks")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            changed.add("trace function")
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)
        threading.setprofile(None)
        user_ns = self.shell.user_ns
        if user_ns.get("__builtins__") is not self.user_builtins:
            user_ns["__builtins__"] = self.user_builtins
            changed.add("builtins")
        for name, value in self.names.items():
            if user_ns.get(name, MISSING) is not value:
                user_ns[name] = value
                changed.add("check helpers" if name.startswith("check_") else "namespace imports")
        return changed

    def _forget_kit_modules(self) -> None:
        """Drop kit modules first imported by the submission, so that checks import them afresh from disk."""
        for name in [n for n in sys.modules if n.split(".")[0] in KIT and n not in self.modules]:
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent in self.modules:
                self.modules[parent][1].pop(child, None)

    def _put_back(self, namespace: Mapping, code: dict, shadows: Callable, put: Callable, drop: Callable) -> bool:
        """Put back the recorded entries of a module's or class's namespace and drop new callables that shadow a
        builtin or an inherited attribute (`shadows(name)`), except those of installed libraries (recorded from then
        on); whether anything was put back."""
        changed = False
        for key in [k for k, v in namespace.items() if k not in code and callable(v) and shadows(k)]:
            if self._from_library(namespace[key]):
                code[key] = namespace[key]
            else:
                drop(key)
                changed = True
        for key, value in code.items():
            now = namespace.get(key, MISSING)
            if now is not value:
                if self._from_library(now):
                    code[key] = now
                else:
                    put(key, value)
                    changed = True
        return changed

    def _from_library(self, value: object) -> bool:
        """Whether `value` is, or wraps, a function or class of an installed library (not of the kit, nor of a cell):
        libraries patch others when imported (torch patches inspect.getfile, IPython pyplot's draw_if_interactive)."""
        for kind, inner in ((property, "fget"), (classmethod, "__func__"), (staticmethod, "__func__"),
                            (types.MethodType, "__func__"), (functools.partial, "func")):
            if type(value) is kind:
                value = getattr(value, inner)
        if isinstance(value, type):
            filename = getattr(sys.modules.get(value.__dict__.get("__module__", "")), "__file__", None)
        elif type(value) is types.FunctionType:
            filename = value.__code__.co_filename
        else:
            return False
        return isinstance(filename, str) and filename.startswith(self.libraries) and not filename.startswith(self.kit)


def _restore_attributes(obj: object, current: dict, recorded: dict) -> bool:
    """Put back an object's recorded attributes (not plain data); drop new methods that shadow its class's."""
    changed = False
    for key, value in recorded.items():
        kept = not isinstance(value, DATA) or "transform" in key  # transformer lists: the same list object
        if kept and key not in CHANGING and current.get(key, MISSING) is not value:
            current[key] = value
            changed = True
    for key in [k for k, v in current.items()
                if k not in recorded and k not in CHANGING and callable(v) and hasattr(type(obj), k)]:
        del current[key]
        changed = True
    return changed


class GradingKernel(IPythonKernel):
    """IPython's kernel, restoring the recorded interpreter before each check the grader sends."""

    snapshot: Snapshot | None = None

    def should_handle(self, stream, msg, idents):  # noqa: D102 - ipykernel's hook, before the handler is looked up
        if msg["header"].get("msg_type") == "execute_request":
            self._restored: set[str] = set()
            if (msg.get("metadata") or {}).get("iqlkit_check") and self.snapshot is not None:
                try:
                    self._restored = self.snapshot.restore()
                except Exception:  # noqa: BLE001 - the check still runs, and the grader learns of it
                    self._restored = {"restore failed"}
        return super().should_handle(stream, msg, idents)

    def finish_metadata(self, parent, metadata, reply_content):  # noqa: D102 - ipykernel's hook
        metadata = super().finish_metadata(parent, metadata, reply_content)
        metadata["iqlkit_restored"] = sorted(getattr(self, "_restored", ()))
        return metadata


def main(argv: list[str]) -> None:
    """Start the grading kernel: record the interpreter once the imports are loaded, then serve."""
    imports = json.loads(argv[0])
    app = IPKernelApp.instance(kernel_class=GradingKernel)
    app.initialize(argv[1:])
    GradingKernel.snapshot = Snapshot(app.kernel.shell, imports)
    app.start()


if __name__ == "__main__":
    main(sys.argv[1:])
