//! Per-container `hosts` and `resolv.conf` under `<run-dir>/containers/NAME/`, which `netd exec`
//! mounts over `/etc/hosts` and `/etc/resolv.conf`.
use std::{fs, path::Path};

use super::{error::OpError, error::OpResult, Daemon};
use crate::state::Container;

const LOCALHOST: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The hosts file as Docker writes it: localhost lines, one line per link, then the container's
/// own line `IP HOSTNAME` per address, last (scripts read it with `tail -1`); on a dual-stack
/// network the IPv6 line follows the IPv4 one, as Docker writes them.
pub fn hosts(c: &Container, link_lines: &[String]) -> String {
    let mut text = LOCALHOST.to_string();
    for line in link_lines {
        text.push_str(line);
        text.push('\n');
    }
    for ep in &c.endpoints {
        text.push_str(&format!("{}\t{}\n", ep.ip, c.hostname));
        if let Some(ip6) = ep.ip6 {
            text.push_str(&format!("{ip6}\t{}\n", c.hostname));
        }
    }
    text
}

/// A container on a user-defined network asks the embedded server, with the host's search
/// domains and options, as Docker's containers do.
pub fn embedded_resolv_conf(host: &str) -> String {
    let mut text = format!("nameserver {}\n", crate::dns::CONTAINER_DNS);
    for line in host
        .lines()
        .filter(|l| l.starts_with("search") || l.starts_with("options"))
    {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("options ndots:0\n");
    text
}

/// The daemon's resolver configuration without loopback servers, which mean nothing inside a
/// container's namespace (Docker filters them the same way).
pub fn resolv_conf(host: &str) -> String {
    host.lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            !(words.next() == Some("nameserver")
                && words
                    .next()
                    .is_some_and(|ip| ip.starts_with("127.") || ip == "::1"))
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Writes `text` to `path` in place (processes that have the file bind-mounted see the change),
/// and only if it differs.
fn write(path: &Path, text: &str) -> OpResult<()> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    fs::write(path, text).map_err(|source| OpError::Io {
        what: "write",
        path: path.into(),
        source,
    })
}

impl Daemon {
    /// Writes (or rewrites) both files of container `name`.
    pub(super) fn write_files(&self, name: &str) -> OpResult<()> {
        let c = &self.state.containers[name];
        let dir = self.config.containers_dir().join(name);
        fs::create_dir_all(&dir).map_err(|source| OpError::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        write(&dir.join("hosts"), &hosts(c, &self.link_hosts(c)))?;
        let upstream = fs::read_to_string(&self.config.resolv_conf).unwrap_or_default();
        let embedded = c.attachments.iter().any(|a| {
            self.state
                .networks
                .get(&a.network)
                .is_some_and(|n| !n.default)
        });
        let text = if embedded {
            embedded_resolv_conf(&upstream)
        } else {
            resolv_conf(&upstream)
        };
        write(&dir.join("resolv.conf"), &text)
    }

    pub(super) fn remove_files(&self, name: &str) -> OpResult<()> {
        let dir = self.config.containers_dir().join(name);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(OpError::Io {
                what: "remove",
                path: dir,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::running;

    /// Docker 20.10's file for a container linked to db: localhost, the link, its own line last
    /// with its hostname alone.
    #[test]
    fn hosts_has_localhost_then_links_then_the_containers_own_line() {
        let mut c = running("web", &[("bridge", "veth0", "172.17.0.3", &[])]);
        c.hostname = "0123456789ab".into();
        let text = hosts(&c, &["172.17.0.2\tdb 5f3e0a1b2c3d".to_string()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[lines.len() - 2], "172.17.0.2\tdb 5f3e0a1b2c3d");
        assert_eq!(lines[lines.len() - 1], "172.17.0.3\t0123456789ab");
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn a_dual_stack_endpoint_has_its_ipv6_line_after_the_ipv4_one() {
        let mut c = running("web", &[("v6", "veth0", "172.28.0.2", &[])]);
        c.hostname = "0123456789ab".into();
        c.endpoints[0].ip6 = Some("fd00:28::2".parse().unwrap());
        let text = hosts(&c, &[]);
        assert!(
            text.ends_with("172.28.0.2\t0123456789ab\nfd00:28::2\t0123456789ab\n"),
            "{text}"
        );
    }

    #[test]
    fn loopback_nameservers_are_dropped() {
        let host =
            "search example.org\nnameserver 127.0.0.53\nnameserver 10.99.0.1\noptions ndots:2\n";
        assert_eq!(
            resolv_conf(host),
            "search example.org\nnameserver 10.99.0.1\noptions ndots:2\n"
        );
    }
}
