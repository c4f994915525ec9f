"""Run a notebook's code cells in a grading kernel, from outside: the grader's own client sends each cell's code and
reads the replies on the kernel's channels, and the notebook file never enters the kernel's view.

A check cell passes only if its execute_reply says "ok", no error output came with it, and its stdout carries the
per-run random token that the grader appends to the check code as a last statement: the token is printed only
when the check code before it ran to its end, so an exception hidden by a custom handler, an excepthook or an
event callback, or a cell rewritten by an input transformer, does not pass. Check cells are marked in the request's
metadata so that the kernel restores the interpreter before them (`iqlkit.assign.kernel`).
"""
from __future__ import annotations

import asyncio
import builtins
import re
import secrets
import time
import warnings
from dataclasses import dataclass, field

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient

from iqlkit.assign.sandbox import Kernel

GRACE_S = 10.0  # how long an interrupted cell may take to stop
MAX_OUTPUT = 2_000_000  # characters of output kept per cell for the feedback notebook
# what the kernel reports it restored: a kind in short words, then the object and attribute (it is not trusted)
RESTORED = re.compile(r"[A-Za-z ]{1,30}( \([A-Za-z_][A-Za-z0-9_.]{0,100}\))?")
DIED = "the kernel died (os._exit, a crash or no memory)"


class KernelDied(Exception):
    """The kernel process ended."""


@dataclass
class Verdict:
    """How one check cell ended: passed, or the (builtin) exception name that stopped it."""

    passed: bool
    why: str = ""


@dataclass
class Run:
    """What running a notebook gave: the check verdicts by cell index, the status and what the kernel restored."""

    verdicts: dict[int, Verdict] = field(default_factory=dict)
    status: str = "ok"
    slow: list[int] = field(default_factory=list)
    restored: set[str] = field(default_factory=set)


def exception_name(name: object) -> str:
    """A builtin exception's name as reported, anything else as 'error' (the name is the submission's to choose)."""
    kind = getattr(builtins, name, None) if isinstance(name, str) else None
    return name if isinstance(kind, type) and issubclass(kind, BaseException) else "error"


class _Cell:
    """Collects one request's outputs and reply."""

    def __init__(self, token: str | None) -> None:
        self.token, self.outputs, self.reply, self.idle = token, [], None, False
        self.token_seen, self.error, self.size, self.tail = False, None, 0, ""

    def add(self, msg: dict) -> None:
        """Take one IOPub message of this request (status, output)."""
        kind, content = msg["header"].get("msg_type"), msg["content"]
        if kind == "status":
            self.idle = content.get("execution_state") == "idle"
            return
        if kind == "clear_output":
            self.outputs.clear()
            return
        if kind == "stream":
            text = content.get("text")
            if not isinstance(text, str) or content.get("name") not in ("stdout", "stderr"):
                return
            if self.token and content["name"] == "stdout":
                self.token_seen |= self.token in self.tail + text
                self.tail = (self.tail + text)[-len(self.token):]
                text = text.replace(self.token + "\n", "").replace(self.token, "")
        elif kind == "error":
            self.error = exception_name(content.get("ename"))
        elif kind not in ("display_data", "execute_result"):
            return
        try:
            out = nbformat.v4.output_from_msg(msg)
        except (KeyError, ValueError, TypeError):
            return
        if kind == "stream":
            out.text = text
            if self.outputs and self.outputs[-1].get("output_type") == "stream" and self.outputs[-1].name == out.name:
                self.outputs[-1].text += text
                out = None
        self.size += len(str(msg.get("content")))
        if out is not None and self.size <= MAX_OUTPUT:
            self.outputs.append(out)


async def _message(receive, msg_id: str) -> dict | None:
    """The next message if it answers `msg_id` and is well formed (the kernel is not trusted), else None."""
    try:
        msg = await receive
        ok = msg["parent_header"]["msg_id"] == msg_id and all(
            isinstance(msg.get(k), dict) for k in ("header", "content", "metadata"))
    except Exception:  # noqa: BLE001 - a message that does not parse or verify is dropped
        return None
    return msg if ok else None


