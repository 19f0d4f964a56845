"""``checkin up``: Redis check (or a private redis-server), then both services.

Children run in their own process groups; SIGINT/SIGTERM stops every child
(SIGTERM, then SIGKILL after a grace period) and the private Redis, so nothing
is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

import msgspec

from checkin.platform.redis_conn import has_password, reachable, redacted, wait_until_reachable, with_password
from checkin.platform.secrets import SECRETS_FILE, make_data_dir, private_redis_password
from checkin.platform.settings import TRACING_WORKERS, Settings
from checkin.platform.sms import outbox_path

GRACE_S = 20.0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path | None = None


@dataclass
class Launcher:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    private_redis: Child | None = None
    _stopping: bool = False

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
            print(f"  redis     private redis-server on 127.0.0.1:{port} (already running)", flush=True)
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
            proc = subprocess.Popen(cmd, start_new_session=True)
        except FileNotFoundError:
            raise SystemExit(
                "Redis is unreachable and redis-server is not on the PATH; install redis"
            ) from None
        self.private_redis = Child("redis", proc)
        if not wait_until_reachable(private_url, 15):
            self.stop()
            raise SystemExit(f"private redis-server on port {port} did not start; see {log / 'redis.log'}")
        print(
            f"  redis     private redis-server on 127.0.0.1:{port} (AOF {self.settings.redis_appendfsync}), "
            f"data in {redis_dir}, password in {self.settings.data_path / SECRETS_FILE}",
            flush=True,
        )
        return self.settings

    # --- services ---------------------------------------------------------------
    def spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Child:
        env = {**os.environ, **self.settings.to_env(), **(extra_env or {})}
        logs = self.settings.data_path / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        out = open(log_path, "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "checkin.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def wait_healthy(self, url: str, child: Child, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - local health URL
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        return False

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        procs = [c for c in self.children if c.proc.poll() is None]
        for child in procs:
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for child in procs:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(timeout=5)
        for child in self.children:  # stray grandchildren (granian workers)
            _signal_group(child.proc, signal.SIGKILL)
        if self.private_redis is not None and self.private_redis.proc.poll() is None:
            _signal_group(self.private_redis.proc, signal.SIGTERM)
            try:
                self.private_redis.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(self.private_redis.proc, signal.SIGKILL)
                self.private_redis.proc.wait(timeout=5)

    def run(self) -> int:
        s = self.settings

        def on_signal(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            make_data_dir(s.data_path)
            print(f"venue-checkin: data in {s.data_path}", flush=True)
            self.ensure_redis()
            ingest = self.spawn("ingest", ["serve-ingest"])
            tracing = self.spawn("tracing", ["serve-tracing", "--workers", ",".join(TRACING_WORKERS)])
            host = "127.0.0.1" if s.bind in ("0.0.0.0", "::") else s.bind  # noqa: S104 - display only
            ingest_url = f"http://{host}:{s.ingest_port}"
            tracing_url = f"http://{host}:{s.tracing_port}"
            for url, child in ((ingest_url, ingest), (tracing_url, tracing)):
                if not self.wait_healthy(url + "/healthz", child, 90):
                    print(
                        f"error: {child.name} did not become healthy; last log lines of {child.log_path}:",
                        file=sys.stderr,
                    )
                    if child.log_path and child.log_path.exists():
                        tail = child.log_path.read_text(errors="replace").splitlines()[-20:]
                        print("\n".join(tail), file=sys.stderr)
                    return 1
            print(f"  ingest    {ingest_url}  (API, phone page /v/..., operator page /operator)", flush=True)
            print(f"  tracing   {tracing_url}  (API, console {tracing_url}/console)", flush=True)
            print(f"  admin key {s.admin_key}", flush=True)
            if s.sms_gateway == "outbox":
                print(f"  sms       {outbox_path(s)}  (codes and notices, a JSON line each)", flush=True)
            else:
                print(f"  sms       {s.sms_gateway}", flush=True)
            print("  logs      " + str(s.data_path / "logs"), flush=True)
            print("ready. Ctrl-C stops everything.", flush=True)
            while True:
                for child in self.children:
                    code = child.proc.poll()
                    if code is not None:
                        print(
                            f"error: {child.name} exited with {code}; see {child.log_path}", file=sys.stderr
                        )
                        return 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
            return 0
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.stop()
            print("stopped.", flush=True)


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
