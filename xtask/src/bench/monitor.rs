//! The datapath cost of `netd monitor` (issue 5), full run only: the netd published-port
//! request/response p50 and short connections/s from the client namespace, with and without a
//! `netd --socket SOCK monitor --format json > /dev/null` process connected. The eBPF programs
//! write events only while a monitor is connected, so the difference is the event path. Rounds
//! are paired and alternate which state goes first; the monitor is started before its state's
//! measurements and killed after them.

use std::{
    fs::File,
    process::{Child, Stdio},
    thread,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use super::{check_interrupt, measure, world::Guard, Results};

pub const OFF: &str = "monitor off";
pub const ON: &str = "monitor on";
pub const P50: &str = "monitor.p50";
pub const CPS: &str = "monitor.cps";

/// How long a fresh monitor gets to connect and turn events on before measuring.
const SETTLE: Duration = Duration::from_millis(500);

/// A running `netd monitor`, killed when dropped.
struct Monitor(Child);

impl Monitor {
    fn start(g: &Guard) -> Result<Self> {
        let log = File::create(g.dir.join("monitor.log"))?;
        let child = g
            .netd_cli(&["monitor", "--format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start `netd monitor`")?;
        let mut m = Monitor(child);
        thread::sleep(SETTLE);
        if let Some(status) = m.0.try_wait()? {
            let log = std::fs::read_to_string(g.dir.join("monitor.log")).unwrap_or_default();
            bail!("`netd monitor` exited ({status}): {}", log.trim());
        }
        Ok(m)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The paired rounds; `e` is the netd client-namespace endpoint.
pub fn run(g: &Guard, tool: &str, r: &mut Results, e: &measure::Endpoint) -> Result<()> {
    let p = r.plan;
    for round in 0..p.rounds {
        let order = if round % 2 == 0 { [OFF, ON] } else { [ON, OFF] };
        for state in order {
            check_interrupt()?;
            let monitor = if state == ON {
                match Monitor::start(g) {
                    Ok(m) => Some(m),
                    Err(err) => {
                        let msg = format!("{err:#}");
                        r.record(
                            P50,
                            TITLE_P50,
                            "µs",
                            false,
                            state,
                            Err(anyhow::anyhow!("{msg}")),
                        );
                        r.record(CPS, TITLE_CPS, "conn/s", true, state, Err(err));
                        continue;
                    }
                }
            } else {
                None
            };
            let p50 = measure::sockperf(g, e, p.sockperf_secs).map(|(p50, _)| p50);
            r.record(P50, TITLE_P50, "µs", false, state, p50);
            check_interrupt()?;
            let cps = measure::conns(g, tool, e, p.conn_secs, p.conn_threads);
            r.record(CPS, TITLE_CPS, "conn/s", true, state, cps);
            drop(monitor);
        }
    }
    Ok(())
}

const TITLE_P50: &str = "netd published-port request/response p50, monitor on vs off";
const TITLE_CPS: &str = "netd published-port short connections, monitor on vs off";
