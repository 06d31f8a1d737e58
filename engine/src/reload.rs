//! What a configuration reload may change without a restart, checked before anything takes
//! effect: routes, templates and carriers' rates. Anything else (Kafka, topics, engine
//! settings, the carriers themselves) needs a restart and the reload is refused, with every
//! reason listed; the running configuration stays.

use crate::config::Config;
use crate::routing::CarrierId;

/// The changes a valid reload makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Carriers whose rate changes, with the new rate.
    pub rates: Vec<(CarrierId, u32)>,
    pub routing_changed: bool,
    pub templates_changed: bool,
}

/// Compares the running configuration with the new one (already validated on its own).
pub fn plan(old: &Config, new: &Config) -> Result<ReloadPlan, Vec<String>> {
    let mut errs = Vec::new();
    if json(&old.kafka) != json(&new.kafka) {
        errs.push("kafka: changes need a restart".to_owned());
    }
    if json(&old.topics) != json(&new.topics) {
        errs.push("topics: changes need a restart".to_owned());
    }
    if json(&old.engine) != json(&new.engine) {
        errs.push("engine: changes need a restart".to_owned());
    }
    if json(&old.metrics) != json(&new.metrics) {
        errs.push("metrics: changes need a restart".to_owned());
    }
    if json(&old.api) != json(&new.api) {
        errs.push("api: changes need a restart".to_owned());
    }
    if json(&old.store) != json(&new.store) {
        errs.push("store: changes need a restart".to_owned());
    }
    if json(&old.eligibility) != json(&new.eligibility) {
        errs.push("eligibility: changes need a restart".to_owned());
    }
    if old.relay != new.relay {
        errs.push("relay: changes need a restart".to_owned());
    }
    let names = |c: &Config| {
        c.carriers
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    if names(old) != names(new) {
        errs.push("carriers: adding, removing or reordering carriers needs a restart".to_owned());
    }
    let mut rates = Vec::new();
    for (i, (o, n)) in old.carriers.iter().zip(&new.carriers).enumerate() {
        let mut same = n.clone();
        same.max_segments_per_second = o.max_segments_per_second;
        if json(&same) != json(o) {
            errs.push(format!(
                "carriers[{i}] ({}): only max_segments_per_second can change without a restart",
                o.name
            ));
        }
        if n.max_segments_per_second != o.max_segments_per_second {
            rates.push((i, n.max_segments_per_second));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(ReloadPlan {
        rates,
        routing_changed: json(&old.routing) != json(&new.routing),
        templates_changed: json(&old.templates) != json(&new.templates),
    })
}

/// Comparison through the serialised form, so that every field counts without each config
/// type having to implement `PartialEq`.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [kafka]
        brokers = "127.0.0.1:9092"
        [[carriers]]
        name = "a"
        address = "127.0.0.1:2775"
        system_id = "pigeon"
        password = "secret"
        max_segments_per_second = 100
        [routing]
        default_route = ["a"]
    "#;

    fn cfg(text: &str) -> Config {
        Config::from_toml(text).expect("valid")
    }

    #[test]
    fn routes_templates_and_rates_change_live() {
        let new = BASE
            .replace("max_segments_per_second = 100", "max_segments_per_second = 250")
            .replace("[routing]", "[templates]\nbank = \"Other Bank\"\n[routing]\nprefixes = { \"+44\" = \"uk\" }\noperators = { uk = [\"a\"] }");
        let p = plan(&cfg(BASE), &cfg(&new)).expect("allowed");
        assert_eq!(p.rates, vec![(0, 250)]);
        assert!(p.routing_changed && p.templates_changed);
        let same = plan(&cfg(BASE), &cfg(BASE)).expect("allowed");
        assert_eq!(
            same,
            ReloadPlan {
                rates: vec![],
                routing_changed: false,
                templates_changed: false
            }
        );
    }

    #[test]
    fn everything_else_is_refused_with_every_reason() {
        let new = BASE.replace("127.0.0.1:9092", "10.0.0.1:9092").replace(
            "address = \"127.0.0.1:2775\"",
            "address = \"127.0.0.1:2776\"",
        );
        let errs = plan(&cfg(BASE), &cfg(&new)).expect_err("refused");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("kafka"), "{errs:?}");
        assert!(errs[1].contains("only max_segments_per_second"), "{errs:?}");
        let relayed =
            format!("{BASE}\n[relay]\nreceipts_topic = \"pigeon.receipts\"\ninstance = \"a\"\n");
        let errs = plan(&cfg(BASE), &cfg(&relayed)).expect_err("refused");
        assert_eq!(errs, ["relay: changes need a restart"]);
    }
}
