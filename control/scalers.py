"""Scalers: the backends that turn a decision into running detect workers.

``local`` runs ``mugpos worker --role detect`` processes on this host, ``kubernetes`` sets the
replica count of a Deployment through its scale subresource, ``none`` only records decisions.
``GuardedScaler`` wraps any of them so that a failing backend (API unreachable, permission
denied) is logged, counted and retried, and never raises into the control loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from mugpos.control.policy import ConfigError

log = logging.getLogger(__name__)

ScalerKind = Literal["none", "local", "kubernetes"]
SCALER_KINDS: tuple[ScalerKind, ...] = ("none", "local", "kubernetes")

#: The worker a local scaler starts by default: the detect role of this very installation.
DEFAULT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "mugpos.cli", "worker", "--role", "detect")


class ScalerError(RuntimeError):
    """A scaler backend could not read or change the worker count; the message names the backend."""


@runtime_checkable
class Scaler(Protocol):
    """A backend that runs detect workers. ``current`` counts the workers asked for (starting included)."""

    name: str

    async def current(self) -> int: ...

    async def scale(self, n: int) -> None: ...


def _check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"worker count must be an integer >= 0, got {n!r}")
    return n


class NoneScaler:
    """Decisions only: remembers the last count asked for, runs nothing."""

    name = "none"

    def __init__(self, initial: int = 0) -> None:
        self._n = _check_count(initial)

    async def current(self) -> int:
        return self._n

    async def scale(self, n: int) -> None:
        self._n = _check_count(n)


# -- local processes ---------------------------------------------------------------------------------


def _start_ticks(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot), or ``None`` when gone or a zombie.

    Stored next to each PID so that a PID reused by an unrelated process is never signalled.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _reap(pid: int) -> int | None:
    """Collect ``pid``'s exit status if it is our child and has exited (avoids zombies)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


@dataclass(frozen=True)
class _Worker:
    slot: int
    pid: int
    ticks: int | None
    started_at: float

    def alive(self) -> bool:
        _reap(self.pid)
        ticks = _start_ticks(self.pid)
        return ticks is not None and (self.ticks is None or ticks == self.ticks)


