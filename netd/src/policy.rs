//! Who may reach a published port: the syntax of `--publish-allow PORT=CIDR,...` (per port),
//! of `netd daemon --publish-allow/--publish-deny CIDR` and of the policy file (host-wide), the
//! decision those rules make for a client, and the entries of the `NETD_PUBLISH_POLICY` trie
//! that make the same decision in the datapath. Everything here is pure.
//!
//! A policy is a list of prefixes, each allowed or denied; the longest prefix that holds the
//! client decides, and a client no prefix holds is refused when the policy allows anyone
//! explicitly (an allowlist), let in otherwise (a denylist, or no rule at all). A port with an
//! allowlist of its own is decided by it alone; every other port by the host-wide policy.
//! Addresses are `IpAddr`/`IpNet` throughout; the trie keeps IPv4 ones IPv4-mapped, so IPv6
//! clients need no new layout.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use aya::maps::lpm_trie::Key;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netd_common::{
    PolicyPrefix, PolicyScope, POLICY_ALLOW, POLICY_DENY, POLICY_KEY_BITS, POLICY_SCOPE_BITS,
    V4_MAPPED_BITS,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ports::{PortMapping, Proto};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("--publish-allow {0:?}: expected PORT[-END][/PROTO]=CIDR[,CIDR...]")]
    Syntax(String),
    #[error("--publish-allow {spec:?}: bad port {port:?}")]
    Port { spec: String, port: String },
    #[error("{context}: bad address or prefix {text:?}")]
    Prefix { context: String, text: String },
    #[error("{context}: {net} is both allowed and denied")]
    Both { context: String, net: IpNet },
    #[error("policy file {path}, line {line}: expected `allow CIDR` or `deny CIDR`, got {text:?}")]
    FileLine {
        path: String,
        line: usize,
        text: String,
    },
    #[error("policy file {path}: {error}")]
    File { path: String, error: String },
}

/// What a prefix says about the clients it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }

    /// The trie's value for it.
    pub fn value(self) -> u32 {
        match self {
            Action::Allow => POLICY_ALLOW,
            Action::Deny => POLICY_DENY,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allowed and denied prefixes, each list sorted and without duplicates; no prefix in both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<IpNet>,
}

impl Policy {
    /// The policy of these prefixes (`context` names them in an error).
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>, context: &str) -> Result<Self, PolicyError> {
        let mut p = Policy { allow, deny };
        for list in [&mut p.allow, &mut p.deny] {
            for net in list.iter_mut() {
                *net = net.trunc();
            }
            list.sort();
            list.dedup();
        }
        if let Some(net) = p.allow.iter().find(|n| p.deny.contains(n)) {
            return Err(PolicyError::Both {
                context: context.into(),
                net: *net,
            });
        }
        Ok(p)
    }

    /// Whether the policy has no rule (everyone is let in).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// What a client that no prefix holds gets.
    pub fn otherwise(&self) -> Action {
        match self.allow.is_empty() {
            true => Action::Allow,
            false => Action::Deny,
        }
    }

    /// The decision for `client`: the longest prefix that holds it, else [`Self::otherwise`].
    /// The datapath's lookup must agree (the tests compare the two).
    pub fn decide(&self, client: IpAddr) -> Action {
        let client = mapped(client);
        let rules = self
            .allow
            .iter()
            .map(|n| (n, Action::Allow))
            .chain(self.deny.iter().map(|n| (n, Action::Deny)));
        rules
            .filter(|(n, _)| mapped_net(**n).contains(&client))
            .max_by_key(|(n, _)| mapped_net(**n).prefix_len())
            .map_or(self.otherwise(), |(_, a)| a)
    }

    /// The trie entries that make this decision under `scope`: one per prefix, and the
    /// scope's default (only where it refuses, or the port has rules of its own: a scope with
    /// no entry lets everyone in).
    pub fn entries(&self, scope: PolicyScope, own: bool) -> Vec<(TrieKey, u32)> {
        let mut out = vec![];
        if own || self.otherwise() == Action::Deny {
            let key = PolicyPrefix {
                scope,
                client: [0; 16],
            };
            out.push(((POLICY_SCOPE_BITS, key), self.otherwise().value()));
        }
        let rules = self
            .allow
            .iter()
            .map(|n| (n, Action::Allow))
            .chain(self.deny.iter().map(|n| (n, Action::Deny)));
        for (net, action) in rules {
            let net = mapped_net(*net);
            let key = PolicyPrefix {
                scope,
                client: net.network().octets(),
            };
            let bits = POLICY_SCOPE_BITS + u32::from(net.prefix_len());
            out.push(((bits, key), action.value()));
        }
        out
    }
}

