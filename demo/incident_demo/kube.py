"""kubectl, as the demo and the e2e tests use it: the same commands a person would type.

Everything the demo does to the cluster goes through the API server (``kubectl apply -k``,
``exec``, ``logs``, ``rollout``), so it works against any kubeconfig, not only this machine's.
People act with ``--as=<user>`` (impersonation by the admin the kubeconfig names), so the
API server sees who approved or resolved what.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from typing import Any


class KubectlError(RuntimeError):
    """A kubectl command failed; the message holds its stderr."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)}: exit {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


class Kubectl:
    """One kubeconfig, one kubectl binary."""

    def __init__(self, kubeconfig: str, binary: str = "kubectl", timeout: float = 120) -> None:
        self.kubeconfig, self.binary, self.timeout = kubeconfig, binary, timeout

    def command(self, *args: str, as_user: str | None = None) -> list[str]:
        who = [f"--as={as_user}"] if as_user else []
        return [self.binary, "--kubeconfig", self.kubeconfig, *who, *args]

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        as_user: str | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(*args, as_user=as_user),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout or self.timeout,
        )
        if check and done.returncode != 0:
            raise KubectlError(args, done.returncode, done.stderr)
        return done

    def out(self, *args: str, stdin: str | None = None, as_user: str | None = None) -> str:
        """stdout of a command that must succeed."""
        return self.run(*args, stdin=stdin, as_user=as_user).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.out(*args, "-o", "json"))

    def get(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        done = self.run("-n", namespace, "get", kind, name, "-o", "json", check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr or "not found" in done.stderr:
                return None
            raise KubectlError(("get", kind, name), done.returncode, done.stderr)
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    def exec(
        self,
        namespace: str,
        target: str,
        container: str,
        command: Sequence[str],
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl exec`` into ``target`` (a pod, or deploy/NAME); never raises on the
        command's exit code: the caller reads ``returncode``."""
        return self.run(
            "-n", namespace, "exec", target, "-c", container, "--", *command,
            check=False,
            timeout=timeout,
        )  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """A long-running kubectl (``exec`` of a load generator, a session holding a lock)."""
        return subprocess.Popen(
            self.command(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def wait_until(
    probe: Any, timeout: float, what: str, interval: float = 0.5, describe: Any = None
) -> Any:
    """Poll ``probe()`` until it returns something truthy; TimeoutError names ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except (KubectlError, subprocess.TimeoutExpired, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            detail = f"\n{describe()}" if describe else ""
            raise TimeoutError(f"{what}: not after {timeout:g}s (last: {last!r}){detail}")
        time.sleep(interval)
