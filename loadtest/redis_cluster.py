"""A real Redis Cluster (3 masters + 3 replicas) on local ports: cluster tests, failover benchmark."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    import random
    import socket

    while True:
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue


@dataclass
class LocalCluster:
    root: Path
    ports: list[int] = field(default_factory=list)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> None:
        node_dir = self.root / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--dir",
                str(node_dir),
                "--appendonly",
                "no",
                # replicas sync at once (the default waits 5 s for more replicas to share a
                # diskless transfer): a replica that never synced refuses to take over
                "--repl-diskless-sync-delay",
                "0",
                "--save",
                "",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self, masters: int = 3, replicas: int = 1) -> LocalCluster:
        self.ports = [cluster_port() for _ in range(masters * (1 + replicas))]
        try:
            for port in self.ports:
                self.start_node(port)
            for port in self.ports:
                _wait_ping(port)
            subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *[f"127.0.0.1:{p}" for p in self.ports],
                    "--cluster-replicas",
                    str(replicas),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.wait_ok()
            self.wait_replicas()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ok = 0
            for port in self.ports:
                if self.procs[port].poll() is not None:
                    ok += 1
                    continue
                try:
                    info = redis.Redis(port=port).cluster("info")
                    if info.get("cluster_state") == "ok":
                        ok += 1
                except redis.RedisError:
                    pass
            if ok == len(self.ports):
                return
            time.sleep(0.2)
        raise TimeoutError("cluster did not reach state ok")

    def wait_replicas(self, timeout_s: float = 30.0) -> None:
        """Until every live replica has its link to its master up (synced at least once)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            down = 0
            for port in self.ports:
                if self.procs[port].poll() is not None:
                    continue
                try:
                    info = redis.Redis(port=port).info("replication")
                except redis.RedisError:
                    down += 1
                    continue
                if info.get("role") == "slave" and info.get("master_link_status") != "up":
                    down += 1
                # the master streams writes to a replica only once it has marked it online
                # (after the replica's first ACK following the sync, up to a second later)
                replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
                down += sum(1 for r in replicas if r.get("state") != "online")
            if not down:
                return
            time.sleep(0.1)
        raise TimeoutError("replicas did not sync with their masters")

    def replica_lag(self, master: int) -> int:
        """Replication bytes the master has not yet seen acknowledged by its slowest replica."""
        info = redis.Redis(port=master).info("replication")
        offsets = [int(v["offset"]) for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return int(info["master_repl_offset"]) - min(offsets, default=0)

    def master_of(self, key: str) -> int:
        client = redis.RedisCluster(host="127.0.0.1", port=self.ports[0])
        try:
            node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
            return int(node.port)
        finally:
            client.close()

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_ping(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_connect_timeout=0.5).ping():
                return
        except redis.RedisError:
            time.sleep(0.05)
    raise TimeoutError(f"redis-server on {port} did not start")