class LocalScaler:
    """Starts and stops detect worker processes on this host, one PID file per worker.

    Each worker gets a slot number; ``{slot}`` and ``{port}`` in the command and in ``env`` values
    are replaced by it and by ``base_port + slot`` (workers on one host need distinct web ports).
    Workers run in their own session, so a crash of the controller does not kill them: the next
    controller finds their PID files and stops them (``start`` cleans orphans). Stopping is graceful:
    SIGTERM to the worker's process group, SIGKILL only after ``stop_timeout_s``.
    """

    name = "local"

    def __init__(
        self,
        state_dir: str | Path,
        command: Sequence[str] = DEFAULT_COMMAND,
        *,
        env: Mapping[str, str] | None = None,
        base_port: int | None = None,
        stop_timeout_s: float = 30.0,
        cwd: str | Path | None = None,
    ) -> None:
        if not command:
            raise ConfigError("the local scaler needs a worker command")
        if stop_timeout_s <= 0:
            raise ConfigError(f"stop_timeout_s must be > 0, got {stop_timeout_s}")
        self.state_dir = Path(state_dir)
        self.command = tuple(command)
        self.env = dict(env or {})
        self.base_port = base_port
        self.stop_timeout_s = stop_timeout_s
        self.cwd = Path(cwd) if cwd is not None else None
        self.crashed = 0  # workers found dead without being asked to stop
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._started = False

    # state files
    def _file(self, slot: int) -> Path:
        return self.state_dir / f"worker-{slot}.json"

    def _load(self) -> list[_Worker]:
        workers = []
        for path in sorted(self.state_dir.glob("worker-*.json")):
            try:
                data = json.loads(path.read_text())
                workers.append(
                    _Worker(int(data["slot"]), int(data["pid"]), data.get("ticks"), float(data["started_at"]))
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable worker state file %s: %r", path, exc)
                path.unlink(missing_ok=True)
        return sorted(workers, key=lambda w: w.slot)

    async def start(self) -> int:
        """Create the state folder and stop workers left by an earlier controller; returns how many."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._started = True
        orphans = [w for w in self._load() if w.pid not in self._children]
        live = [w for w in orphans if w.alive()]
        for w in orphans:
            if w not in live:
                self._file(w.slot).unlink(missing_ok=True)
        if live:
            log.warning("stopping %d orphaned worker(s) from an earlier run: pids %s", len(live), [w.pid for w in live])
            await self._stop(live)
        return len(live)

    async def _ensure_started(self) -> None:
        if not self._started:
            await self.start()

    def pids(self) -> dict[int, int]:
        """Slot -> PID of the live workers."""
        return {w.slot: w.pid for w in self._live()}

    def _live(self) -> list[_Worker]:
        live = []
        for w in self._load():
            if w.alive():
                live.append(w)
                continue
            child = self._children.pop(w.pid, None)
            code = child.poll() if child is not None else None
            self.crashed += 1
            log.warning("detect worker slot %d (pid %d) exited on its own (code %s)", w.slot, w.pid, code)
            self._file(w.slot).unlink(missing_ok=True)
        return live

    async def current(self) -> int:
        await self._ensure_started()
        return len(self._live())

    async def scale(self, n: int) -> None:
        _check_count(n)
        await self._ensure_started()
        live = self._live()
        if n > len(live):
            used = {w.slot for w in live}
            free = (s for s in range(n + len(used)) if s not in used)
            for _ in range(n - len(live)):
                self._spawn(next(free))
        elif n < len(live):
            await self._stop(live[n:])  # newest slots first

    def _spawn(self, slot: int) -> None:
        port = None if self.base_port is None else self.base_port + slot
        values = {"slot": str(slot), "port": "" if port is None else str(port)}
        argv = [part.format(**values) for part in self.command]
        env = dict(os.environ)
        env.update({k: v.format(**values) for k, v in self.env.items()})
        if port is not None:
            env["MUGPOS_WEB_PORT"] = str(port)  # one port per worker on this host, whatever the parent had
        log_path = self.state_dir / f"worker-{slot}.log"
        with log_path.open("ab") as out:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,  # own process group: SIGTERM reaches its children, survives our crash
            )
        self._children[child.pid] = child
        state = {
            "slot": slot,
            "pid": child.pid,
            "ticks": _start_ticks(child.pid),
            "started_at": time.time(),
            "argv": argv,
        }
        tmp = self._file(slot).with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self._file(slot))
        log.info("started detect worker slot %d: pid %d (%s)", slot, child.pid, log_path)

    async def _stop(self, workers: Sequence[_Worker]) -> None:
        for w in workers:
            self._signal(w, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        pending = list(workers)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            pending = [w for w in pending if w.alive()]
        for w in pending:
            log.warning(
                "worker slot %d (pid %d) ignored SIGTERM for %g s: killing it", w.slot, w.pid, self.stop_timeout_s
            )
            self._signal(w, signal.SIGKILL)
        while any(w.alive() for w in pending):
            await asyncio.sleep(0.02)
        for w in workers:
            child = self._children.pop(w.pid, None)
            if child is not None:
                child.wait()
            self._file(w.slot).unlink(missing_ok=True)
            log.info("stopped detect worker slot %d (pid %d)", w.slot, w.pid)

    @staticmethod
    def _signal(w: _Worker, sig: int) -> None:
        if not w.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(w.pid) == w.pid:
                os.killpg(w.pid, sig)
            else:
                os.kill(w.pid, sig)

    async def close(self) -> None:
        """Stop every worker this state folder tracks."""
        await self.scale(0)


# -- kubernetes ----------------------------------------------------------------------------------------


class KubernetesScaler:
    """Sets ``spec.replicas`` of a Deployment through its scale subresource (``AppsV1Api``).

    Auth is in-cluster when running in a pod (service account), else the kubeconfig. The official
    ``kubernetes`` client is imported on first use only, so the rest of mugpos does not need it.
    Its calls are blocking; they run in a thread. ``api`` injects a ready ``AppsV1Api``-like object.
    """

    name = "kubernetes"

    def __init__(
        self,
        deployment: str,
        namespace: str = "default",
        *,
        api: Any = None,
        kubeconfig: str | None = None,
        context: str | None = None,
    ) -> None:
        if not deployment:
            raise ConfigError("the kubernetes scaler needs a Deployment name")
        self.deployment = deployment
        self.namespace = namespace or "default"
        self.kubeconfig = kubeconfig
        self.context = context
        self._api = api

    def _client(self) -> Any:
        if self._api is not None:
            return self._api
        try:
            import kubernetes  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ScalerError(
                "the kubernetes scaler needs the official Kubernetes client: pip install kubernetes"
            ) from None
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            try:
                kubernetes.config.load_kube_config(config_file=self.kubeconfig, context=self.context)
            except Exception as exc:  # missing or invalid kubeconfig: say so in one line
                raise ScalerError(f"no in-cluster service account and no usable kubeconfig: {exc}") from None
        self._api = kubernetes.client.AppsV1Api()
        return self._api

    async def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        api = self._client()
        try:
            return await asyncio.to_thread(fn, api)
        except ScalerError:
            raise
        except Exception as exc:  # ApiException, urllib3 errors, timeouts: all mean "not applied"
            status = getattr(exc, "status", None)
            detail = f"HTTP {status}: {getattr(exc, 'reason', '')}" if status else repr(exc)
            raise ScalerError(
                f"kubernetes {what} of deployment {self.namespace}/{self.deployment} failed: {detail}"
            ) from None

    async def current(self) -> int:
        scale = await self._call(
            "read", lambda api: api.read_namespaced_deployment_scale(name=self.deployment, namespace=self.namespace)
        )
        return int(getattr(scale.spec, "replicas", 0) or 0)

    async def scale(self, n: int) -> None:
        _check_count(n)
        body = {"spec": {"replicas": n}}
        await self._call(
            "scale",
            lambda api: api.patch_namespaced_deployment_scale(
                name=self.deployment, namespace=self.namespace, body=body
            ),
        )


# -- resilience and construction ---------------------------------------------------------------------


class GuardedScaler:
    """Retries a scaler with exponential backoff; never raises (but cancellation) into the control loop.

    ``errors`` counts failed calls (each attempt), ``failures`` the operations that failed after all
    attempts; the control loop exports both and carries on with the next decision.
    """

    def __init__(
        self,
        inner: Scaler,
        *,
        attempts: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 5.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ConfigError(f"attempts must be >= 1, got {attempts}")
        self.inner = inner
        self.name = inner.name
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self.errors = 0
        self.failures = 0
        self.last_error: str | None = None

    async def _try(self, what: str, fn: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        def failed(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            self.errors += 1
            self.last_error = (str(exc) or repr(exc)) if exc is not None else None
            log.warning(
                "%s scaler %s failed (attempt %d/%d): %s", self.name, what, state.attempt_number, self.attempts, exc
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),  # not CancelledError: a cancelled loop stops at once
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            sleep=self._sleep,
            after=failed,
            reraise=True,
        )

        async def call() -> Any:  # tenacity awaits coroutine functions only, not lambdas returning a coroutine
            return await fn()

        try:
            return True, await retrying(call)
        except Exception:  # any backend failure is reported (counted and logged above), never propagated
            self.failures += 1
            return False, None

    async def current(self) -> int | None:
        """The worker count, or ``None`` when the backend did not answer."""
        ok, value = await self._try("read", self.inner.current)
        return int(value) if ok else None

    async def apply(self, n: int) -> bool:
        """Ask for ``n`` workers; ``True`` when the backend accepted it."""
        ok, _ = await self._try(f"scale to {n}", lambda: self.inner.scale(n))
        return ok


def make_scaler(
    kind: str,
    *,
    state_dir: str | Path = ".run/workers",
    command: Sequence[str] = DEFAULT_COMMAND,
    base_port: int | None = None,
    deployment: str = "mugpos-detect",
    namespace: str = "default",
    env: Mapping[str, str] | None = None,
) -> Scaler:
    """The scaler named ``kind`` (``MUGPOS_SCALER``); an unknown name fails with the valid ones."""
    if kind == "none":
        return NoneScaler()
    if kind == "local":
        return LocalScaler(state_dir, command, base_port=base_port, env=env)
    if kind == "kubernetes":
        return KubernetesScaler(deployment, namespace)
    raise ConfigError(f"unknown scaler {kind!r}: MUGPOS_SCALER must be one of {', '.join(SCALER_KINDS)}")
