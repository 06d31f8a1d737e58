//! The deployment files stay true to the engine: the configurations in `deploy/compose/`
//! and `deploy/kubernetes/` load through the engine's own validation with the environment
//! their manifests set (and fail without it), and the manifests agree with them on ports,
//! probes, mount paths and how long a stop may take.

use std::path::{Path, PathBuf};

use figment::Jail;
use pigeon::config::Config;
use serde_norway::Value;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn yaml_documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy(file)).expect("manifest readable");
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .collect()
}

/// The one document of `file` whose `kind` is `kind`.
fn manifest(file: &str, kind: &str) -> Value {
    let mut found = yaml_documents(file)
        .into_iter()
        .filter(|d| d["kind"].as_str() == Some(kind));
    let one = found
        .next()
        .unwrap_or_else(|| panic!("{file} has no {kind}"));
    assert!(found.next().is_none(), "{file} has several {kind}s");
    one
}

/// Loads `file` as `pigeon run` would, with `env` set and nothing else of the process's.
#[allow(clippy::result_large_err)] // figment's Jail error type
fn load(file: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    let path = deploy(file);
    let mut out = None;
    Jail::expect_with(|jail| {
        jail.clear_env();
        for (k, v) in env {
            jail.set_env(k, v);
        }
        out = Some(Config::load(&path).map_err(|e| e.to_string()));
        Ok(())
    });
    out.expect("the jail ran")
}

fn port(listen: &str) -> u64 {
    let (_, port) = listen.rsplit_once(':').expect("ip:port");
    port.parse().expect("a port")
}

/// The strings of a YAML sequence.
fn strings<'a>(v: &'a Value, what: &str) -> Vec<&'a str> {
    let items = v
        .as_sequence()
        .unwrap_or_else(|| panic!("{what}: not a sequence"));
    items.iter().filter_map(Value::as_str).collect()
}

fn env_names(container: &Value) -> Vec<&str> {
    container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect()
}

#[test]
fn the_kubernetes_configuration_needs_and_takes_what_the_statefulset_sets() {
    let set = manifest("kubernetes/statefulset.yaml", "StatefulSet");
    let pod = &set["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let names = env_names(c);
    assert!(names.contains(&"PIGEON_RELAY__INSTANCE"), "{names:?}");
    assert!(names.contains(&"PIGEON_API__TOKEN"), "{names:?}");
    let instance = c["env"]
        .as_sequence()
        .and_then(|env| env.iter().find(|e| e["name"] == "PIGEON_RELAY__INSTANCE"))
        .map(|e| &e["valueFrom"]["fieldRef"]["fieldPath"]);
    assert_eq!(
        instance.and_then(Value::as_str),
        Some("metadata.name"),
        "the relay's instance is the pod's stable name"
    );

    let without = load("kubernetes/pigeon.toml", &[]).expect_err("incomplete alone");
    assert!(without.contains("relay.instance"), "{without}");
    assert!(without.contains("api.token"), "{without}");
    let cfg = load(
        "kubernetes/pigeon.toml",
        &[
            ("PIGEON_RELAY__INSTANCE", "pigeon-0"),
            ("PIGEON_API__TOKEN", "a-token-of-enough-length"),
        ],
    )
    .expect("valid with the statefulset's environment");
    assert!(cfg.relay.enabled());
    assert_eq!(cfg.relay.instance, "pigeon-0");

    // Ports: what the engine listens on is what the pod declares and the probes ask.
    let ports: Vec<(&str, u64)> = c["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("named port");
            (name, p["containerPort"].as_u64().expect("port"))
        })
        .collect();
    assert!(ports.contains(&("api", port(&cfg.api.listen))), "{ports:?}");
    assert!(
        ports.contains(&("metrics", port(&cfg.metrics.listen))),
        "{ports:?}"
    );
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["port"].as_str(), Some("api"), "{probe}");
        let path = get["path"].as_str().expect("path");
        assert!(["/healthz", "/readyz"].contains(&path), "{probe}: {path}");
    }
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let annotations = &set["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        annotations["prometheus.io/port"].as_str(),
        Some(port(&cfg.metrics.listen).to_string().as_str())
    );

    // Mounts: the configuration where `run` reads it, the store on the pod's volume.
    let mounts = c["volumeMounts"].as_sequence().expect("mounts");
    let mount = |volume: &str| {
        let m = mounts.iter().find(|m| m["name"] == volume);
        PathBuf::from(m.and_then(|m| m["mountPath"].as_str()).expect("mounted"))
    };
    let args = strings(&c["args"], "args");
    let config_file = mount("config").join("pigeon.toml");
    assert_eq!(
        args,
        ["run", "--config", config_file.to_str().expect("utf-8")]
    );
    assert!(
        cfg.store.path.starts_with(mount("store")),
        "{:?}",
        cfg.store.path
    );
    let claims = set["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .expect("claims");
    assert!(claims.iter().any(|t| t["metadata"]["name"] == "store"));

    // A stop drains before the kubelet's SIGKILL.
    let grace_ms = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace")
        * 1000;
    assert!(cfg.engine.drain_timeout_ms < grace_ms);

    // The Secret generated from the file is the one the pod mounts.
    let kustomization = &yaml_documents("kubernetes/kustomization.yaml")[0];
    let secret = pod["volumes"]
        .as_sequence()
        .and_then(|v| v.iter().find(|v| v["name"] == "config"))
        .and_then(|v| v["secret"]["secretName"].as_str())
        .expect("the configuration's volume is a Secret");
    let generated = kustomization["secretGenerator"]
        .as_sequence()
        .expect("generators")
        .iter()
        .find(|g| g["name"] == secret)
        .expect("generated");
    assert_eq!(generated["files"][0], "pigeon.toml");

    // Several replicas share each carrier account's rate by the partitions they hold.
    assert!(set["spec"]["replicas"].as_u64().expect("replicas") > 1);
    assert_eq!(cfg.engine.rate_share, pigeon::config::RateShare::Partitions);
    // And a replica lost without handing its partitions over leaves marks for the next owner.
    assert!(
        cfg.handover.topic.is_some(),
        "[handover] with several replicas"
    );

    // Peers: every pod of the StatefulSet's headless Service, on the API's port.
    let headless = yaml_documents("kubernetes/services.yaml")
        .into_iter()
        .find(|s| s["spec"]["clusterIP"] == "None")
        .expect("a headless Service");
    let name = headless["metadata"]["name"].as_str().expect("named");
    assert_eq!(set["spec"]["serviceName"].as_str(), Some(name));
    assert_eq!(
        headless["spec"]["selector"],
        set["spec"]["selector"]["matchLabels"]
    );
    let namespace = kustomization["namespace"].as_str().expect("a namespace");
    let api_port = port(&cfg.api.listen);
    assert_eq!(
        cfg.api.peers,
        [format!("{name}.{namespace}.svc.cluster.local:{api_port}")]
    );
}

