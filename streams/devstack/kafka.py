"""Apache Kafka, one KRaft node (broker + controller) on loopback, from Maven jars."""

from __future__ import annotations

import shutil
import subprocess

from streams.devstack.config import StackConfig
from streams.devstack.errors import StackError
from streams.devstack.jars import jmx_agent, kafka_classpath
from streams.devstack.process import Managed, http_ok, port_open, tail, wait_for

LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: INFO
      - name: state.change.logger
        level: WARN
      - name: org.reflections
        level: ERROR
"""


def log4j2_config(cfg: StackConfig) -> str:
    """Path of the shared Log4j2 file (Kafka 4 reads -Dlog4j2.configurationFile)."""
    path = cfg.state_dir / "config" / "log4j2.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LOG4J2)
    return str(path)


def java_available(cfg: StackConfig) -> None:
    if shutil.which(cfg.java) is None:
        raise StackError(f"Java ({cfg.java!r}) not found on PATH: Kafka 4 needs Java 17+")


class Kafka:
    """Format the log directory once, start the node, wait until it answers metadata."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.proc = Managed("kafka", cfg.run_dir / "kafka.pid", cfg.logs_dir / "kafka.log")
        self.data = cfg.state_dir / "kafka" / "data"
        self.properties = cfg.state_dir / "config" / "kafka.properties"

    def server_properties(self) -> str:
        c = self.cfg
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{c.host}:{c.controller_port}",
            f"listeners=PLAINTEXT://{c.host}:{c.kafka_port},CONTROLLER://{c.host}:{c.controller_port}",
            f"advertised.listeners=PLAINTEXT://{c.host}:{c.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data}",
            f"num.partitions={c.topic_partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.retention.hours=-1",
            "",
        ])  # fmt: skip

    def running(self) -> bool:
        return self.proc.pid() is not None and port_open(self.cfg.host, self.cfg.kafka_port)

    def exporter_ok(self) -> bool:
        """The JMX exporter agent in the broker's JVM answers."""
        return http_ok(self.cfg.metrics_url(self.cfg.kafka_metrics_port))

    def start(self) -> None:
        if self.running():
            if self.exporter_ok():
                return
            self.stop()  # started without the JMX exporter (an older stack): restart with it
        for port, setting in (
            (self.cfg.kafka_port, "KAFKA_PORT"),
            (self.cfg.kafka_metrics_port, "KAFKA_METRICS_PORT"),
        ):
            if self.proc.pid() is None and port_open(self.cfg.host, port):
                raise StackError(
                    f"Kafka: port {port} is taken by another program "
                    f"(set RECONCILER_STACK_{setting})"
                )
        java_available(self.cfg)
        self.properties.parent.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(self.server_properties())
        self._format()
        if self.proc.pid() is None:
            agent = jmx_agent(self.cfg, self.cfg.kafka_metrics_port, "kafka.yaml")
            self.proc.spawn(
                self._java(
                    "kafka.Kafka", str(self.properties), heap=self.cfg.kafka_heap, agent=agent
                )
            )
        if not wait_for(lambda: self._ready() and self.exporter_ok(), self.cfg.start_timeout_s):
            raise StackError(
                f"Kafka did not become ready on {self.cfg.bootstrap_servers}\n"
                f"{tail(self.proc.log_file)}",
                self.proc.log_file,
            )

    def stop(self) -> bool:
        return self.proc.stop(timeout_s=60)

    def _java(
        self, main: str, *args: str, heap: str = "256m", agent: str | None = None
    ) -> list[str]:
        return [
            self.cfg.java,
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            *([agent] if agent else []),
            f"-Dlog4j2.configurationFile={log4j2_config(self.cfg)}",
            "-cp",
            kafka_classpath(self.cfg),
            main,
            *args,
        ]

    def _format(self) -> None:
        if (self.data / "meta.properties").exists():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        argv = self._java("kafka.tools.StorageTool", "random-uuid")
        cluster_id = (
            subprocess.run(argv, capture_output=True, text=True, check=False)
            .stdout.strip()
            .splitlines()
        )
        if not cluster_id:
            raise StackError("Kafka StorageTool random-uuid failed: are the jars complete?")
        argv = self._java(
            "kafka.tools.StorageTool", "format", "-t", cluster_id[-1], "-c", str(self.properties)
        )
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(f"Kafka storage format failed: {proc.stderr.strip()[-2000:]}")

    def _ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        if not port_open(self.cfg.host, self.cfg.kafka_port):
            return False

        admin = AdminClient(
            {
                "bootstrap.servers": self.cfg.bootstrap_servers,
                "socket.timeout.ms": 2000,
                "log_level": 2,
            }
        )
        meta = admin.list_topics(timeout=2)
        return bool(meta.brokers)
