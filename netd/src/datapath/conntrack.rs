//! Expiry of translated flows. The kernel records when each direction last saw a packet and
//! which TCP flags went by; these pure functions decide which flows are over, so that the NAT
//! tables hold live flows and new ones find room (and SNAT ports come free). A flow is in one of
//! two tables (assured, or new and closing; see `netd-ebpf/src/nat.rs`), and for a moment in
//! both while the datapath moves it: expiry looks at the two as one.
use std::{collections::BTreeMap, time::Duration};

pub use netd_common::reverse_key;
use netd_common::{
    FlowKey, NatEntry, IPPROTO_TCP, IPPROTO_UDP, NAT_FLAG_REPLY, NAT_KIND_DNAT, NAT_KIND_HAIRPIN,
    TCP_SEEN_ACK, TCP_SEEN_FIN, TCP_SEEN_RST, ZONE_ENDPOINT, ZONE_UPLINK_IN,
};

/// How long a flow may stay idle, by protocol and state.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub tcp_established: Duration,
    pub tcp_handshake: Duration,
    pub tcp_closing: Duration,
    pub tcp_reset: Duration,
    pub udp_replied: Duration,
    pub udp_unreplied: Duration,
    pub icmp: Duration,
}

impl Timeouts {
    /// The defaults with the user's overrides (`--nat-timeout-*`, in seconds): `tcp` sets
    /// established connections, `udp` answered flows (unanswered ones get at most that), `icmp`
    /// echo flows.
    pub fn with(tcp: Option<u64>, udp: Option<u64>, icmp: Option<u64>) -> Self {
        let mut t = Self::default();
        if let Some(s) = tcp {
            t.tcp_established = Duration::from_secs(s);
        }
        if let Some(s) = udp {
            t.udp_replied = Duration::from_secs(s);
            t.udp_unreplied = t.udp_unreplied.min(t.udp_replied);
        }
        if let Some(s) = icmp {
            t.icmp = Duration::from_secs(s);
        }
        t
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tcp_established: Duration::from_secs(24 * 3600),
            tcp_handshake: Duration::from_secs(60),
            tcp_closing: Duration::from_secs(60),
            tcp_reset: Duration::from_secs(10),
            udp_replied: Duration::from_secs(120),
            udp_unreplied: Duration::from_secs(30),
            icmp: Duration::from_secs(30),
        }
    }
}

/// Which NAT table an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `NETD_NAT`: assured flows, never evicted.
    Assured,
    /// `NETD_NAT_NEW`: flows not assured yet and closing ones, evicted when it is full.
    New,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Assured => "assured",
            Table::New => "new",
        }
    }
}

/// Both tables as one, each key once with the table it is in: the assured one's entry if a
/// move put it in both (the datapath looks there first, and deletes the other copy next).
pub fn merged(
    assured: BTreeMap<FlowKey, NatEntry>,
    new: BTreeMap<FlowKey, NatEntry>,
) -> BTreeMap<FlowKey, (Table, NatEntry)> {
    let mut all: BTreeMap<_, _> = new.into_iter().map(|(k, e)| (k, (Table::New, e))).collect();
    all.extend(assured.into_iter().map(|(k, e)| (k, (Table::Assured, e))));
    all
}

/// How long this flow may be idle, given both of its directions.
pub fn timeout(proto: u8, a: &NatEntry, b: Option<&NatEntry>, t: &Timeouts) -> Duration {
    let seen = a.tcp_seen | b.map_or(0, |b| b.tcp_seen);
    let both_ways = a.packets > 0 && b.is_some_and(|b| b.packets > 0);
    match proto {
        IPPROTO_TCP if seen & TCP_SEEN_RST != 0 => t.tcp_reset,
        IPPROTO_TCP if seen & TCP_SEEN_FIN != 0 => t.tcp_closing,
        IPPROTO_TCP
            if both_ways && a.tcp_seen & b.map_or(0, |b| b.tcp_seen) & TCP_SEEN_ACK != 0 =>
        {
            t.tcp_established
        }
        IPPROTO_TCP => t.tcp_handshake,
        IPPROTO_UDP if both_ways => t.udp_replied,
        IPPROTO_UDP => t.udp_unreplied,
        _ => t.icmp,
    }
}

/// Keys of every entry whose flow has been idle longer than its timeout at `now_ns`, with the
/// table each is in. Both directions of an expired flow are returned, wherever each is; an
/// entry whose partner is gone expires alone.
pub fn expired(
    entries: &BTreeMap<FlowKey, (Table, NatEntry)>,
    now_ns: u64,
    t: &Timeouts,
) -> Vec<(FlowKey, Table)> {
    entries
        .iter()
        .filter(|(key, (_, entry))| {
            let other = entries.get(&reverse_key(key, entry)).map(|(_, e)| e);
            let last = entry.last_ns.max(other.map_or(0, |o| o.last_ns));
            let idle = Duration::from_nanos(now_ns.saturating_sub(last));
            idle > timeout(key.proto, entry, other, t)
        })
        .map(|(key, (table, _))| (*key, *table))
        .collect()
}

