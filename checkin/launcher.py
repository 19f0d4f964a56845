"""``checkin up``: Redis check (or a private redis-server), then both services, kept running.

Children run in their own process groups. A child that dies (the ingest API, the tracing
service, the private redis-server) is started again after a back-off: 1 s, doubling to 30 s
while it keeps dying, back to 1 s once it has run for a minute. SIGINT, SIGTERM and SIGHUP only
set a flag, so a second or third signal (make forwards the one it got; a terminal sends Ctrl-C to
the whole foreground group) cannot cut the stop short: every child gets SIGTERM, then SIGKILL
after a grace period, and the private Redis goes last. Should the launcher itself be killed
outright, its children get SIGTERM from the kernel (Linux parent-death signal).
"""

from __future__ import annotations

import ctypes
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

import msgspec

from checkin.platform.redis_conn import has_password, reachable, redacted, wait_until_reachable, with_password
from checkin.platform.secrets import SECRETS_FILE, make_data_dir, private_redis_password
from checkin.platform.settings import Settings
from checkin.platform.sms import outbox_path

GRACE_S = 20.0  # services: SIGTERM, then SIGKILL after this long
REDIS_GRACE_S = 15.0  # the private redis-server, stopped after the services
KILL_WAIT_S = 5.0  # after SIGKILL
NUDGE_S = 3.0  # a service still stopping gets SIGTERM again this often
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0  # a child that ran this long before it died starts the back-off over
POLL_S = 0.2  # how often the launcher looks at its children (and at the stop flag)
HEALTH_EVERY_S = 1.0  # a child started again is asked for its health this often until it answers
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def backoff_delay(failures: int) -> float:
    """Seconds to wait before starting a child again after ``failures`` quick deaths in a row."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * (1 << min(failures, 16)))


class StopRequested(Exception):
    """A stop signal arrived. Raised by the launcher at its own checkpoints, never by the signal
    handler, so it cannot land in the middle of a spawn or of the stop itself."""


@dataclass
class Child:
    name: str  # the log file's name: ingest, tracing, redis
    label: str  # as the console says it: "ingest API"
    cmd: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path | None = None
    env: dict[str, str] | None = None
    capture_output: bool = True  # stdout and stderr into log_path (redis-server writes its own)
    health: Callable[[], bool] | None = None
    started_at: float = field(default_factory=time.monotonic)
    failures: int = 0  # deaths in a row, each before it had run STABLE_S
    restart_at: float | None = None  # set while it is dead: when to start it again
    back_since: float | None = None  # started again and not yet healthy: since when
    next_health_check: float = 0.0
    group_cleared: bool = False  # its process group was SIGKILLed after it died


@dataclass
class Launcher:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    private_redis: Child | None = None
    _stopping: bool = False
    _stop_signal: int | None = None
    _signals: int = 0

    # --- signals ----------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only records: no exception, no output (a print here could interrupt a print under way).
        self._signals += 1
        if self._stop_signal is None:
            self._stop_signal = signum

    @property
    def stop_requested(self) -> bool:
        return self._stop_signal is not None

    def _checkpoint(self) -> None:
        if self._stop_signal is not None:
            raise StopRequested

    # --- processes --------------------------------------------------------------
    def _popen(
        self, child_cmd: list[str], env: dict[str, str] | None, log_path: Path | None
    ) -> subprocess.Popen[bytes]:
        # preexec_fn is safe here: the launcher runs no threads
        preexec = _exit_with(os.getpid())
        if log_path is None:
            return subprocess.Popen(child_cmd, env=env, start_new_session=True, preexec_fn=preexec)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                child_cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )

    # --- Redis ----------------------------------------------------------------
    def ensure_redis(self) -> Settings:
        """Use CHECKIN_REDIS_URL if it answers, else start a private redis-server that requires a
        password generated into the secrets file (the services get the URL with it)."""
        url = self.settings.redis_url
        if reachable(url):
            return self.settings
        parsed = urlparse(url.replace("+cluster", ""))
        port = parsed.port or 6379
        host = parsed.hostname or "127.0.0.1"
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(
                f"Redis at {url} is unreachable and is not local; start it or fix CHECKIN_REDIS_URL"
            )
        password = private_redis_password(self.settings.data_path)
        private_url = url if has_password(url) else with_password(url, password)
        self.settings = msgspec.structs.replace(self.settings, redis_url=private_url)
        if reachable(private_url):  # ours, left running by an earlier start
            _say(f"  redis     private redis-server on 127.0.0.1:{port} (already running)")
            return self.settings
        redis_dir = self.settings.data_path / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        log = (self.settings.data_path / "logs").resolve()
        log.mkdir(parents=True, exist_ok=True)
        cmd = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(redis_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.settings.redis_appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--requirepass",
            parsed.password or password,
            "--logfile",
            str(log / "redis.log"),
        ]
        try:
            proc = self._popen(cmd, None, None)
        except FileNotFoundError:
            raise SystemExit(
                "Redis is unreachable and redis-server is not on the PATH; install redis"
            ) from None
        self.private_redis = Child(
            "redis",
            "private redis-server",
            cmd,
            proc,
            log_path=log / "redis.log",
            capture_output=False,
            health=lambda: reachable(private_url, 0.5),
        )
        if not wait_until_reachable(private_url, 15):
            self.stop()
            raise SystemExit(f"private redis-server on port {port} did not start; see {log / 'redis.log'}")
        _say(
            f"  redis     private redis-server on 127.0.0.1:{port} (AOF {self.settings.redis_appendfsync}), "
            f"data in {redis_dir}, password in {self.settings.data_path / SECRETS_FILE}"
        )
        return self.settings

    # --- services ---------------------------------------------------------------
    def spawn(self, name: str, label: str, args: list[str], health_url: str) -> Child:
        env = {**os.environ, **self.settings.to_env()}
        log_path = self.settings.data_path / "logs" / f"{name}.log"
        cmd = [sys.executable, "-m", "checkin.cli", *args]
        proc = self._popen(cmd, env, log_path)
        child = Child(name, label, cmd, proc, log_path=log_path, env=env, health=lambda: answers(health_url))
        self.children.append(child)
        return child

    def wait_healthy(self, url: str, child: Child, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._checkpoint()
            if child.proc.poll() is not None:
                return False
            if answers(url, 2):
                return True
            time.sleep(0.3)
        return False

    # --- supervision ------------------------------------------------------------
    def supervised(self) -> list[Child]:
        return [*self.children, *([self.private_redis] if self.private_redis is not None else [])]

    def supervise(self) -> None:
        """Until a stop signal: start again every child that died, each after its back-off."""
        while True:
            self._checkpoint()
            for child in self.supervised():
                self.tend(child, time.monotonic())
                self._checkpoint()
            time.sleep(POLL_S)

    def tend(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                self._start_again(child)
            return
        code = child.proc.poll()
        if code is None:
            if child.back_since is not None and child.health is not None and now >= child.next_health_check:
                if child.health():
                    took = time.monotonic() - child.back_since
                    _say(f"{_clock()} {child.label} is back (healthy {took:.1f} s after it started again)")
                    child.back_since = None
                else:
                    child.next_health_check = time.monotonic() + HEALTH_EVERY_S
            return
        self._clear_group(child)
        if now - child.started_at >= STABLE_S:
            child.failures = 0
        delay = backoff_delay(child.failures)
        child.failures += 1
        child.restart_at = now + delay
        message = f"{child.label} exited with code {code}; restarting in {delay:g} s"
        _say(f"{_clock()} {message}", err=True)
        _note(child, message)

    def _start_again(self, child: Child) -> None:
        try:
            proc = self._popen(child.cmd, child.env, child.log_path if child.capture_output else None)
        except OSError as exc:
            delay = backoff_delay(child.failures)
            child.failures += 1
            child.restart_at = time.monotonic() + delay
            message = f"{child.label} could not be started ({exc}); trying again in {delay:g} s"
            _say(f"{_clock()} {message}", err=True)
            _note(child, message)
            return
        child.proc = proc
        child.started_at = child.back_since = time.monotonic()
        child.next_health_check = child.started_at + HEALTH_EVERY_S
        child.restart_at = None
        child.group_cleared = False
        message = f"{child.label} (pid {proc.pid}) started again"
        _say(f"{_clock()} {message}")
        _note(child, message)

    def _clear_group(self, child: Child) -> None:
        """SIGKILL what is left of a dead child's process group (granian workers, a Redis fork)."""
        if not child.group_cleared:
            _signal_group(child.proc, signal.SIGKILL)
            child.group_cleared = True

    # --- stop -------------------------------------------------------------------
    def stop(self) -> None:
        """SIGTERM to every service, SIGKILL after GRACE_S; then the private Redis the same way.
        Runs once; signals meanwhile are only counted (see ``_on_signal``)."""
        if self._stopping:
            return
        self._stopping = True
        self._terminate(self.children, GRACE_S, nudge_every_s=NUDGE_S)
        if self.private_redis is not None:
            self._terminate([self.private_redis], REDIS_GRACE_S, nudge_every_s=None)

    def _terminate(self, children: list[Child], grace_s: float, nudge_every_s: float | None) -> None:
        """SIGTERM to each live child's group, repeated every ``nudge_every_s`` while it runs: a
        granian server told to stop while it starts its workers waits for a worker that missed the
        first SIGTERM (it came before the worker's own handlers), and the next one reaches it."""
        live = [c for c in children if c.restart_at is None and c.proc.poll() is None]
        for child in live:
            _signal_group(child.proc, signal.SIGTERM)
        start = time.monotonic()
        next_nudge = start + (nudge_every_s or grace_s)
        running = live
        while running and time.monotonic() < start + grace_s:
            time.sleep(0.05)
            running = [c for c in running if c.proc.poll() is None]
            if running and nudge_every_s is not None and time.monotonic() >= next_nudge:
                for child in running:
                    _signal_group(child.proc, signal.SIGTERM)
                next_nudge += nudge_every_s
        for child in running:
            if child.proc.poll() is not None:
                continue
            _say(f"{child.label} did not stop within {grace_s:g} s; killing it", err=True)
            _signal_group(child.proc, signal.SIGKILL)
            try:
                child.proc.wait(timeout=KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                _say(f"{child.label} (pid {child.proc.pid}) did not die after SIGKILL", err=True)
        for child in children:
            if child.proc.poll() is not None:
                self._clear_group(child)

    # --- run --------------------------------------------------------------------
    def run(self) -> int:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        try:
            return self._run()
        except StopRequested:
            return 0
        finally:
            if self.stop_requested:
                _say("\nstopping...")
            self.stop()
            _say("stopped.")

    def _run(self) -> int:
        s = self.settings
        make_data_dir(s.data_path)
        _say(f"venue-checkin: data in {s.data_path}")
        self._checkpoint()
        self.ensure_redis()
        self._checkpoint()
        host = "127.0.0.1" if s.bind in ("0.0.0.0", "::") else s.bind  # noqa: S104 - display only
        ingest_url = f"http://{host}:{s.ingest_port}"
        tracing_url = f"http://{host}:{s.tracing_port}"
        ingest = self.spawn("ingest", "ingest API", ["serve-ingest"], ingest_url + "/healthz")
        tracing = self.spawn(
            "tracing",
            "tracing service",
            ["serve-tracing", "--workers", "all"],
            tracing_url + "/healthz",
        )
        for url, child in ((ingest_url, ingest), (tracing_url, tracing)):
            if not self.wait_healthy(url + "/healthz", child, 90):
                _say(
                    f"error: {child.name} did not become healthy; last log lines of {child.log_path}:",
                    err=True,
                )
                if child.log_path and child.log_path.exists():
                    tail = child.log_path.read_text(errors="replace").splitlines()[-20:]
                    _say("\n".join(tail), err=True)
                return 1
        _say(f"  ingest    {ingest_url}  (API, phone page /v/..., operator page /operator)")
        _say(f"  tracing   {tracing_url}  (API, console {tracing_url}/console)")
        _say(f"  admin key {s.admin_key}")
        if s.sms_gateway == "outbox":
            _say(f"  sms       {outbox_path(s)}  (codes and notices, a JSON line each)")
        else:
            _say(f"  sms       {s.sms_gateway}")
        _say("  logs      " + str(s.data_path / "logs"))
        _say("ready. Ctrl-C stops everything.")
        self.supervise()
        return 0


def _say(text: str, err: bool = False) -> None:
    """Print and flush; a closed terminal or pipe must not stop the launcher from stopping."""
    try:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _note(child: Child, message: str) -> None:
    """The launcher's word on a child, in that child's log."""
    if child.log_path is None:
        return
    try:
        with open(child.log_path, "a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} checkin up: {message}\n")
    except OSError:
        pass


def answers(url: str, timeout_s: float = 1.0) -> bool:
    """The URL answers 200 within ``timeout_s`` (a child's health; the long runs ask the same)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - local health URL
            return bool(resp.status == 200)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return False


def _exit_with(parent: int) -> Callable[[], None] | None:
    """For Popen's preexec_fn: on Linux the child gets SIGTERM when the launcher dies, however it
    dies (even SIGKILL, which no handler sees), so no service outlives it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the launcher died before the line above
            os._exit(1)

    return preexec


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def summary(settings: Settings) -> dict[str, object]:
    """The settings to show: secrets left out, passwords in URLs hidden."""
    out = {k: v for k, v in msgspec.structs.asdict(settings).items() if k not in ("admin_key", "keyring")}
    for name in ("redis_url", "clickhouse_dsn"):
        if isinstance(out.get(name), str):
            out[name] = redacted(str(out[name]))
    return out