/// A key of the policy trie: its prefix length in bits and its data (ordered, unlike aya's
/// `Key`).
pub type TrieKey = (u32, PolicyPrefix);

/// `addr` in the trie's 16-byte form (IPv4 mapped).
fn mapped(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// `net` in the trie's 16-byte form (IPv4 prefixes under `::ffff:0:0/96`).
fn mapped_net(net: IpNet) -> Ipv6Net {
    match net {
        IpNet::V4(n) => Ipv6Net::new(
            n.network().to_ipv6_mapped(),
            n.prefix_len() + V4_MAPPED_BITS as u8,
        )
        .expect("a /96 plus at most 32 bits"),
        IpNet::V6(n) => n,
    }
}

/// An address (a host prefix) or a prefix; `context` names it in an error.
pub fn parse_prefix(text: &str, context: &str) -> Result<IpNet, PolicyError> {
    let text = text.trim();
    let bad = || PolicyError::Prefix {
        context: context.into(),
        text: text.into(),
    };
    if text.contains('/') {
        return IpNet::from_str(text).map(|n| n.trunc()).map_err(|_| bad());
    }
    IpAddr::from_str(text).map(IpNet::from).map_err(|_| bad())
}

/// A comma-separated list of prefixes (flags may also be repeated).
pub fn parse_prefixes(text: &str, context: &str) -> Result<Vec<IpNet>, PolicyError> {
    text.split(',').map(|t| parse_prefix(t, context)).collect()
}

/// The host-wide policy of the policy file's text (`path` names it in errors): one rule per
/// line, `allow CIDR` or `deny CIDR` (several CIDRs may follow, separated by commas or
/// blanks), `#` to the end of a line is a comment.
pub fn parse_file(path: &str, text: &str) -> Result<Policy, PolicyError> {
    let (mut allow, mut deny) = (vec![], vec![]);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad = || PolicyError::FileLine {
            path: path.into(),
            line: i + 1,
            text: raw.trim().into(),
        };
        let (word, rest) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
        let list = match word {
            "allow" => &mut allow,
            "deny" => &mut deny,
            _ => return Err(bad()),
        };
        let context = format!("policy file {path}, line {}", i + 1);
        for t in rest.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
            list.push(parse_prefix(t, &context)?);
        }
    }
    Policy::new(allow, deny, &format!("policy file {path}"))
}

/// One `--publish-allow PORT[-END][/PROTO]=CIDR,...` of a container: the host ports it names
/// (both protocols unless one is given) and the prefixes allowed on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortAllow {
    pub start: u16,
    pub end: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<Proto>,
    pub allow: Vec<IpNet>,
}

impl PortAllow {
    /// Whether this names the host side of the bound mapping `m`.
    pub fn covers(&self, m: &PortMapping) -> bool {
        (self.start..=self.end).contains(&m.host_port) && self.proto.is_none_or(|p| p == m.proto)
    }

    /// Whether this names a host port that the requested mapping `m` can be bound to.
    pub fn names(&self, m: &PortMapping) -> bool {
        if self.proto.is_some_and(|p| p != m.proto) {
            return false;
        }
        match (m.host_port, m.host_range) {
            (0, Some(r)) => r.start <= self.end && self.start <= r.end,
            (0, None) => false,
            (p, _) => (self.start..=self.end).contains(&p),
        }
    }

    /// The same ports (and protocol) as `other`: a later `--publish-allow` replaces it.
    pub fn same_ports(&self, other: &PortAllow) -> bool {
        (self.start, self.end, self.proto) == (other.start, other.end, other.proto)
    }

    /// The ports as the user wrote them.
    pub fn ports_text(&self) -> String {
        let mut s = match self.start == self.end {
            true => self.start.to_string(),
            false => format!("{}-{}", self.start, self.end),
        };
        if let Some(p) = self.proto {
            s.push('/');
            s.push_str(p.as_str());
        }
        s
    }
}

impl fmt::Display for PortAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self.allow.iter().map(IpNet::to_string).collect();
        write!(f, "{}={}", self.ports_text(), nets.join(","))
    }
}

