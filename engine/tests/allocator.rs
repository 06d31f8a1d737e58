//! `pigeon run` starts itself again with mimalloc's purge delay set (ADR 0006), unless the
//! operator has set it. The configuration here does not exist, so the engine stops right
//! after its first log lines; what they say is what the test checks.

use std::process::Command;

fn run_stderr(purge_delay: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pigeon"));
    cmd.args(["run", "--config", "/nonexistent/pigeon.toml"])
        .env("RUST_LOG", "info")
        .env_remove("MIMALLOC_PURGE_DELAY");
    if let Some(v) = purge_delay {
        cmd.env("MIMALLOC_PURGE_DELAY", v);
    }
    let out = cmd.output().expect("pigeon runs");
    assert!(!out.status.success(), "a missing configuration is an error");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_restarts_itself_with_a_short_purge_delay() {
    let stderr = run_stderr(None);
    assert!(
        stderr.contains("allocator: MIMALLOC_PURGE_DELAY=10"),
        "{stderr}"
    );
    assert!(!stderr.contains("could not restart"), "{stderr}");
}

#[test]
fn an_operators_purge_delay_is_kept() {
    let stderr = run_stderr(Some("250"));
    assert!(
        stderr.contains("allocator: MIMALLOC_PURGE_DELAY=250"),
        "{stderr}"
    );
}
