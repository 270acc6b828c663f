"""Guarded kernels for fills: a fresh one per fill, or one warm kernel a batch worker reuses.

Starting the guarded kernel (Python, pandas, Ibis, the guard) is a large part of a small report's
fill. A batch worker fills many reports one after the other, so it keeps one kernel and, before
each report, gives it a clean slate: every variable of the previous report is deleted
(`reset`), the guard is set to the new report's policy and level, and the kernel is restarted if
it died. Modules stay imported; nothing a report computed stays reachable.
"""

from __future__ import annotations

import os
import signal
import subprocess

from workbench.errors import EnvironmentProblem

KERNEL_NAME = "workbench"


class KernelError(EnvironmentProblem):
    """The guarded kernel could not be started or prepared."""


def stop_orphan(pid: int, connection_file: str) -> None:
    """Stop the kernel `pid` left by a process that was killed before it could stop it.

    Only a process whose command line names `connection_file` is stopped: the pid of a kernel
    that already ended may belong to another process by now.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().split(b"\0")
    except OSError:
        return
    if os.fsencode(connection_file) in command:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def kernel_environment(policy_path: str, level: str, warehouse: str) -> dict[str, str]:
    """What a report's kernel is started with: the request's policy, level and warehouse."""
    return {**os.environ, "WORKBENCH_POLICY": policy_path, "WORKBENCH_LEVEL": level, "WORKBENCH_WAREHOUSE": warehouse}


class WarmKernel:
    """One guarded kernel, reused across reports (see the module docstring)."""

    def __init__(self, cwd: str | os.PathLike, on_start=None) -> None:
        self.cwd = str(cwd)
        self.km = None
        self.reports = 0
        # Told (pid, connection file) of each kernel started, so that whoever runs this process
        # can stop the kernel if this process is killed before it can.
        self.on_start = on_start

    def _start(self, environment: dict[str, str]) -> None:
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name=KERNEL_NAME)
        # The kernel's own log (transport warnings, the interrupt it gets when it is shut down)
        # is not for the analyst's terminal, and a traceback there could quote data.
        self.km.start_kernel(cwd=self.cwd, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.on_start is not None and self.identity() is not None:
            self.on_start(self.identity())

    def prepare(self, policy_path: str, level: str, warehouse: str) -> None:
        """A clean slate for the next report: nothing of the last one, the guard set for this one."""
        environment = kernel_environment(policy_path, level, warehouse)
        if self.km is None or not self.km.is_alive():
            self.close()
            self._start(environment)
        code = (
            "get_ipython().reset(new_session=False)\n"
            "import workbench.settings as _wb_settings, workbench.guard as _wb_guard\n"
            f"_wb_settings.set_for_process('fill', policy={policy_path!r}, level={level!r}, warehouse={warehouse!r})\n"
            f"_wb_guard.activate(policy={policy_path!r}, level={level!r})\n"
            "del _wb_settings, _wb_guard\n"
        )
        client = self.km.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=120)
            reply = client.execute_interactive(code, timeout=120, output_hook=lambda _message: None)
        except Exception as exc:  # noqa: BLE001 - a kernel that cannot be prepared is not used
            self.close()
            raise KernelError(f"the guarded kernel could not be prepared ({type(exc).__name__})") from None
        finally:
            client.stop_channels()
        if reply["content"]["status"] != "ok":
            self.close()
            raise KernelError("the guarded kernel could not be prepared for the next report")
        self.reports += 1

    def identity(self) -> tuple[int, str] | None:
        """The kernel process's pid and its connection file, while it runs (None otherwise)."""
        try:
            return self.km.provisioner.process.pid, self.km.connection_file
        except AttributeError:
            return None

    def close(self) -> None:
        if self.km is not None:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.km = None