/// Both directions of every published-port flow (from outside through an uplink, or a
/// container's hairpin) whose client the policy no longer lets in, each with its table. The
/// flow's opening direction is keyed by what the client sent (its address, and the host address
/// and port it reached); `admits` says whether that client may still reach that port, `None`
/// for a port no longer published (its flows are left alone, as `unpublish` leaves them).
pub fn refused(
    entries: &BTreeMap<FlowKey, (Table, NatEntry)>,
    admits: impl Fn(&FlowKey) -> Option<bool>,
) -> Vec<(FlowKey, Table)> {
    let mut out = vec![];
    for (key, (table, entry)) in entries {
        let opening = entry.flags & NAT_FLAG_REPLY == 0
            && matches!(
                (key.zone, entry.kind),
                (ZONE_UPLINK_IN, NAT_KIND_DNAT) | (ZONE_ENDPOINT, NAT_KIND_HAIRPIN)
            );
        if !opening || admits(key) != Some(false) {
            continue;
        }
        out.push((*key, *table));
        let back = reverse_key(key, entry);
        if let Some((table, _)) = entries.get(&back) {
            out.push((back, *table));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use netd_common::{IPPROTO_ICMP, NAT_FLAG_REPLY, NAT_KIND_SNAT, TCP_SEEN_SYN, ZONE_UPLINK_OUT};

    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// An SNAT flow 172.17.0.2:40000 -> 10.99.0.1:80 leaving as 10.99.0.2:33000, not assured.
    fn snat_flow(proto: u8, fwd_last: u64, rev_last: u64) -> BTreeMap<FlowKey, (Table, NatEntry)> {
        merged(BTreeMap::new(), snat_pair(proto, fwd_last, rev_last))
    }

    /// The two entries of [`snat_flow`].
    fn snat_pair(proto: u8, fwd_last: u64, rev_last: u64) -> BTreeMap<FlowKey, NatEntry> {
        let fwd_key = FlowKey {
            saddr: [172, 17, 0, 2],
            daddr: [10, 99, 0, 1],
            sport_be: 40000u16.to_be(),
            dport_be: 80u16.to_be(),
            proto,
            zone: ZONE_UPLINK_OUT,
            _pad: [0; 2],
        };
        let fwd = NatEntry {
            saddr: [10, 99, 0, 2],
            daddr: [10, 99, 0, 1],
            sport_be: 33000u16.to_be(),
            dport_be: 80u16.to_be(),
            kind: NAT_KIND_SNAT,
            flags: 0,
            tcp_seen: 0,
            _pad: 0,
            redirect_ifindex: 0,
            dst_mac: [0; 6],
            _pad2: [0; 2],
            created_ns: 0,
            last_ns: fwd_last,
            packets: 1,
            bytes: 60,
        };
        let rev_key = reverse_key(&fwd_key, &fwd);
        let rev = NatEntry {
            saddr: [10, 99, 0, 1],
            daddr: [172, 17, 0, 2],
            sport_be: 80u16.to_be(),
            dport_be: 40000u16.to_be(),
            flags: NAT_FLAG_REPLY,
            last_ns: rev_last,
            packets: u64::from(rev_last > 0),
            ..fwd
        };
        BTreeMap::from([(fwd_key, fwd), (rev_key, rev)])
    }

    #[test]
    fn the_reverse_of_the_reverse_is_the_forward_key() {
        let flow = snat_pair(IPPROTO_TCP, 1, 1);
        for (key, entry) in &flow {
            let rev = reverse_key(key, entry);
            assert!(flow.contains_key(&rev), "{rev:?}");
            assert_eq!(reverse_key(&rev, &flow[&rev]), *key);
        }
    }

    #[test]
    fn an_unanswered_udp_flow_expires_after_30s_and_an_answered_one_lives_on() {
        let t = Timeouts::default();
        assert!(expired(&snat_flow(IPPROTO_UDP, 0, 0), 31 * SEC, &t).len() == 2);
        assert!(expired(&snat_flow(IPPROTO_UDP, 0, 0), 29 * SEC, &t).is_empty());
        assert!(expired(&snat_flow(IPPROTO_UDP, SEC, SEC), 60 * SEC, &t).is_empty());
    }

    #[test]
    fn a_flow_is_as_fresh_as_its_freshest_direction() {
        let t = Timeouts::default();
        assert!(expired(&snat_flow(IPPROTO_ICMP, 0, 100 * SEC), 120 * SEC, &t).is_empty());
        assert_eq!(
            expired(&snat_flow(IPPROTO_ICMP, 0, 100 * SEC), 131 * SEC, &t).len(),
            2
        );
    }

    #[test]
    fn tcp_timeouts_follow_the_connection_state() {
        let t = Timeouts::default();
        let mut flow = snat_flow(IPPROTO_TCP, SEC, SEC);
        flow.values_mut()
            .for_each(|(_, e)| e.tcp_seen = TCP_SEEN_SYN | TCP_SEEN_ACK);
        assert!(
            expired(&flow, 3600 * SEC, &t).is_empty(),
            "established lives long"
        );
        flow.values_mut().next().unwrap().1.tcp_seen |= TCP_SEEN_FIN;
        assert_eq!(
            expired(&flow, 62 * SEC, &t).len(),
            2,
            "closing goes after 60 s"
        );
        flow.values_mut().next().unwrap().1.tcp_seen |= TCP_SEEN_RST;
        assert_eq!(
            expired(&flow, 12 * SEC, &t).len(),
            2,
            "reset goes after 10 s"
        );
        let syn_only = snat_flow(IPPROTO_TCP, SEC, 0);
        assert_eq!(
            expired(&syn_only, 62 * SEC, &t).len(),
            2,
            "an unanswered handshake goes after 60 s"
        );
    }

    #[test]
    fn an_orphaned_direction_expires_alone() {
        let t = Timeouts::default();
        let mut flow = snat_flow(IPPROTO_UDP, 0, 0);
        let first = *flow.keys().next().unwrap();
        flow.remove(&first);
        assert_eq!(expired(&flow, 31 * SEC, &t).len(), 1);
    }

    #[test]
    fn an_entry_in_both_tables_is_the_assured_one_and_listed_once() {
        let new = snat_pair(IPPROTO_UDP, SEC, SEC);
        let mut assured = new.clone();
        assured.values_mut().for_each(|e| e.packets = 7);
        let first = *new.keys().next().unwrap();
        assured.remove(&first);
        let all = merged(assured, new);
        assert_eq!(all.len(), 2);
        assert_eq!(all[&first].0, Table::New);
        let (_, (table, entry)) = all.iter().find(|(k, _)| **k != first).unwrap();
        assert_eq!((*table, entry.packets), (Table::Assured, 7));
    }

    #[test]
    fn a_flow_split_across_the_tables_expires_as_one_from_each() {
        let t = Timeouts::default();
        let pair = snat_pair(IPPROTO_UDP, 0, 0);
        let (fwd, rev) = {
            let mut it = pair.clone().into_iter();
            (it.next().unwrap(), it.next().unwrap())
        };
        let all = merged(BTreeMap::from([fwd]), BTreeMap::from([rev]));
        let mut gone = expired(&all, 31 * SEC, &t);
        gone.sort_by_key(|(k, _)| *k);
        assert_eq!(gone, vec![(fwd.0, Table::Assured), (rev.0, Table::New)]);
        let fresh = merged(
            BTreeMap::from([fwd]),
            BTreeMap::from([(
                rev.0,
                NatEntry {
                    last_ns: 20 * SEC,
                    ..rev.1
                },
            )]),
        );
        assert!(
            expired(&fresh, 31 * SEC, &t).is_empty(),
            "the fresher half keeps both"
        );
    }

    /// A published-port flow from `client`:51000 to 10.99.0.2:8080, DNAT to 172.17.0.2:80,
    /// both directions (the reply keyed at the uplink's egress zone).
    fn dnat_flow(client: [u8; 4]) -> BTreeMap<FlowKey, NatEntry> {
        let key = FlowKey {
            saddr: client,
            daddr: [10, 99, 0, 2],
            sport_be: 51000u16.to_be(),
            dport_be: 8080u16.to_be(),
            proto: IPPROTO_TCP,
            zone: ZONE_UPLINK_IN,
            _pad: [0; 2],
        };
        // Any entry's timestamps and counters: the fields that matter are set below.
        let base = snat_pair(IPPROTO_TCP, 0, 0).into_values().next().unwrap();
        let fwd = NatEntry {
            saddr: client,
            daddr: [172, 17, 0, 2],
            sport_be: 51000u16.to_be(),
            dport_be: 80u16.to_be(),
            kind: NAT_KIND_DNAT,
            flags: 0,
            ..base
        };
        let back = reverse_key(&key, &fwd);
        let rev = NatEntry {
            saddr: key.daddr,
            daddr: client,
            sport_be: key.dport_be,
            dport_be: key.sport_be,
            flags: NAT_FLAG_REPLY,
            ..fwd
        };
        BTreeMap::from([(key, fwd), (back, rev)])
    }

    #[test]
    fn a_refused_clients_flow_goes_both_ways_and_others_stay() {
        let mut assured = dnat_flow([203, 0, 113, 7]);
        assured.extend(dnat_flow([198, 51, 100, 9]));
        let entries = merged(assured, snat_pair(IPPROTO_TCP, 0, 0));
        let cut = refused(&entries, |k| Some(k.saddr != [203, 0, 113, 7]));
        assert_eq!(cut.len(), 2, "{cut:?}");
        assert!(cut.iter().all(|(_, t)| *t == Table::Assured));
        assert!(cut.iter().any(|(k, _)| k.saddr == [203, 0, 113, 7]));
        assert!(cut.iter().any(|(k, _)| k.daddr == [203, 0, 113, 7]));
        assert!(
            refused(&entries, |_| None).is_empty(),
            "flows of a port no longer published stay"
        );
    }
}
