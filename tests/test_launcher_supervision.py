"""`checkin up` supervision: a stop that a second (and third) signal cannot break, a child that
died started again with back-off (never a busy loop), and children that go with a launcher
killed outright. The slow tests run the real launcher; the others its parts in this process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import redis

from checkin import launcher as launcher_module
from checkin.launcher import STOP_SIGNALS, Child, Launcher, backoff_delay
from checkin.platform.settings import Settings
from tests.support.processes import running
from tests.support.values import free_port
from tests.support.waiting import wait_until


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except Exception:
        return 0


@dataclass
class Up:
    """One `checkin up` in its own session (so signals reach it as make's or a terminal's process
    group would) with its own data dir, ports and private redis-server; its output goes to a file."""

    data_dir: Path
    out_path: Path
    ingest_port: int = field(default_factory=free_port)
    tracing_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    seen: dict[tuple[int, float], psutil.Process] = field(default_factory=dict)

    def start(self) -> None:
        env = {
            **os.environ,
            "CHECKIN_DATA_DIR": str(self.data_dir),
            "CHECKIN_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CHECKIN_INGEST_PORT": str(self.ingest_port),
            "CHECKIN_TRACING_PORT": str(self.tracing_port),
            "CHECKIN_INGEST_WORKERS": "1",
        }
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "checkin.cli", "up"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        """The launcher's descendants now; every one ever seen is remembered in `seen`."""
        assert self.proc is not None
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for p in found:
            try:
                self.seen.setdefault((p.pid, p.create_time()), p)
            except psutil.NoSuchProcess:
                pass
        return found

    def child(self, word: str) -> psutil.Process | None:
        for p in self.descendants():
            try:
                if p.ppid() == self.pid and word in " ".join(p.cmdline()):
                    return p
            except psutil.NoSuchProcess:
                pass
        return None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            assert self.proc is not None
            assert self.proc.poll() is None, f"launcher ended while waiting for {what}:\n{self.output}"
            time.sleep(0.02)
        raise AssertionError(f"no {what} within {timeout_s} s:\n{self.output}")

    def wait_exit(self, timeout_s: float) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            self.descendants()
            if time.monotonic() > deadline:
                raise AssertionError(f"launcher still running {timeout_s} s after the signal:\n{self.output}")
            time.sleep(0.05)
        return self.proc.returncode

    def left_running(self, settle_s: float = 3.0) -> list[str]:
        """Processes of this launcher still running: every descendant it ever had, and any process
        whose environment names this data dir (an orphan the snapshots missed)."""
        deadline = time.monotonic() + settle_s
        while True:
            alive = [p for p in self.seen.values() if running(p)]
            alive += [p for p in self.by_environment() if p not in alive]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        shown = []
        for p in alive:
            try:
                shown.append(f"{p.pid} {' '.join(p.cmdline())}")
            except psutil.NoSuchProcess:
                pass
        return shown

    def kill_everything(self) -> None:
        """Cleanup after a failed test: nothing of this launcher may outlive it."""
        self.descendants()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for p in [*self.seen.values(), *self.by_environment()]:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass

    def by_environment(self) -> list[psutil.Process]:
        """Running processes whose environment names this launcher's data dir."""
        found = []
        for p in psutil.process_iter():
            try:
                if (
                    p.pid != os.getpid()
                    and p.status() != psutil.STATUS_ZOMBIE
                    and p.environ().get("CHECKIN_DATA_DIR") == str(self.data_dir)
                ):
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return found


@contextmanager
def launcher(data_dir: Path, out_path: Path) -> Iterator[Up]:
    up = Up(data_dir, out_path)
    up.start()
    try:
        yield up
    finally:
        up.kill_everything()