/// Seconds of a compose duration such as `45s` or `1m30s`.
fn compose_seconds(d: &str) -> u64 {
    let mut total = 0;
    let mut n = 0;
    for ch in d.chars() {
        match ch {
            '0'..='9' => n = n * 10 + u64::from(ch.to_digit(10).expect("digit")),
            'h' => (total, n) = (total + n * 3600, 0),
            'm' => (total, n) = (total + n * 60, 0),
            's' => (total, n) = (total + n, 0),
            _ => panic!("unexpected duration {d}"),
        }
    }
    total
}

#[test]
fn the_compose_configuration_matches_its_services() {
    let compose = &yaml_documents("compose/compose.yaml")[0];
    let services = &compose["services"];
    let engine = &services["pigeon"];
    let env = &engine["environment"];
    let token = env["PIGEON_API__TOKEN"].as_str().expect("a token");
    let without = load("compose/pigeon.toml", &[]).expect_err("no token alone");
    assert!(without.contains("api.token"), "{without}");
    let cfg = load("compose/pigeon.toml", &[("PIGEON_API__TOKEN", token)])
        .expect("valid with the service's environment");

    let volumes = strings(&engine["volumes"], "volumes");
    let config_file = env["PIGEON_CONFIG"].as_str().expect("PIGEON_CONFIG");
    assert!(
        volumes.contains(&format!("./pigeon.toml:{config_file}:ro").as_str()),
        "{volumes:?}"
    );
    let store = volumes
        .iter()
        .find_map(|v| v.strip_prefix("store:"))
        .expect("the store volume");
    assert!(cfg.store.path.starts_with(store), "{:?}", cfg.store.path);

    let published = strings(&engine["ports"], "ports");
    for listen in [&cfg.api.listen, &cfg.metrics.listen] {
        let p = port(listen);
        assert!(
            published.contains(&format!("127.0.0.1:{p}:{p}").as_str()),
            "{listen} not published: {published:?}"
        );
    }
    let grace = compose_seconds(engine["stop_grace_period"].as_str().expect("grace"));
    assert!(cfg.engine.drain_timeout_ms < grace * 1000);

    // Each carrier is a simulator service listening where the engine binds, with the
    // engine's account.
    for carrier in &cfg.carriers {
        let (host, carrier_port) = carrier.address.rsplit_once(':').expect("host:port");
        let sim = &services[host];
        let args = strings(&sim["command"], host);
        let listen = format!("{}=0.0.0.0:{carrier_port}", carrier.name);
        assert!(args.contains(&listen.as_str()), "{host}: {args:?}");
        let account = format!("{}:{}", carrier.system_id, carrier.password);
        assert!(args.contains(&account.as_str()), "{host}: {args:?}");
    }
    let (broker, _) = cfg.kafka.brokers.split_once(':').expect("host:port");
    assert!(services[broker].is_mapping(), "no service {broker}");

    // The sample debits' statuses are printed for the event ids of the run id given.
    let samples = std::fs::read_to_string(deploy("local/sample-debits.jsonl")).expect("samples");
    let first: serde_json::Value =
        serde_json::from_str(samples.lines().next().expect("a line")).expect("json");
    let (prefix, _) = (first["event_id"].as_str())
        .and_then(|id| id.rsplit_once('-'))
        .expect("a run id prefix");
    let args = strings(&services["samples"]["command"], "samples");
    assert!(
        args.windows(2).any(|w| w == ["--run-id", prefix]),
        "{args:?}"
    );
}
