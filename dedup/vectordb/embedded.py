"""The PyPI package ``milvus`` (an embedded Milvus 2.3 standalone server) on loopback, for tests and benchmarks.

Not needed to run the job (which uses Milvus Lite or a server given by --milvus-uri); used by the tests
against a real server and by ``python -m bench --scale`` to compare a server with Milvus Lite.
"""
from __future__ import annotations

from pathlib import Path

from dedup.vectordb.lite import free_port


class EmbeddedMilvus:
    """The ``milvus`` package's server over ``base``, with its embedded etcd on free ports.

    The package binds Milvus's own ports to free ones, but its embedded etcd always takes 2379/2380, so two
    servers on one machine (two test runs) would collide; an etcd config file with free ports fixes that.
    """

    def __init__(self, base: Path):
        import milvus

        self.base = base
        data = Path(milvus.__file__).parent / "data"
        client, peer = free_port(), free_port()
        etcd_cfg = base / "embed-etcd.yaml"
        etcd_cfg.write_text(
            "name: default\n"
            f"listen-client-urls: http://127.0.0.1:{client}\nadvertise-client-urls: http://127.0.0.1:{client}\n"
            f"listen-peer-urls: http://127.0.0.1:{peer}\ninitial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
            f"initial-cluster: default=http://127.0.0.1:{peer}\n"
        )
        template = (data / "config.yaml.template").read_text()
        anchor = "etcd:\n  endpoints:"
        if anchor not in template:
            raise RuntimeError("unknown milvus config template")
        (base / "template.yaml").write_text(template.replace(anchor, f"etcd:\n  config:\n    path: {etcd_cfg}\n  endpoints:", 1))
        cfg = milvus.MilvusServerConfig(data_dir=str(base), template=str(base / "template.yaml"), etcd_port=client)
        cfg.glog_conf_file = str(data / "glog.conf")  # the package sets it only for its own template
        self.server = milvus.MilvusServer(cfg)

    def start(self) -> "EmbeddedMilvus":
        self.server.start()  # waits for /healthz
        return self

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.listen_port}"

    def log_tail(self) -> str:
        logs = sorted((self.base / "logs").glob("*std*.log"))
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in logs)

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> "EmbeddedMilvus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
