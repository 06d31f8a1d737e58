//! Client settings shared by the source and the publishers.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// How to reach the cluster; the broker address is the only thing that must be set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Consumer group of the debit source; all engine instances of one deployment share it.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Consumer session timeout. Shorter means faster failover after a crash, and faster
    /// group joins on brokers that wait half of it before a rebalance completes.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u32,
    /// Consumer heartbeat interval; a third of the session timeout or less.
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u32,
    /// Longest time the broker may hold a fetch when no new record is there. Low values cut
    /// the latency from produce to consume at the cost of more (cheap) fetch requests.
    #[serde(default = "default_fetch_wait_max_ms")]
    pub fetch_wait_max_ms: u32,
    /// How long the producer gathers statuses and dead letters before it sends them (one
    /// request per partition leader). Each request costs the client's and the broker's
    /// threads a wake-up, so at thousands of statuses a second a longer wait costs far less
    /// CPU; it delays each status by up to this much.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u32,
    /// Extra librdkafka properties, passed through as they are (e.g. `security.protocol`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// When partitions are revoked (a rebalance), how long to wait for the records already
    /// handed on from them to be done before committing and giving them up.
    #[serde(default = "default_revoke_drain_ms")]
    pub revoke_drain_ms: u64,
}

fn default_revoke_drain_ms() -> u64 {
    10_000
}

fn default_group() -> String {
    "pigeon".to_owned()
}
fn default_session_timeout_ms() -> u32 {
    6_000
}
fn default_heartbeat_interval_ms() -> u32 {
    1_000
}
fn default_fetch_wait_max_ms() -> u32 {
    100
}
fn default_linger_ms() -> u32 {
    20
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            group_id: default_group(),
            session_timeout_ms: default_session_timeout_ms(),
            heartbeat_interval_ms: default_heartbeat_interval_ms(),
            fetch_wait_max_ms: default_fetch_wait_max_ms(),
            linger_ms: default_linger_ms(),
            properties: BTreeMap::new(),
            revoke_drain_ms: default_revoke_drain_ms(),
        }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Consumer settings: manual commits only, start at the earliest offset of a new group.
    pub fn consumer(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                self.heartbeat_interval_ms.to_string(),
            )
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", self.fetch_wait_max_ms.to_string())
            // Records fetched ahead of the engine: 16 MiB is seconds of the peak rate, and
            // librdkafka's default (64 MiB) is resident memory for nothing.
            .set("queued.max.messages.kbytes", "16384");
        // Properties given explicitly win over the defaults above.
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Producer settings: idempotent, acknowledged by all in-sync replicas, requests
    /// gathered for `linger_ms`.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", self.linger_ms.to_string())
            .set("compression.type", "none")
            .set("message.timeout.ms", "30000");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_lingers_as_configured_unless_a_property_says_otherwise() {
        let mut c = KafkaConfig::new("127.0.0.1:9092");
        assert_eq!(c.producer().get("linger.ms"), Some("20"));
        c.linger_ms = 7;
        assert_eq!(c.producer().get("linger.ms"), Some("7"));
        // The consumer has no use for it.
        assert_eq!(c.consumer().get("linger.ms"), None);
        c.properties.insert("linger.ms".into(), "1".into());
        assert_eq!(c.producer().get("linger.ms"), Some("1"));
    }
}