# Where each round's signals land: as soon as the private redis-server exists, or once both
# services are spawned and up to 2 s later (while they import and granian starts); how far apart
# the signals are; and which signal (make forwards the one it got, a terminal sends SIGINT to the
# whole foreground group, a closed terminal SIGHUP). Later moments work as well but cost the
# services' whole start-up (see the stop after a restart below, and docs/RELIABILITY.md).
ROUNDS: list[tuple[str, float, float, int, signal.Signals]] = [
    # (trigger, delay after it, gap between signals, signals sent, signal)
    ("redis", 0.0, 0.0, 2, signal.SIGTERM),
    ("services", 0.0, 0.0, 2, signal.SIGTERM),
    ("services", 0.0, 0.002, 3, signal.SIGINT),
    ("services", 0.2, 0.005, 2, signal.SIGTERM),
    ("services", 0.4, 0.0, 2, signal.SIGINT),
    ("services", 0.6, 0.02, 3, signal.SIGTERM),
    ("services", 0.8, 0.001, 2, signal.SIGHUP),
    ("services", 1.0, 0.05, 2, signal.SIGINT),
    ("services", 1.5, 0.0, 2, signal.SIGTERM),
    ("services", 2.0, 0.01, 3, signal.SIGINT),
]


@pytest.mark.slow
def test_repeated_signals_while_stopping_leave_no_process(tmp_path: Path) -> None:
    for n, (trigger, delay, gap, count, sig) in enumerate(ROUNDS):
        with launcher(tmp_path / "var", tmp_path / f"up-{n}.out") as up:
            if trigger == "redis":
                up.wait_for("redis-server", lambda: up.child("redis-server") is not None, 60)
            else:
                up.wait_for(
                    "both services",
                    lambda: up.child("serve-ingest") is not None and up.child("serve-tracing") is not None,
                    60,
                )
            time.sleep(delay)
            up.descendants()
            for i in range(count):
                if i:
                    time.sleep(gap)
                os.killpg(up.pid, sig)
            code = up.wait_exit(45)
            what = f"round {n} ({sig.name} x{count} {gap * 1000:.0f} ms apart, {delay} s after {trigger})"
            assert code == 0, f"{what}: exit {code}\n{up.output}"
            assert "stopped." in up.output, f"{what}:\n{up.output}"
            left = up.left_running()
            assert left == [], f"{what}: left running {left}\n{up.output}"


@pytest.mark.slow
def test_a_killed_child_is_restarted_with_back_off(tmp_path: Path) -> None:
    with launcher(tmp_path / "var", tmp_path / "up.out") as up:
        up.wait_for("ready.", lambda: "ready." in up.output, 120)
        ingest_url = f"http://127.0.0.1:{up.ingest_port}/healthz"
        assert _get(ingest_url) == 200

        for n, delay in enumerate((1, 2)):
            ingest = up.child("serve-ingest")
            assert ingest is not None
            up.descendants()
            ingest.kill()
            message = f"ingest API exited with code -9; restarting in {delay} s"
            up.wait_for(f"'{message}'", lambda: message in up.output, 10)
            up.wait_for("ingest /healthz answering again", lambda: _get(ingest_url) == 200, 90)
            up.wait_for(
                "the launcher saying ingest is back", lambda: up.output.count("ingest API is back") > n, 10
            )
            new = up.child("serve-ingest")
            assert new is not None and new.pid != ingest.pid
        assert len(re.findall(r"ingest API \(pid \d+\) started again", up.output)) == 2, up.output
        assert "restarting in" in (up.data_dir / "logs" / "ingest.log").read_text(errors="replace")

        # the private redis-server too: started again on its port, with its password and its data
        password = json.loads((up.data_dir / "secrets.json").read_text())["redis_password"]
        client = redis.Redis(port=up.redis_port, password=password, socket_timeout=2)
        client.set("launcher-test", "kept")
        redis_server = up.child("redis-server")
        assert redis_server is not None
        redis_server.kill()
        up.wait_for(
            "redis restart",
            lambda: "private redis-server exited with code -9; restarting in 1 s" in up.output,
            10,
        )
        up.wait_for(
            "the launcher saying redis is back", lambda: "private redis-server is back" in up.output, 30
        )
        assert client.get("launcher-test") == b"kept"
        client.close()
        up.wait_for("ingest /healthz with Redis back", lambda: _get(ingest_url) == 200, 30)

        # and the stop after all this still takes everything with it, with signals repeated
        up.descendants()
        os.killpg(up.pid, signal.SIGINT)
        os.killpg(up.pid, signal.SIGINT)
        assert up.wait_exit(45) == 0, up.output
        assert "stopped." in up.output
        assert up.left_running() == []
        assert _get(ingest_url) == 0


