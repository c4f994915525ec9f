"""Confinement of grading kernels: what a kernel may see and use, and how everything it started is ended.

On Linux with bubblewrap (`bwrap`) each kernel runs in its own mount, PID, network, IPC and UTS namespaces. It sees
the system's /usr, the Python installation and the kit's packages read-only, an empty size-limited home and /tmp,
and one folder holding its connection file and sockets; never the sources, the submissions, the grades or the
grader's environment (only locale, thread-count, plotting and IQLKIT_ variables pass). Run as root, the grader gives
every notebook its own unprivileged user id (bwrap starts as root; `setpriv` drops to that user inside) and, where
cgroups are writable, a cgroup with a memory limit for the whole notebook and a cap on its tasks. Killing bwrap ends
the PID namespace, so nothing outlives its notebook, nor the grader (`--die-with-parent`). Where bwrap is missing
or does not work (`IQLKIT_SANDBOX=off` also turns it off) the kernel runs unconfined in its own session and temporary
folder, under an unprivileged user when the grader is root and Python is readable to it, with the same limits; the
grader warns.
"""
from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import partial
from importlib.util import find_spec
from pathlib import Path

from jupyter_client.connect import write_connection_file

KIT = ("iqlkit", "toy_envs")
ENV_NAMES = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONHASHSEED", "PYTHONWARNINGS", "MPLBACKEND", "MUJOCO_GL",
             "CUDA_VISIBLE_DEVICES")
ENV_PREFIXES = ("LC_", "IQLKIT_", "OMP_", "MKL_", "OPENBLAS_")
ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime",
       "/etc/matplotlibrc")
HOME, RUN = "/home/student", "/run/kernel"  # the kernel's home and its connection folder, inside the sandbox
UID_BASE, UID_SPAN = 0x70000000, 1 << 27  # ids no account uses (systemd's "unused" range)
MAX_TASKS = 512  # processes and threads of one notebook
MAX_FILE = 2**30  # bytes in one file the kernel writes (its log included)
DEFAULT_TMPFS = 2 * 2**30  # home and /tmp size without a memory limit


@dataclass(frozen=True)
class Confinement:
    """What this machine gives each kernel."""

    bwrap: bool
    uid_base: int | None  # per-notebook unprivileged users start here (the grader runs as root)
    cgroups: str | None  # "v2" or "v1" when the grader can create cgroups
    binds: tuple[str, ...]  # read-only folders the sandbox shows (besides /usr)
    kit_roots: tuple[str, ...]  # folders holding the kit's packages (the kernel's PYTHONPATH)

    def describe(self) -> str:
        """One line for the instructor."""
        parts = ["bubblewrap sandbox" if self.bwrap else "NO sandbox (the kernel sees this machine's files)"]
        parts.append("a user per notebook" if self.uid_base is not None else
                     "kernels run as root" if os.geteuid() == 0 else "kernels run as you")
        parts.append(f"cgroup {self.cgroups} per notebook" if self.cgroups else "no cgroup (per-process limits)")
        return ", ".join(parts)


