"""Kafka connection and topic settings (environment prefix ``RECONCILER_KAFKA_``).

One definition serves the faust worker (aiokafka) and the command-line tools
(confluent-kafka): :meth:`KafkaSettings.librdkafka` and :meth:`KafkaSettings.faust_credentials`
translate it for each client.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KafkaSettings", "TopicNames"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECONCILER_KAFKA_", extra="ignore", frozen=True)

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="host:port[,host:port…] (the local stack's broker)."
    )
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = Field(None, description="CA bundle for SSL/SASL_SSL.")

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol={self.security_protocol} needs "
                "RECONCILER_KAFKA_SASL_MECHANISM, RECONCILER_KAFKA_SASL_USERNAME "
                "and RECONCILER_KAFKA_SASL_PASSWORD"
            )
        return self

    def librdkafka(self) -> dict[str, Any]:
        """Connection part of a confluent-kafka client configuration."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            assert self.sasl_password is not None
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            conf["ssl.ca.location"] = self.ssl_cafile
        return conf

    def faust_broker(self) -> str:
        scheme = "kafka"
        return ";".join(f"{scheme}://{hp.strip()}" for hp in self.bootstrap_servers.split(","))

    def faust_credentials(self) -> Any:
        """``broker_credentials`` for faust (None for PLAINTEXT)."""
        import faust  # only the worker needs faust; tools stay light

        context = None
        if self.security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_password is not None and self.sasl_username is not None
            password = self.sasl_password.get_secret_value()
            if self.sasl_mechanism == "PLAIN":
                return faust.SASLCredentials(
                    username=self.sasl_username, password=password, ssl_context=context
                )
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=password,
                ssl_context=context,
                mechanism=self.sasl_mechanism,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None


class TopicNames(BaseSettings):
    """Topic names (environment prefix ``RECONCILER_TOPIC_``)."""

    model_config = SettingsConfigDict(env_prefix="RECONCILER_TOPIC_", extra="ignore", frozen=True)

    cdc_prefix: str = Field(
        "apogee.apogee.", description="Debezium topic prefix: <topic.prefix>.<schema>."
    )
    audit: str = "reconciler.audit"
    deadletter: str = "reconciler.deadletter"
    control: str = "reconciler.control"
    mapping: str = "reconciler.mapping"
    shadow: str = "reconciler.shadow"

    @property
    def cdc(self) -> tuple[str, str, str]:
        """The three student tables, co-partitioned by ``COD_IND``."""
        return (
            f"{self.cdc_prefix}individu",
            f"{self.cdc_prefix}ins_adm_etp",
            f"{self.cdc_prefix}ind_contrat_elp",
        )
