//! The policy phase (issue 19), last in the full run and alone with `--only policy`: short connections per second and request/response p50 through
//! netd's published port with 10 and with 100,000 prefixes in the host-wide publish policy
//! (`--publish-policy FILE`, switched with `netd policy reload` before each measurement), in
//! paired rounds of alternating order. Every prefix is an allowed one and the client's own
//! address is among them, so every connection is looked up and let in; the LPM trie's lookup
//! should cost the same at both sizes (target: ratio <= 1.05).
use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::Result;

use super::{
    check_interrupt, measure, variants,
    world::{Guard, CLIENT_IP},
    Results,
};

/// The policy sizes compared, as variant names.
pub const SIZES: [(usize, &str); 2] = [(10, "10 prefixes"), (100_000, "100,000 prefixes")];

const T: Duration = Duration::from_secs(120);

/// A policy file of `n` allowed prefixes, the client's address among them; the others of
/// every length from /16 to /32 in 11.0.0.0/8 and beyond, none of them holding the client.
fn policy_text(n: usize) -> String {
    let mut text = format!("allow {CLIENT_IP}/32\n");
    for i in 1..n as u32 {
        let len = 16 + i % 17;
        let addr = (0x0b00_0000u32 + i.wrapping_mul(2_654_435_761) % 0x3000_0000) >> (32 - len)
            << (32 - len);
        let _ = writeln!(text, "allow {}/{len}", std::net::Ipv4Addr::from(addr));
    }
    text
}

/// Puts a policy of `n` prefixes in force.
fn set_policy(g: &Guard, file: &Path, n: usize) -> Result<()> {
    std::fs::write(file, policy_text(n))?;
    g.must(&mut g.netd_cli(&["policy", "reload"]), T)?;
    Ok(())
}

pub fn run(g: &mut Guard, netd: &Path, tool: &str, r: &mut Results) -> Result<()> {
    let file = policy_file(g)?;
    variants::netd_with(g, netd, tool, &["--publish-policy", &file])?;
    rounds(g, tool, r, Path::new(&file))
}

/// As [`run`], in the full run: the netd world's daemon is replaced by one with the policy.
pub fn run_again(g: &mut Guard, netd: &Path, tool: &str, r: &mut Results) -> Result<()> {
    let file = policy_file(g)?;
    g.stop_netd()?;
    variants::serve_netd(g, netd, tool, &["--publish-policy", &file])?;
    rounds(g, tool, r, Path::new(&file))
}

/// The policy file the daemon starts with: the smaller size.
fn policy_file(g: &Guard) -> Result<String> {
    let file = g.dir.join("publish-policy");
    std::fs::write(&file, policy_text(SIZES[0].0))?;
    Ok(file.display().to_string())
}

/// Paired rounds of both sizes, alternating their order.
fn rounds(g: &mut Guard, tool: &str, r: &mut Results, file: &Path) -> Result<()> {
    let e = variants::remote_endpoints()
        .into_iter()
        .find(|e| e.variant == "netd")
        .expect("the netd endpoint");
    measure::probe(g, tool, &e)?;
    let p = r.plan;
    for round in 0..p.rounds {
        check_interrupt()?;
        println!("bench: policy round {} of {}", round + 1, p.rounds);
        let mut order = SIZES.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for (n, variant) in order {
            set_policy(g, file, n)?;
            // One discarded second of connections after each switch: putting 100,000 prefixes
            // in (or taking them out) leaves the kernel freeing the old trie nodes for a while.
            measure::conns(g, tool, &e, 1.0, p.conn_threads)?;
            let v = measure::conns(g, tool, &e, p.conn_secs, p.conn_threads);
            let title = "Short connections through a published port, by publish-policy size";
            r.record("policy.cps", title, "conn/s", true, variant, v);
            let v = measure::sockperf(g, &e, p.sockperf_secs).map(|(p50, _)| p50);
            let title = "Request/response p50 through a published port, by publish-policy size";
            r.record("policy.p50", title, "µs", false, variant, v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_file_has_n_prefixes_and_only_the_first_holds_the_client() {
        let text = policy_text(1000);
        assert_eq!(text.lines().count(), 1000);
        let client = u32::from(CLIENT_IP.parse::<std::net::Ipv4Addr>().unwrap());
        for (i, line) in text.lines().enumerate() {
            let (addr, len) = line["allow ".len()..].split_once('/').unwrap();
            let (addr, len): (std::net::Ipv4Addr, u32) =
                (addr.parse().unwrap(), len.parse().unwrap());
            assert!((16..=32).contains(&len), "{line}");
            let mask = u32::MAX << (32 - len);
            assert_eq!(u32::from(addr) & !mask, 0, "a network address: {line}");
            assert_eq!(client & mask == u32::from(addr), i == 0, "{line}");
        }
    }
}
