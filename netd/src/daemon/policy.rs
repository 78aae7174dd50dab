//! Who may reach published ports, as the daemon keeps it: the host-wide policy (the
//! `--publish-allow`/`--publish-deny` flags and the `--publish-policy` file, read again on
//! SIGHUP and `netd policy reload`), each container's `--publish-allow` lists (in its record in
//! the state dir), the `NETD_PUBLISH_POLICY` trie kept equal to both, and the flows a changed
//! policy no longer allows, whose NAT entries are removed so that their next packet is refused
//! (a TCP reset, ICMP port unreachable).
//!
//! The trie is written before the ports that refer to it and emptied after them, so a port
//! never points at rules that are not there yet.
use std::collections::{BTreeMap, HashMap};

use netd_common::{FlowKey, PolicyScope, PortKey};

use super::{
    error::{invalid, OpResult},
    ports::port_key,
    Config, Daemon,
};
use crate::{
    api::{PolicyRow, PolicyView, Reply},
    datapath::{conntrack, plan},
    policy::{self, Action, Policy, PolicyError, PortAllow, TrieKey},
    ports::PortMapping,
    state::{State, Status},
};

impl Config {
    /// The host-wide policy: the flags' prefixes and the policy file's. A file that cannot be
    /// read or parsed is an error (at start the daemon refuses to start; a reload changes
    /// nothing).
    pub fn host_policy(&self) -> Result<Policy, PolicyError> {
        let (mut allow, mut deny) = (self.publish_allow.clone(), self.publish_deny.clone());
        if let Some((shown, read)) = &self.publish_policy {
            let shown = shown.display().to_string();
            let text = std::fs::read_to_string(read).map_err(|e| PolicyError::File {
                path: shown.clone(),
                error: e.to_string(),
            })?;
            let file = policy::parse_file(&shown, &text)?;
            allow.extend(file.allow);
            deny.extend(file.deny);
        }
        Policy::new(allow, deny, "--publish-allow and --publish-deny")
    }
}

/// The trie entries of the host-wide policy.
fn host_entries(host: &Policy) -> Vec<(TrieKey, u32)> {
    host.entries(PolicyScope::default(), false)
}

/// The trie entries of the bound mappings `ms` of a container with `rules`: for each that has
/// an allowlist of its own, its prefixes and default under its scope.
pub fn port_entries(rules: &[PortAllow], ms: &[PortMapping]) -> Vec<(TrieKey, u32)> {
    if rules.is_empty() {
        return vec![];
    }
    ms.iter()
        .filter_map(|m| Some((m, policy::port_policy(rules, m)?)))
        .flat_map(|(m, p)| p.entries(netd_common::port_scope(&port_key(m)), true))
        .collect()
}

/// Every trie entry the state implies: the host-wide policy's, and each running container's
/// allowlists on the ports it has bound.
pub fn desired_policy(host: &Policy, state: &State) -> BTreeMap<TrieKey, u32> {
    let mut out: BTreeMap<TrieKey, u32> = host_entries(host).into_iter().collect();
    for c in state.containers.values() {
        if c.status == Status::Running {
            out.extend(port_entries(&c.publish_allow, &c.ports));
        }
    }
    out
}

/// The rules `specs` for container `name`, which publishes (or asks for) `published`: each
/// must name one of their host ports.
pub fn parse_rules(
    name: &str,
    published: &[PortMapping],
    specs: &[String],
) -> OpResult<Vec<PortAllow>> {
    let mut rules = vec![];
    for spec in specs {
        let rule = policy::parse_port_allow(spec).map_err(|e| invalid(e.to_string()))?;
        if !published.iter().any(|m| rule.names(m) || rule.covers(m)) {
            return Err(invalid(format!(
                "--publish-allow {spec}: {name} publishes no host port {}",
                rule.ports_text()
            )));
        }
        rules.push(rule);
    }
    Ok(rules)
}