def _within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _read_only_folders(protected: list[Path]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Folders the kernel needs (Python, its packages, the kit's packages), none of which shows a protected path."""
    packages = [spec.submodule_search_locations[0] for spec in map(find_spec, KIT)
                if spec is not None and spec.submodule_search_locations]
    candidates = [sys.prefix, sys.base_prefix, *(p for p in sys.path if p and Path(p).resolve() != Path.cwd()),
                  *packages]
    found: list[str] = []
    for path in sorted({os.path.abspath(p) for p in candidates if os.path.isdir(p)}, key=len):
        real = Path(path).resolve()
        if (_within(real, Path("/usr")) or any(_within(real, Path(f)) for f in found)
                or any(_within(p, real) or _within(real, p) for p in protected)):
            continue
        found.append(path)
    missing = [p for p in packages if p not in found and not any(_within(Path(p), Path(f)) for f in found)]
    if missing:
        raise ValueError(f"the kit's packages {missing} lie inside a folder the kernels must not see "
                         f"({', '.join(map(str, protected))}): keep the sources, submissions and grades elsewhere")
    return tuple(found), tuple(sorted({str(Path(p).parent) for p in packages}))


def _bwrap_argv(conf: Confinement, run: Path, uid: int | None, env: dict[str, str], tmpfs: int) -> list[str]:
    """bwrap's command line up to the kernel's own (after `setpriv` when the grader is root)."""
    argv = ["bwrap", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grader", "--ro-bind", "/usr", "/usr"]
    if uid is None:
        argv.append("--unshare-user")
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            argv += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            argv += ["--ro-bind", name, name]
    for path in ETC:
        argv += ["--ro-bind-try", path, path]
    argv += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--size", str(tmpfs), "--tmpfs", "/tmp"]
    parents = sorted({str(p) for b in (*conf.binds, RUN, HOME) for p in Path(b).parents if str(p) != "/"}, key=len)
    for parent in parents:
        argv += ["--perms", "0755", "--dir", parent]
    for path in conf.binds:
        argv += ["--ro-bind", path, path]
    argv += ["--perms", "0777", "--size", str(tmpfs), "--tmpfs", HOME, "--bind", str(run), RUN, "--chdir", HOME,
             "--clearenv"]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    if uid is not None:
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--", shutil.which("setpriv") or "setpriv",
                 f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                 "--no-new-privs"]
    else:
        argv.append("--")
    return argv


def _kernel_env(env: dict[str, str], conf: Confinement, home: str) -> dict[str, str]:
    """The variables a kernel gets: the allowed ones of `env`, its own home, the kit on PYTHONPATH."""
    kept = {k: v for k, v in env.items() if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}
    path = [*conf.kit_roots, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**kept, "HOME": home, "USER": "student", "LOGNAME": "student", "TMPDIR": "/tmp" if conf.bwrap else home,
            "PYTHONPATH": os.pathsep.join(path), "PYTHONDONTWRITEBYTECODE": "1"}


def _enter(procs: list[Path], limits: list[tuple[int, int]], uid: int | None) -> None:
    """In the child before exec: join the cgroup, set the limits, become the notebook's user (fallback only)."""
    for path in procs:
        path.write_text(str(os.getpid()))
    for which, value in limits:
        hard = resource.getrlimit(which)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # a limit the platform does not enforce (RLIMIT_AS on macOS)
            pass
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


class Cgroup:
    """One notebook's cgroup (v2, or v1's memory and pids hierarchies): a memory limit for all of its processes."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders

    @staticmethod
    def parents(version: str) -> list[Path]:
        """Where this process creates cgroups: v2's root, or its own cgroup in v1's memory and pids hierarchies."""
        if version == "v2":
            return [Path("/sys/fs/cgroup")]
        own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
        return [Path("/sys/fs/cgroup", h, own[h].lstrip("/")) for h in ("memory", "pids")]

    @classmethod
    def create(cls, version: str, name: str, memory: int | None) -> Cgroup:
        """A new cgroup with the memory limit (bytes, None: none) and MAX_TASKS tasks; raises OSError if it can't."""
        group = cls([parent / name for parent in cls.parents(version)])
        if version == "v2":
            control = group.folders[0].parent / "cgroup.subtree_control"
            if not {"memory", "pids"} <= set(control.read_text().split()):
                control.write_text("+memory +pids")
            settings = {"pids.max": MAX_TASKS, "memory.max": memory, "memory.swap.max": 0 if memory else None}
        else:
            settings = {"pids.max": MAX_TASKS, "memory.limit_in_bytes": memory, "memory.memsw.limit_in_bytes": memory}
        for folder in group.folders:
            folder.mkdir()
        for key, value in settings.items():
            for folder in group.folders:
                if value is not None and (folder / key).exists():
                    (folder / key).write_text(str(value))
        return group

    @property
    def procs(self) -> list[Path]:
        """The files a process writes its id to, to join."""
        return [f / "cgroup.procs" for f in self.folders]

    def kill(self) -> None:
        """SIGKILL every process in the cgroup until none is left, then remove it."""
        for _ in range(100):
            pids = {int(p) for f in self.procs if f.exists() for p in f.read_text().split()}
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for folder in self.folders:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def _grader_gone(name: str) -> bool:
    """Whether the grader whose pid a leftover's name carries (iqlkit-<pid>-..., iqlkit-kernel-<pid>-...) has ended."""
    pid = name.removeprefix("iqlkit-").removeprefix("kernel-").split("-")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def _remove_leftovers(cgroups: str | None) -> None:
    """End and remove what killed graders left behind: their kernels' cgroups and folders."""
    for parent in Cgroup.parents(cgroups) if cgroups else []:
        for folder in parent.glob("iqlkit-*"):
            if _grader_gone(folder.name):
                Cgroup([folder]).kill()
    for folder in Path(tempfile.gettempdir()).glob("iqlkit-kernel-*"):
        if _grader_gone(folder.name):
            shutil.rmtree(folder, ignore_errors=True)


def _cgroup_version() -> str | None:
    """Which cgroups this process can create (root only), or None."""
    if os.geteuid() != 0:
        return None
    for version in ("v2", "v1"):
        if (version == "v2") != Path("/sys/fs/cgroup/cgroup.controllers").exists():
            continue
        try:
            Cgroup.create(version, f"iqlkit-probe-{os.getpid()}", 2**30).kill()
            return version
        except (OSError, KeyError):
            continue
    return None


def _probe(argv: list[str], env: dict[str, str], uid: int | None) -> str | None:
    """None if the kernel's imports work under `argv`, else the last line of what went wrong."""
    code = "import ipykernel, iqlkit.assign.kernel"
    try:
        done = subprocess.run([*argv, sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=120, preexec_fn=partial(_enter, [], [], uid), cwd="/")
    except (OSError, subprocess.SubprocessError) as e:
        return f"{type(e).__name__}: {e}"
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]


def confinement(protected: list[Path]) -> Confinement:
    """Find out what works here (a probe kernel import per mode), remove what killed graders left behind; warn when
    kernels cannot be sandboxed."""
    binds, roots = _read_only_folders([Path(p).resolve() for p in protected])
    root = os.geteuid() == 0
    base = UID_BASE + secrets.randbelow(UID_SPAN - 2**20) if root else None
    plain = Confinement(False, base, _cgroup_version(), binds, roots)
    _remove_leftovers(plain.cgroups)
    sandboxed = Confinement(True, base, plain.cgroups, binds, roots)
    why = "IQLKIT_SANDBOX=off" if os.environ.get("IQLKIT_SANDBOX", "").lower() in ("0", "off", "no") else (
        "bubblewrap (bwrap) is not installed" if shutil.which("bwrap") is None else None)
    if why is None:
        with tempfile.TemporaryDirectory() as run:
            env = _kernel_env(dict(os.environ), sandboxed, HOME)
            why = _probe(_bwrap_argv(sandboxed, Path(run), base, env, DEFAULT_TMPFS), {"PATH": os.defpath}, None)
        if why is None:
            return sandboxed
        why = f"bwrap failed here: {why}"
    if root:
        with tempfile.TemporaryDirectory() as home:
            os.chmod(home, 0o777)
            if _probe([], _kernel_env(dict(os.environ), plain, home), base) is not None:
                plain = Confinement(False, None, plain.cgroups, binds, roots)
    user = "root" if root and plain.uid_base is None else "an unprivileged user" if root else "you"
    warnings.warn(f"grading kernels run without a sandbox ({why}): a submission can read and change what its user "
                  f"can, here {user} (see the README, 'For instructors'). Now: {plain.describe()}.", RuntimeWarning,
                  stacklevel=2)
    return plain


class Kernel:
    """One grading kernel process, confined as `conf` allows; kill() ends everything it started."""

    def __init__(self, conf: Confinement, job: int, imports: list[list], env: dict[str, str],
                 memory: int | None) -> None:
        self.conf, self.imports, self.memory = conf, imports, memory
        self.uid = None if conf.uid_base is None else conf.uid_base + job
        self.name = f"iqlkit-{os.getpid()}-{job}"
        self.env = env
        self.folder = Path(tempfile.mkdtemp(prefix=f"iqlkit-kernel-{os.getpid()}-"))
        self.proc: subprocess.Popen | None = None
        self.cgroup: Cgroup | None = None

    def start(self) -> dict:
        """Launch the kernel; return the connection info for the grader's client."""
        run = self.folder / "run"
        run.mkdir()
        key = secrets.token_hex(32)
        command = [sys.executable, "-m", "iqlkit.assign.kernel", json.dumps(self.imports), "-f"]
        if self.conf.bwrap:
            info = {"transport": "ipc", "ip": f"{RUN}/kernel", "key": key, "signature_scheme": "hmac-sha256",
                    **{f"{c}_port": i + 1 for i, c in enumerate(("shell", "iopub", "stdin", "control", "hb"))}}
            (run / "kernel.json").write_text(json.dumps(info))
            env = _kernel_env(self.env, self.conf, HOME)
            argv = [*_bwrap_argv(self.conf, run, self.uid, env, self.memory or DEFAULT_TMPFS), *command,
                    f"{RUN}/kernel.json"]
            info = {**info, "ip": str(run / "kernel")}
            env, cwd = {"PATH": os.defpath}, "/"
        else:
            home = self.folder / "home"
            home.mkdir()
            _, info = write_connection_file(str(run / "kernel.json"), ip="127.0.0.1", key=key.encode())
            env = {**_kernel_env(self.env, self.conf, str(home)), "JPY_PARENT_PID": str(os.getpid())}
            argv, cwd = [*command, str(run / "kernel.json")], str(home)
            if self.uid is not None:
                os.chown(home, self.uid, self.uid)
        if self.uid is not None:
            os.chown(run, self.uid, self.uid)
            os.chown(run / "kernel.json", self.uid, self.uid)
        os.chmod(run / "kernel.json", 0o600)
        if self.conf.cgroups:
            self.cgroup = Cgroup.create(self.conf.cgroups, self.name, self.memory)
        limits = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, MAX_FILE)]
        if self.memory:
            limits.append((resource.RLIMIT_AS, self.memory))
        if self.uid is not None:
            limits.append((resource.RLIMIT_NPROC, MAX_TASKS))
        with (self.folder / "kernel.log").open("wb") as log:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=partial(_enter, self.cgroup.procs if self.cgroup else [], limits,
                                   None if self.conf.bwrap else self.uid))
        return info

    def alive(self) -> bool:
        """Whether the kernel (or its sandbox) is still running."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self) -> str:
        """The last line the kernel wrote to its stderr (for the grader's own messages, never the CSV)."""
        path = self.folder / "kernel.log"
        lines = path.read_bytes()[-2000:].decode(errors="replace").strip().splitlines() if path.exists() else []
        return lines[-1] if lines else ""

    def kill(self) -> None:
        """End the kernel and every process it started; remove its folder."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.uid is not None and not self.conf.bwrap:  # processes that left the session: all of this user's
            subprocess.run([sys.executable, "-c", "import os, signal; os.kill(-1, signal.SIGKILL)"],
                           preexec_fn=partial(_enter, [], [], self.uid), cwd="/", capture_output=True)
        if self.proc is not None:
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