async def _collect(kc: AsyncKernelClient, kernel: Kernel, cell: _Cell, msg_id: str, deadline: float) -> bool:
    """Read the request's messages until its reply and idle status (True) or the deadline (False)."""
    while cell.reply is None or not cell.idle:
        if time.monotonic() > deadline:
            return False
        got = 0
        while got < 1000 and await kc.iopub_channel.msg_ready():  # a flood of output still meets the deadline
            got += 1
            msg = await _message(kc.get_iopub_msg(), msg_id)
            if msg is not None:
                cell.add(msg)
        while cell.reply is None and await kc.shell_channel.msg_ready():
            got += 1
            cell.reply = await _message(kc.get_shell_msg(), msg_id)
        if not got:
            if not kernel.alive():
                raise KernelDied
            await asyncio.sleep(0.02)
    return True


async def _start(kc: AsyncKernelClient, kernel: Kernel, deadline: float) -> None:
    """Wait until the kernel answers kernel_info on both channels (or raise KernelDied / TimeoutError)."""
    while True:
        msg = kc.session.msg("kernel_info_request")
        kc.shell_channel.send(msg)
        if await _collect(kc, kernel, _Cell(None), msg["header"]["msg_id"], min(time.monotonic() + 1, deadline)):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the kernel did not answer")


async def run_notebook(nb: nbformat.NotebookNode, checks: set[int], kernel: Kernel, cell_timeout: float,
                       limit: float) -> Run:
    """Run the code cells of `nb` (outputs written into it); the cells whose index is in `checks` are graded."""
    run, start = Run(), time.monotonic()
    kc = AsyncKernelClient()
    index = -1
    try:
        try:
            kc.load_connection_info(kernel.start())
            kc.start_channels(hb=False)
            await _start(kc, kernel, start + limit)
        except (KernelDied, TimeoutError):
            run.status = "kernel did not start"
            warnings.warn(f"a grading kernel did not start: {kernel.log_tail()}", RuntimeWarning, stacklevel=2)
            return run
        for index, code_cell in enumerate(nb.cells):
            if code_cell.cell_type != "code":
                continue
            check = index in checks
            token = secrets.token_hex(16) if check else None
            code = f"{code_cell.source}\nprint({token!r})" if check else code_cell.source
            if time.monotonic() - start > limit:
                run.status = f"stopped before cell {index}: notebook ran past its limit of {limit:g} s"
                break
            msg = kc.session.msg("execute_request", {"code": code, "silent": False, "store_history": True,
                                                     "user_expressions": {}, "allow_stdin": False,
                                                     "stop_on_error": False},
                                 metadata={"iqlkit_check": True} if check else {})
            kc.shell_channel.send(msg)
            cell = _Cell(token)
            code_cell.outputs = cell.outputs
            notebook_end = start + limit
            done = await _collect(kc, kernel, cell, msg["header"]["msg_id"],
                                  min(time.monotonic() + cell_timeout, notebook_end))
            if not done and time.monotonic() < notebook_end:
                kc.control_channel.send(kc.session.msg("interrupt_request", {}))
                run.slow.append(index)
                cell.error = "TimeoutError"
                cell.outputs.append(nbformat.v4.new_output(
                    "error", ename="TimeoutError", evalue=f"the cell ran past its limit of {cell_timeout:g} s",
                    traceback=[]))
                done = await _collect(kc, kernel, cell, msg["header"]["msg_id"],
                                      min(time.monotonic() + GRACE_S, notebook_end))
                if not done:
                    run.status = f"cell {index} ran past {cell_timeout:g} s and did not stop when interrupted"
            elif not done:
                run.status = f"stopped in cell {index}: notebook ran past its limit of {limit:g} s"
            if cell.reply is not None:
                restored = cell.reply["metadata"].get("iqlkit_restored")
                if isinstance(restored, list):
                    run.restored |= {r for r in restored[:12] if isinstance(r, str) and RESTORED.fullmatch(r)}
                if cell.reply["content"].get("status") != "ok":
                    cell.error = cell.error or exception_name(cell.reply["content"].get("ename"))
            if check:
                ok = done and cell.reply is not None and cell.error is None and cell.token_seen
                run.verdicts[index] = Verdict(ok, "" if ok else cell.error or "did not run to its end")
            if not done:
                break
    except KernelDied:
        run.status = f"kernel died in cell {index}"
        nb.cells[index].outputs.append(nbformat.v4.new_output("error", ename="DeadKernelError", evalue=DIED,
                                                              traceback=[]))
        if index in checks:
            run.verdicts[index] = Verdict(False, "DeadKernelError")
    finally:
        if kc.channels_running:
            kc.stop_channels()
        await asyncio.to_thread(kernel.kill)
    return run
