//! Where the machine's CPU went while the debits flowed: the engine, the broker and this
//! program (generator, simulated carriers, status consumer) against the machine's whole.
//! When they share a machine, a harness or a broker that takes the cores limits the engine
//! in a way the engine's own numbers do not show.

use std::sync::OnceLock;

use tokio::time::Instant;

use super::summary::MachineUsage;

/// CPU ticks per second of `/proc` (`getconf CLK_TCK`, 100 where it cannot be read).
pub fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User + system ticks of a process from its `/proc/PID/stat` line.
fn process_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold spaces) start at `state`; utime and
    // stime are fields 14 and 15 of the whole line, 11 and 12 after the `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// User + system CPU seconds of process `pid` so far; `None` once it has exited.
pub fn process_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    process_ticks(&stat).map(|t| t as f64 / ticks_per_second())
}

/// Busy and all ticks of every core together, from `/proc/stat`'s `cpu` line: busy is
/// user, nice, system, irq, softirq and steal; all adds idle and iowait.
fn machine_ticks(proc_stat: &str) -> Option<(u64, u64)> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = (line.split_whitespace().skip(1).take(8))
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = v[..] else {
        return None;
    };
    let busy = user + nice + system + irq + softirq + steal;
    Some((busy, busy + idle + iowait))
}

/// What the machine and each part had used at one moment.
pub struct CpuSnapshot {
    at: Instant,
    machine: Option<(u64, u64)>,
    engine: Option<f64>,
    broker: Option<f64>,
    harness: Option<f64>,
}

impl CpuSnapshot {
    /// Now: the machine, this process, and the engine's and the broker's CPU seconds so
    /// far when the run has them.
    pub fn take(engine_seconds: Option<f64>, broker_pid: Option<u32>) -> CpuSnapshot {
        CpuSnapshot {
            at: Instant::now(),
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| machine_ticks(&s)),
            engine: engine_seconds,
            broker: broker_pid.and_then(process_seconds),
            harness: process_seconds(std::process::id()),
        }
    }

    /// From `before` to this snapshot; `None` where `/proc/stat` could not be read.
    pub fn since(&self, before: &CpuSnapshot) -> Option<MachineUsage> {
        let ((busy1, all1), (busy0, all0)) = (self.machine?, before.machine?);
        let seconds = self.at.duration_since(before.at).as_secs_f64();
        let (busy, all) = (
            busy1.saturating_sub(busy0) as f64,
            all1.saturating_sub(all0) as f64,
        );
        let diff = |a: Option<f64>, b: Option<f64>| Some((a? - b?).max(0.0));
        Some(MachineUsage {
            seconds,
            cores: if seconds > 0.0 {
                all / ticks_per_second() / seconds
            } else {
                0.0
            },
            busy_share: if all > 0.0 { busy / all } else { 0.0 },
            busy_cpu_seconds: busy / ticks_per_second(),
            engine_cpu_seconds: diff(self.engine, before.engine),
            broker_cpu_seconds: diff(self.broker, before.broker),
            harness_cpu_seconds: diff(self.harness, before.harness).unwrap_or(0.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_line_gives_user_plus_system_ticks_even_with_spaces_in_its_name() {
        let stat = "4242 (pigeon (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 \
                    9 0 100 0 0";
        assert_eq!(process_ticks(stat), Some(1234 + 567));
        assert_eq!(process_ticks("4242 (short) S 1"), None);
    }

    #[test]
    fn the_machine_line_splits_busy_from_idle_and_iowait() {
        let stat = "cpu  100 2 30 500 40 5 6 7 0 0\ncpu0 50 1 15 250 20 2 3 3 0 0\nintr 1\n";
        // busy: user 100 + nice 2 + system 30 + irq 5 + softirq 6 + steal 7.
        assert_eq!(machine_ticks(stat), Some((150, 150 + 500 + 40)));
        assert_eq!(machine_ticks("cpu0 1 2 3\n"), None);
    }

    #[test]
    fn this_process_is_seen_using_the_cpu_it_burns() {
        let before = CpuSnapshot::take(Some(1.0), None);
        let mut x = 0u64;
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        // Spin until the kernel has counted a few ticks against this process: measured by
        // the same subtraction as `since`, which `before + 0.05` can miss by a rounding.
        while process_seconds(std::process::id()).unwrap_or(0.0) - before.harness.unwrap_or(0.0)
            < 0.05
        {
            assert!(Instant::now() < deadline, "no CPU counted");
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let usage = CpuSnapshot::take(Some(3.5), None).since(&before).unwrap();
        assert!(usage.harness_cpu_seconds >= 0.05, "{usage:?}");
        assert_eq!(usage.engine_cpu_seconds, Some(2.5));
        assert_eq!(usage.broker_cpu_seconds, None);
        assert!(
            usage.busy_cpu_seconds >= usage.harness_cpu_seconds * 0.5,
            "{usage:?}"
        );
        assert!(usage.cores >= 1.0, "{usage:?}");
        assert!((0.0..=1.0).contains(&usage.busy_share), "{usage:?}");
    }
}