/// Parses `PORT[-END][/PROTO]=CIDR[,CIDR...]`.
pub fn parse_port_allow(spec: &str) -> Result<PortAllow, PolicyError> {
    let (ports, nets) = spec
        .split_once('=')
        .ok_or_else(|| PolicyError::Syntax(spec.into()))?;
    if nets.trim().is_empty() {
        return Err(PolicyError::Syntax(spec.into()));
    }
    let bad_port = || PolicyError::Port {
        spec: spec.into(),
        port: ports.into(),
    };
    let (range, proto) = match ports.split_once('/') {
        Some((r, p)) => (r, Some(Proto::from_str(p).map_err(|_| bad_port())?)),
        None => (ports, None),
    };
    let number = |t: &str| -> Result<u16, PolicyError> {
        match t.parse::<u16>() {
            Ok(p) if p > 0 && t.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
            _ => Err(bad_port()),
        }
    };
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => (number(range)?, number(range)?),
    };
    if start > end {
        return Err(bad_port());
    }
    let context = format!("--publish-allow {spec:?}");
    let allow = Policy::new(parse_prefixes(nets, &context)?, vec![], &context)?.allow;
    Ok(PortAllow {
        start,
        end,
        proto,
        allow,
    })
}

/// The allowlist that decides for the bound mapping `m` of a container with `rules`: the
/// prefixes of every rule that names its host port, if any does.
pub fn port_policy(rules: &[PortAllow], m: &PortMapping) -> Option<Policy> {
    let mut covering = rules.iter().filter(|r| r.covers(m)).peekable();
    covering.peek()?;
    let allow = covering.flat_map(|r| r.allow.iter().copied()).collect();
    Some(Policy::new(allow, vec![], "").unwrap_or_default())
}

/// `rules` with `new` in: each replaces a rule for the same ports.
pub fn merge(rules: &[PortAllow], new: &[PortAllow]) -> Vec<PortAllow> {
    let mut out: Vec<PortAllow> = rules
        .iter()
        .filter(|r| !new.iter().any(|n| n.same_ports(r)))
        .cloned()
        .collect();
    out.extend(new.iter().cloned());
    out
}

/// A trie key back as (scope, client prefix), `None` for a scope's default entry.
pub fn decode(key: &TrieKey) -> (PolicyScope, Option<IpNet>) {
    let (bits, data) = *key;
    if bits <= POLICY_SCOPE_BITS {
        return (data.scope, None);
    }
    let len = (bits - POLICY_SCOPE_BITS).min(128) as u8;
    let addr = Ipv6Addr::from(data.client);
    let net = match (addr.to_ipv4_mapped(), len >= V4_MAPPED_BITS as u8) {
        (Some(v4), true) => Ipv4Net::new(v4, len - V4_MAPPED_BITS as u8).map(IpNet::V4),
        _ => Ipv6Net::new(addr, len).map(IpNet::V6),
    };
    (data.scope, net.ok())
}

/// The full lookup key for `client` under `scope`, as the datapath builds it.
pub fn lookup_key(scope: PolicyScope, client: IpAddr) -> Key<PolicyPrefix> {
    Key::new(
        POLICY_KEY_BITS,
        PolicyPrefix {
            scope,
            client: mapped(client).octets(),
        },
    )
}