impl Daemon {
    /// Puts `entries` in the trie (before anything refers to them).
    pub(super) fn add_policy_entries(&mut self, entries: Vec<(TrieKey, u32)>) -> OpResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        Ok(self.dp.apply_publish_policy(plan::MapDiff {
            upsert: entries,
            remove: vec![],
        })?)
    }

    /// Takes `keys` out of the trie (after nothing refers to them).
    pub(super) fn remove_policy_entries(&mut self, keys: Vec<TrieKey>) -> OpResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        Ok(self.dp.apply_publish_policy(plan::MapDiff {
            upsert: vec![],
            remove: keys,
        })?)
    }

    /// The trie's difference from what the state implies: writes first, removals second, for
    /// [`Daemon::sync_ports`] to put around its own change.
    pub(super) fn policy_diff(&self) -> OpResult<plan::MapDiff<TrieKey, u32>> {
        let current = self.dp.publish_policy()?;
        Ok(plan::diff(
            &current,
            &desired_policy(&self.host_policy, &self.state),
        ))
    }

    /// `netd policy reload` (and SIGHUP): reads the host-wide policy again; if it changed,
    /// puts it in force and cuts off the flows it no longer allows. A bad file changes nothing.
    pub(super) fn policy_reload(&mut self) -> OpResult<Reply> {
        if self.config.publish_policy.is_none() {
            return Err(invalid(
                "the daemon was started without --publish-policy FILE: there is nothing to reload",
            ));
        }
        let new = self
            .config
            .host_policy()
            .map_err(|e| invalid(e.to_string()))?;
        self.set_host_policy(new)?;
        Ok(Reply::Done)
    }

    /// Puts `new` in force as the host-wide policy.
    fn set_host_policy(&mut self, new: Policy) -> OpResult<()> {
        let old: BTreeMap<TrieKey, u32> = host_entries(&self.host_policy).into_iter().collect();
        let wanted: BTreeMap<TrieKey, u32> = host_entries(&new).into_iter().collect();
        let diff = plan::diff(&old, &wanted);
        self.add_policy_entries(diff.upsert)?;
        self.remove_policy_entries(diff.remove)?;
        let changed = self.host_policy != new;
        self.host_policy = new;
        if changed {
            let cut = self.cut_off()?;
            tracing::info!(allow = ?self.host_policy.allow, deny = ?self.host_policy.deny, cut, "host-wide publish policy in force");
        }
        Ok(())
    }

    /// Removes the NAT entries of every published-port flow whose client the policy in force
    /// no longer lets in; returns how many flows. Their next packet meets the policy afresh.
    pub(super) fn cut_off(&mut self) -> OpResult<usize> {
        let entries = self.dp.nat_entries()?;
        let index = self.port_policies();
        let host = &self.host_policy;
        let refused = conntrack::refused(&entries, |k: &FlowKey| {
            let exact = PortKey {
                addr: k.daddr,
                port_be: k.dport_be,
                proto: k.proto,
                _pad: 0,
            };
            let any = PortKey {
                addr: [0; 4],
                ..exact
            };
            let own = index.get(&exact).or_else(|| index.get(&any))?;
            let decider = own.as_ref().unwrap_or(host);
            Some(decider.decide(policy::v4(k.saddr)) == Action::Allow)
        });
        let flows = refused
            .iter()
            .filter(|(k, _)| k.zone != netd_common::ZONE_UPLINK_OUT)
            .count();
        self.dp.remove_nat(&refused)?;
        Ok(flows)
    }

    /// Every bound published port, with its own allowlist if it has one.
    fn port_policies(&self) -> HashMap<PortKey, Option<Policy>> {
        let mut out = HashMap::new();
        for c in self.state.containers.values() {
            if c.status != Status::Running {
                continue;
            }
            for m in &c.ports {
                out.insert(port_key(m), policy::port_policy(&c.publish_allow, m));
            }
        }
        out
    }

    /// `netd policy show`.
    pub(super) fn policy_show(&self) -> OpResult<Reply> {
        let texts = |l: &[ipnet::IpNet]| l.iter().map(ToString::to_string).collect();
        let host = &self.host_policy;
        let mut rows = vec![PolicyRow {
            port: "host-wide".into(),
            container: None,
            allow: texts(&host.allow),
            deny: texts(&host.deny),
            otherwise: host.otherwise().to_string(),
        }];
        for c in self.state.containers.values() {
            let row = |port: String, p: &Policy| PolicyRow {
                port,
                container: Some(c.name.clone()),
                allow: texts(&p.allow),
                deny: texts(&p.deny),
                otherwise: Action::Deny.to_string(),
            };
            if c.status == Status::Running {
                for m in &c.ports {
                    if let Some(p) = policy::port_policy(&c.publish_allow, m) {
                        rows.push(row(
                            format!("{}:{}/{}", m.host_ip, m.host_port, m.proto),
                            &p,
                        ));
                    }
                }
                continue;
            }
            for r in &c.publish_allow {
                let p = Policy::new(r.allow.clone(), vec![], "").unwrap_or_default();
                rows.push(row(format!("{} (not running)", r.ports_text()), &p));
            }
        }
        Ok(Reply::Policy(PolicyView {
            file: self
                .config
                .publish_policy
                .as_ref()
                .map(|(shown, _)| shown.display().to_string()),
            rows,
            prefixes: self.dp.publish_policy()?.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ports_with_an_allowlist_get_entries_under_their_own_scope() {
        let rules = vec![policy::parse_port_allow("8080=10.0.0.0/8,192.0.2.7").unwrap()];
        let ms = [
            crate::ports::parse_publish("8080:80").unwrap()[0],
            crate::ports::parse_publish("9090:90").unwrap()[0],
        ];
        let entries = port_entries(&rules, &ms);
        assert_eq!(entries.len(), 3, "two prefixes and the port's default");
        let scope = netd_common::port_scope(&port_key(&ms[0]));
        assert!(entries.iter().all(|((_, k), _)| k.scope == scope));
        assert!(port_entries(&[], &ms).is_empty());
    }
}
