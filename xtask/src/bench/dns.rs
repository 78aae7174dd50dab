//! Embedded DNS: netd's per-container server (127.0.0.11 in the container's namespace, queried
//! from inside a container of the user-defined network `benchnet` for the name of that
//! container) against aardvark-dns 1.4 (Debian's, podman's DNS server), which runs in a namespace
//! of its own on loopback addresses with a config dir written for it: the file `benchnet` whose
//! first line is the listening address 10.89.0.1, then one line per container
//! (`ID IPV4 IPV6 NAMES`, IPv6 empty). aardvark answers according to the asking container's
//! address, so its client sends from 10.89.0.2, the container's. Both are loaded by the `dns`
//! helper (closed loop, one outstanding query per thread, pinned to the clients' CPU; the
//! servers are not pinned): queries/s and latency p50/p99.

use std::{process::Command, time::Duration};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use super::{
    measure::CLIENT_CPU,
    world::{self, Guard},
    Results,
};

const AARDVARK: &str = "/usr/lib/podman/aardvark-dns";
const AARDVARK_LISTEN: &str = "10.89.0.1";
const AARDVARK_CLIENT: &str = "10.89.0.2";
const NAME: &str = "dnsc";
const T: Duration = Duration::from_secs(30);

/// Builds both servers and measures them in alternating rounds.
pub fn run(g: &mut Guard, tool: &str, r: &mut Results) -> Result<()> {
    g.must(&mut g.netd_cli(&["network", "create", "benchnet"]), T)?;
    g.must(
        &mut g.netd_cli(&["container", "create", "--network", "benchnet", NAME]),
        T,
    )?;
    g.must(&mut g.netd_cli(&["container", "start", NAME]), T)?;
    let out = g.must(&mut g.netd_cli(&["container", "inspect", NAME]), T)?;
    let v: Value = serde_json::from_str(&out).context("container inspect JSON")?;
    let netns = v["netns"]
        .as_str()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| g.run.join("netns").join(NAME));

    let n = g.loopback_ns("dns", &[AARDVARK_LISTEN, AARDVARK_CLIENT])?;
    let config = g.dir.join("aardvark");
    std::fs::create_dir_all(&config)?;
    let id = "b".repeat(64);
    std::fs::write(
        config.join("benchnet"),
        format!("{AARDVARK_LISTEN}\n{id} {AARDVARK_CLIENT}  {NAME}\n"),
    )?;
    let conf = config.display().to_string();
    g.spawn(
        "aardvark-dns",
        world::in_ns(&n, &[AARDVARK, "--config", &conf, "-p", "53", "run"]),
    )?;

    let netd_client = |secs: f64, threads: usize| {
        let (s, t) = (secs.to_string(), threads.to_string());
        world::nsenter(
            &netns,
            &[
                "taskset",
                "-c",
                CLIENT_CPU,
                tool,
                "bench",
                "--helper",
                "dns",
                "127.0.0.11:53",
                NAME,
                &s,
                &t,
            ],
        )
    };
    let aardvark_client = |secs: f64, threads: usize| {
        let (s, t) = (secs.to_string(), threads.to_string());
        let server = format!("{AARDVARK_LISTEN}:53");
        world::in_ns(
            &n,
            &[
                "taskset",
                "-c",
                CLIENT_CPU,
                tool,
                "bench",
                "--helper",
                "dns",
                &server,
                NAME,
                &s,
                &t,
                AARDVARK_CLIENT,
            ],
        )
    };
    wait_answers(g, "netd", &mut || netd_client(0.2, 1))?;
    wait_answers(g, "aardvark-dns", &mut || aardvark_client(0.2, 1))?;
    let p = r.plan;
    for round in 0..p.rounds {
        let mut order: Vec<(&str, Command)> = vec![
            ("netd", netd_client(p.dns_secs, p.dns_threads)),
            ("aardvark-dns", aardvark_client(p.dns_secs, p.dns_threads)),
        ];
        if round % 2 == 1 {
            order.reverse();
        }
        for (variant, mut cmd) in order {
            let res = load(g, &mut cmd);
            let field = |k: &str| -> Result<f64> {
                match &res {
                    Ok(v) => v[k].as_f64().with_context(|| format!("no {k} in {v}")),
                    Err(e) => bail!("{e:#}"),
                }
            };
            r.record(
                "dns.qps",
                "DNS queries/s",
                "queries/s",
                true,
                variant,
                field("qps"),
            );
            r.record(
                "dns.p50",
                "DNS latency p50",
                "µs",
                false,
                variant,
                field("p50_us"),
            );
            r.record(
                "dns.p99",
                "DNS latency p99",
                "µs",
                false,
                variant,
                field("p99_us"),
            );
        }
    }
    Ok(())
}

/// Runs a load and insists that most queries were answered.
fn load(g: &Guard, cmd: &mut Command) -> Result<Value> {
    let out = g.must(cmd, T)?;
    let v: Value = serde_json::from_str(out.trim()).context("dns helper output")?;
    let answered = v["answered"].as_f64().unwrap_or(0.0);
    let failed = v["lost"].as_f64().unwrap_or(0.0) + v["errors"].as_f64().unwrap_or(0.0);
    if answered == 0.0 || failed > answered / 100.0 {
        bail!("{failed} of {} queries lost or refused", answered + failed);
    }
    Ok(v)
}

fn wait_answers(g: &Guard, what: &str, client: &mut dyn FnMut() -> Command) -> Result<()> {
    let mut last = None;
    for _ in 0..25 {
        match load(g, &mut client()) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no answer")))
        .with_context(|| format!("{what} does not answer {NAME}"))
}