/// An IPv4 address as a client address.
pub fn v4(addr: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &str) -> Vec<IpNet> {
        parse_prefixes(s, "test").unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_allowlist_refuses_everyone_else_and_the_longest_prefix_wins() {
        let p = Policy::new(nets("10.0.0.0/8,192.0.2.7"), nets("10.1.0.0/16"), "t").unwrap();
        assert_eq!(p.decide(ip("10.2.3.4")), Action::Allow);
        assert_eq!(p.decide(ip("10.1.3.4")), Action::Deny);
        assert_eq!(p.decide(ip("192.0.2.7")), Action::Allow);
        assert_eq!(p.decide(ip("192.0.2.8")), Action::Deny);
        let deny_only = Policy::new(vec![], nets("203.0.113.0/24"), "t").unwrap();
        assert_eq!(deny_only.decide(ip("203.0.113.9")), Action::Deny);
        assert_eq!(deny_only.decide(ip("198.51.100.1")), Action::Allow);
        assert_eq!(Policy::default().decide(ip("1.2.3.4")), Action::Allow);
    }

    #[test]
    fn a_prefix_both_allowed_and_denied_is_refused() {
        let e = Policy::new(nets("10.0.0.0/8"), nets("10.1.2.3/8"), "--publish-deny").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--publish-deny: 10.0.0.0/8 is both allowed and denied"
        );
    }

    #[test]
    fn port_specs_parse_and_bad_ones_say_what_is_wrong() {
        let a = parse_port_allow("8080=10.0.0.0/8,192.0.2.7").unwrap();
        assert_eq!((a.start, a.end, a.proto), (8080, 8080, None));
        assert_eq!(a.to_string(), "8080=10.0.0.0/8,192.0.2.7/32");
        let a = parse_port_allow("8000-8010/udp=2001:db8::/32").unwrap();
        assert_eq!((a.start, a.end, a.proto), (8000, 8010, Some(Proto::Udp)));
        for (spec, error) in [
            ("8080", "expected PORT[-END][/PROTO]=CIDR"),
            ("8080=", "expected PORT[-END][/PROTO]=CIDR"),
            ("0=10.0.0.1", "bad port \"0\""),
            ("90-80=10.0.0.1", "bad port \"90-80\""),
            ("80/sctp=10.0.0.1", "bad port \"80/sctp\""),
            ("80=10.0.0.300", "bad address or prefix \"10.0.0.300\""),
            ("80=10.0.0.0/33", "bad address or prefix \"10.0.0.0/33\""),
        ] {
            let e = parse_port_allow(spec).unwrap_err().to_string();
            assert!(e.contains(error), "{spec}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn a_port_rule_names_fixed_and_ranged_host_ports_but_not_ephemeral_ones() {
        let rule = parse_port_allow("8080/tcp=10.0.0.0/8").unwrap();
        let fixed = crate::ports::parse_publish("8080:80").unwrap()[0];
        let udp = crate::ports::parse_publish("8080:80/udp").unwrap()[0];
        let ranged = crate::ports::parse_publish("8000-8100:80").unwrap()[0];
        let ephemeral = crate::ports::parse_publish("80").unwrap()[0];
        assert!(rule.names(&fixed) && rule.covers(&fixed));
        assert!(!rule.names(&udp));
        assert!(rule.names(&ranged));
        assert!(!rule.names(&ephemeral));
        let p = port_policy(std::slice::from_ref(&rule), &fixed).unwrap();
        assert_eq!(p.decide(ip("10.9.9.9")), Action::Allow);
        assert_eq!(p.decide(ip("192.0.2.1")), Action::Deny);
        assert!(port_policy(&[rule], &udp).is_none(), "host-wide decides");
    }

    #[test]
    fn a_later_rule_for_the_same_ports_replaces_the_earlier() {
        let old = vec![
            parse_port_allow("8080=10.0.0.0/8").unwrap(),
            parse_port_allow("9090=10.0.0.0/8").unwrap(),
        ];
        let new = parse_port_allow("8080=192.0.2.0/24").unwrap();
        let merged = merge(&old, std::slice::from_ref(&new));
        assert_eq!(merged.len(), 2);
        assert!(merged.contains(&new));
        assert!(merged.contains(&old[1]));
    }

    #[test]
    fn the_policy_file_takes_rules_comments_and_reports_its_bad_line() {
        let p = parse_file(
            "/etc/netd/policy",
            "# who may reach published ports\nallow 10.0.0.0/8, 192.0.2.7\n\ndeny 10.66.0.0/16 # lab\n",
        )
        .unwrap();
        assert_eq!(p.allow, nets("10.0.0.0/8,192.0.2.7"));
        assert_eq!(p.deny, nets("10.66.0.0/16"));
        let e = parse_file("f", "allow 10.0.0.0/8\npermit 1.2.3.4\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "policy file f, line 2: expected `allow CIDR` or `deny CIDR`, got \"permit 1.2.3.4\""
        );
        let e = parse_file("f", "deny 10.0.0.0/99").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("policy file f, line 1: bad address"));
    }

    #[test]
    fn trie_entries_decode_back_to_the_rules() {
        let p = Policy::new(nets("10.0.0.0/8"), nets("10.1.0.0/16,2001:db8::/32"), "t").unwrap();
        let scope = PolicyScope::default();
        let entries = p.entries(scope, false);
        assert_eq!(entries.len(), 4, "three prefixes and the default (deny)");
        let decoded: Vec<_> = entries.iter().map(|(k, v)| (decode(k), *v)).collect();
        assert!(decoded.contains(&((scope, None), POLICY_DENY)));
        assert!(decoded.contains(&((scope, Some(nets("10.0.0.0/8")[0])), POLICY_ALLOW)));
        assert!(decoded.contains(&((scope, Some(nets("2001:db8::/32")[0])), POLICY_DENY)));
        assert!(
            Policy::default().entries(scope, false).is_empty(),
            "no rule, no entry: everyone is let in"
        );
        let deny_only = Policy::new(vec![], nets("10.1.0.0/16"), "t").unwrap();
        assert_eq!(deny_only.entries(scope, false).len(), 1, "no default entry");
    }
}