@pytest.mark.slow
def test_children_go_when_the_launcher_is_killed(tmp_path: Path) -> None:
    with launcher(tmp_path / "var", tmp_path / "up.out") as up:
        up.wait_for(
            "both services",
            lambda: up.child("serve-ingest") is not None and up.child("serve-tracing") is not None,
            60,
        )
        time.sleep(1.0)
        up.descendants()
        os.kill(up.pid, signal.SIGKILL)
        assert up.wait_exit(10) == -signal.SIGKILL
        assert up.left_running(settle_s=30) == []


# --- the parts, in this process ---------------------------------------------------------------


def test_back_off_doubles_to_30_s() -> None:
    assert [backoff_delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_delay(10_000) == 30


def _child(tmp_path: Path, cmd: list[str]) -> Child:
    proc = subprocess.Popen(cmd, start_new_session=True)
    return Child("t", "test child", cmd, proc, log_path=tmp_path / "t.log", capture_output=False)


def test_a_child_that_keeps_dying_is_started_again_with_back_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    up = Launcher(Settings(data_dir=str(tmp_path)))
    child = _child(tmp_path, ["true"])
    child.proc.wait()
    now = child.started_at
    waits = []
    for _ in range(7):
        up.tend(child, now)  # dead after a moment: a restart is scheduled, not done
        assert child.restart_at is not None
        waits.append(round(child.restart_at - now))
        up.tend(child, child.restart_at - 0.01)  # not before its time
        assert child.restart_at is not None
        now = child.restart_at
        up.tend(child, now)  # started again
        assert child.restart_at is None
        child.proc.wait()
        child.started_at = now
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    # one that ran a while before it died starts the back-off over
    up.tend(child, now + launcher_module.STABLE_S)
    assert child.restart_at == now + launcher_module.STABLE_S + 1
    err = capsys.readouterr().err
    assert "test child exited with code 0; restarting in 1 s" in err
    assert "test child exited with code 0; restarting in 30 s" in err
    log = (tmp_path / "t.log").read_text()
    assert log.count("checkin up: test child exited with code 0") == 8
    assert log.count("started again") == 7


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher_module, "GRACE_S", 0.5)
    up = Launcher(Settings(data_dir=str(tmp_path)))
    ready = tmp_path / "trap-set"
    up.children = [
        _child(tmp_path, ["sleep", "60"]),
        _child(tmp_path, ["sh", "-c", f"trap '' TERM; sleep 60 & touch {ready}; sleep 60; wait"]),
    ]
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "the shell did not start"
        time.sleep(0.01)
    grandchildren = psutil.Process(up.children[1].proc.pid).children()
    assert grandchildren
    started = time.monotonic()
    up.stop()
    assert time.monotonic() - started < 10  # the 0.5 s grace, then SIGKILL: not a 60 s sleep
    assert [c.proc.poll() for c in up.children] == [-signal.SIGTERM, -signal.SIGKILL]
    # the rest of its process group went with it (the sleeps it started)
    assert wait_until(lambda: not any(running(p) for p in grandchildren), timeout=5)


def test_signals_while_stopping_only_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three signals in this very process: the first asks for the stop, the others land in the
    middle of it; the stop runs to its end, the child is gone and the run answers 0."""
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    up = Launcher(Settings(data_dir=str(tmp_path)))
    real_stop = up.stop

    def run_until_signalled() -> int:
        up.children.append(_child(tmp_path, ["sleep", "60"]))
        os.kill(os.getpid(), signal.SIGTERM)
        up.supervise()
        return 1

    def stop_under_fire() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        real_stop()

    monkeypatch.setattr(up, "_run", run_until_signalled)
    monkeypatch.setattr(up, "stop", stop_under_fire)
    try:
        assert up.run() == 0
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert up.children[0].proc.poll() == -signal.SIGTERM
    assert up._signals == 3
