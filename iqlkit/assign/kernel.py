"""The grading kernel: ipykernel that, before each check cell, puts back what a submission may have changed.

The grader starts it inside the sandbox as `python -m iqlkit.assign.kernel IMPORTS -f CONNECTION_FILE`, where
IMPORTS is a JSON list of [name bound or null, module, attribute or null]: what the assignment's read-only cells and
visible checks import. Before any submitted cell runs, the kernel imports those and records the interpreter: every
loaded module's functions and classes, the methods of those classes, sys.path and the import machinery, IPython's
hooks, transformers and event callbacks, the kernel's handlers. A request the grader marks as a check (message
metadata `iqlkit_check`) first puts all of that back, before the kernel even looks up its handler; it also re-binds
the imported names in the user namespace, forgets kit modules that only the submission imported and clears trace
functions. The reply's metadata (`iqlkit_restored`) says which kinds of things had changed, each with the object and
attribute it found changed (`kernel objects (OutStream.write)`), so that an instructor can tell a cheat from a change
of the Jupyter stack. What the kernel does by itself is not a change: IPython 9 rebinds `sys.stdout.write` to the
stream's own method after every cell (`InteractiveShell._tee`), which is what the class gives anyway. Code the submission runs
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
        manager = shell.input_transformer_manager
        self.lists = [(kind, name, lst, list(lst)) for kind, name, lst in (
            ("library modules", "sys.path", sys.path), ("library modules", "sys.meta_path", sys.meta_path),
            ("library modules", "sys.path_hooks", sys.path_hooks),
            ("input transformers", "input_transformers_post", shell.input_transformers_post),
            ("input transformers", "ast_transformers", shell.ast_transformers),
            ("input transformers", "cleanup_transforms", manager.cleanup_transforms),
            ("input transformers", "line_transforms", manager.line_transforms),
            ("input transformers", "token_transformers", manager.token_transformers))]
        self.objects = [(kind, obj, dict(vars(obj)), dict(getattr(obj, "_trait_values", {})))
                        for kind, objects in _objects(shell).items() for obj in objects]
        self.events = {name: list(callbacks) for name, callbacks in shell.events.callbacks.items()}
        self.handlers = [(table, dict(table)) for table in (shell.kernel.shell_handlers, shell.kernel.control_handlers)]
        self.user_builtins = shell.user_ns.get("__builtins__")
        self.builtin_names = set(vars(sys.modules["builtins"]))
        self.libraries = tuple({sys.prefix, sys.base_prefix, *(p for p in sys.path if "-packages" in p)})
        self.kit = tuple(p for name in KIT if name in sys.modules for p in sys.modules[name].__path__)

    def restore(self) -> set[str]:
        """Put the recorded state back; return what had changed, as `kind (owner.attribute)`."""
        changed: set[str] = set()
        for name, (module, namespace, code) in self.modules.items():
            kind = ("builtins" if name == "builtins" else "check helpers" if name == "iqlkit.assign.checks"
                    else "library modules")
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changed.add(f"{kind} (sys.modules)")
            keys = self._put_back(namespace, code, self.builtin_names.__contains__, namespace.__setitem__,
                                  namespace.pop)
            changed.update(f"{kind} ({name}.{key})" for key in keys)
        for cls, namespace, code in self.classes:
            keys = self._put_back(namespace, code, partial(_inherited, cls), partial(type.__setattr__, cls),
                                  partial(type.__delattr__, cls))
            changed.update(f"classes ({cls.__qualname__}.{key})" for key in keys)
        for kind, name, lst, items in self.lists:
            if len(lst) != len(items) or any(a is not b for a, b in zip(lst, items)):
                lst[:] = items
                changed.add(f"{kind} ({name})")
        self._forget_kit_modules()
        for kind, obj, attributes, traits in self.objects:
            keys = (_restore_attributes(obj, vars(obj), attributes)
                    + _restore_attributes(obj, getattr(obj, "_trait_values", {}), traits))
            changed.update(f"{kind} ({type(obj).__name__}.{key})" for key in keys)
        for table, recorded in self.handlers:
            keys = sorted(set(table) ^ set(recorded) | {k for k in recorded if table.get(k) is not recorded[k]})
            if keys:
                table.clear()
                table.update(recorded)
                changed.update(f"kernel objects (handlers.{key})" for key in keys)
        for name, callbacks in self.shell.events.callbacks.items():
            kept = [cb for cb in callbacks if cb in self.events.get(name, ()) or self._from_library(cb)]
            if len(kept) != len(callbacks):
                callbacks[:] = kept
                changed.add(f"event callbacks ({name})")
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
                changed.add(f"{'check helpers' if name.startswith('check_') else 'namespace imports'} ({name})")
        return changed

    def _forget_kit_modules(self) -> None:
        """Drop kit modules first imported by the submission, so that checks import them afresh from disk."""
        for name in [n for n in sys.modules if n.split(".")[0] in KIT and n not in self.modules]:
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent in self.modules:
                self.modules[parent][1].pop(child, None)

    def _put_back(self, namespace: Mapping, code: dict, shadows: Callable, put: Callable, drop: Callable) -> list[str]:
        """Put back the recorded entries of a module's or class's namespace and drop new callables that shadow a
        builtin or an inherited attribute (`shadows(name)`), except those of installed libraries (recorded from then
        on); the names put back or dropped."""
        changed = []
        for key in [k for k, v in namespace.items() if k not in code and callable(v) and shadows(k)]:
            if self._from_library(namespace[key]):
                code[key] = namespace[key]
            else:
                drop(key)
                changed.append(key)
        for key, value in code.items():
            now = namespace.get(key, MISSING)
            if now is not value:
                if self._from_library(now):
                    code[key] = now
                else:
                    put(key, value)
                    changed.append(key)
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


def _own_method(obj: object, key: str, value: object) -> bool:
    """Whether `value` is `obj`'s own class method `key` bound to `obj`: what `obj.key` gives without it."""
    return (type(value) is types.MethodType and value.__self__ is obj
            and value.__func__ is getattr(type(obj), key, None))


def _restore_attributes(obj: object, current: dict, recorded: dict) -> list[str]:
    """Put back an object's recorded attributes (not plain data); drop new methods that shadow its class's (but not
    its own class method bound to it, as IPython leaves `sys.stdout.write`); the names put back or dropped."""
    changed = []
    for key, value in recorded.items():
        kept = not isinstance(value, DATA) or "transform" in key  # transformer lists: the same list object
        if kept and key not in CHANGING and current.get(key, MISSING) is not value:
            current[key] = value
            changed.append(key)
    for key in [k for k, v in current.items() if k not in recorded and k not in CHANGING and callable(v)
                and hasattr(type(obj), k) and not _own_method(obj, k, v)]:
        del current[key]
        changed.append(key)
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
