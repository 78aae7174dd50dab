//! (r) Seed 001: an overlay network across the demo's two hosts, whose daemons share etcd on
//! their switch as the cluster store (the article's registry, a KV store). Made on host1, the
//! network is host2's too (SCOPE global) and the store holds it; a container on each host
//! reaches the other by address and by name through the VXLAN tunnel in eBPF, its MTU the
//! underlay's less VXLAN's 50 bytes; the tunnel map shows the other host's endpoint and its
//! counters the frames; containers on the default bridge reach no overlay container, nor the
//! other way round; removed, the network leaves both hosts and the store.
use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use netd_world::{fabric_ip, ETCD_IP, ETCD_PORT};

use super::{section, shell_line, table_count, Demo, Expect, Site, Verdict};
use crate::util::{self, Captured};

const NETWORK: &str = "ov";
const SUBNET: &str = "10.0.9.0/24";
/// How long a host may take to learn through the store what another did.
const SYNC: Duration = Duration::from_secs(15);
/// Every key netd writes in the store starts with this.
const STORE_PREFIX: &str = "/netd/v1/";
/// Echo requests of the ping whose frames the tunnel counters must show.
const COUNTED: u64 = 3;
/// A container on the default bridge of host2, for isolation.
const PLAIN2: &str = "plain2";

impl Demo<'_> {
    /// The scene: the network, a container on each host and one on host2's default bridge,
    /// traffic and isolation, then the cleanup, which runs whatever happened before.
    pub(super) fn overlay_across_hosts(&mut self, bbox1: Option<&str>) {
        section("(r) an overlay network across two hosts (VXLAN in eBPF; etcd on the switch as the KV store)");
        self.overlay_network();
        for (host, name, network) in [
            (Site::One, "box1", NETWORK),
            (Site::Two, "box2", NETWORK),
            (Site::Two, PLAIN2, "bridge"),
        ] {
            let args = ["run", "-d", "--network", network, name];
            let title = format!("{host}: run {name} on {network}");
            self.step_on(host, &title, &args, Expect::Success);
        }
        let subnet = Some(("10.0.9.0", 24));
        let box1 = self.inspect_address_on(Site::One, "box1", NETWORK, subnet);
        let box2 = self.inspect_address_on(Site::Two, "box2", NETWORK, subnet);
        let box1 = box1.map(|(ip, _)| ip);
        match (&box1, box2) {
            (Some(box1), Some((box2, _))) => {
                self.overlay_traffic(box1, &box2);
                self.overlay_isolation(box1, &box2, bbox1);
            }
            _ => self.not_run("traffic on the overlay", "no address for box1 or box2"),
        }
        self.overlay_cleanup(box1.as_deref());
    }

    /// The network, made on host1, on both hosts and in the store.
    fn overlay_network(&mut self) {
        let create = [
            "network", "create", "-d", "overlay", "--subnet", SUBNET, NETWORK,
        ];
        let title = format!("host1: create the overlay network {NETWORK} ({SUBNET})");
        self.step_on(Site::One, &title, &create, Expect::Success);
        let inspect = ["network", "inspect", NETWORK];
        let title = format!("host2 learns of {NETWORK} through the store");
        self.wait_for(Site::Two, &title, &inspect, Expect::Success, SYNC);
        for host in [Site::One, Site::Two] {
            self.step_on(
                host,
                &format!("{host}: network ls lists {NETWORK}, driver overlay, SCOPE global"),
                &["network", "ls"],
                Expect::Row(&[NETWORK, "overlay", "global"]),
            );
        }
        let name = format!("{STORE_PREFIX}names/{NETWORK} ");
        let subnet = format!("{STORE_PREFIX}subnets/10.0.9.0_24 ");
        let vni = format!("{STORE_PREFIX}vnis/");
        self.store_listing(
            &format!("the store holds {NETWORK}: its record, name, subnet and VNI"),
            Expect::PrintsAll(&[&name, &subnet, &vni, "/netd/v1/networks/"]),
        );
    }

    /// Across hosts by address and by name, the MTU, the tunnel map and its counters, and the
    /// endpoints in the store.
    fn overlay_traffic(&mut self, box1: &str, box2: &str) {
        let verdict = match box1 != box2 {
            true => Verdict::Pass,
            false => Verdict::Fail,
        };
        let title = format!("one address space across hosts: box1 {box1}, box2 {box2}");
        self.record(&title, verdict, "expected: different addresses");
        let title = format!("host2: box2 pings box1 ({box1}) on host1");
        let args = ping("box2", box1, 1);
        self.wait_for(
            Site::Two,
            &title,
            &args.each_ref().map(String::as_str),
            Expect::Success,
            SYNC,
        );
        let title = format!("host1: box1 pings box2 ({box2}) on host2");
        self.step_on(
            Site::One,
            &title,
            &ping("box1", box2, 1).each_ref().map(String::as_str),
            Expect::Success,
        );
        for (host, from, to, ip) in [
            (Site::Two, "box2", "box1", box1),
            (Site::One, "box1", "box2", box2),
        ] {
            let args = ping(from, to, 1);
            let title = format!("{host}: {from} pings {to} by name (embedded DNS)");
            self.step_on(
                host,
                &title,
                &args.each_ref().map(String::as_str),
                Expect::Success,
            );
            let dig = [
                "exec", from, "--", "dig", "+short", "+time=2", "+tries=1", to,
            ];
            let title = format!("{host}: dig {to} in {from} gives {ip}");
            self.step_on(host, &title, &dig, Expect::Answers(ip));
        }
        for (host, name) in [(Site::One, "box1"), (Site::Two, "box2")] {
            let mtu = ["exec", name, "--", "cat", "/sys/class/net/eth0/mtu"];
            let title =
                format!("{host}: {name}'s eth0 has MTU 1450 (the underlay's 1500 less VXLAN's 50)");
            self.step_on(host, &title, &mtu, Expect::Answers("1450"));
        }
        for (host, name, ip, other) in [(Site::Two, "box1", box1, 1), (Site::One, "box2", box2, 2)]
        {
            let other = fabric_ip(other);
            let title =
                format!("{host}: the tunnel map sends {name} ({ip}) on {NETWORK} to {other}");
            let row = [ip, name, &other, NETWORK];
            self.step_on(host, &title, &["maps", "dump", "tunnel"], Expect::Row(&row));
        }
        self.tunnel_counted(box1);
        let (key1, key2) = (format!("/{box1} "), format!("/{box2} "));
        self.store_listing(
            "the store holds box1's and box2's endpoints",
            Expect::PrintsAll(&[&key1, &key2, "\"box1\"", "\"box2\""]),
        );
    }

    /// The tunnel counters of both hosts go up by at least [`COUNTED`] frames each way while
    /// box2 pings box1 that many times.
    fn tunnel_counted(&mut self, box1: &str) {
        let hosts = [Site::One, Site::Two];
        let before = hosts.map(|host| self.tunnel_counts(host));
        let args = ping("box2", box1, COUNTED);
        let title = format!("host2: box2 sends box1 {COUNTED} echo requests");
        self.step_on(
            Site::Two,
            &title,
            &args.each_ref().map(String::as_str),
            Expect::Success,
        );
        let after = hosts.map(|host| self.tunnel_counts(host));
        let roles = [("replies", "requests"), ("requests", "replies")];
        for (i, (host, (sent, got))) in hosts.into_iter().zip(roles).enumerate() {
            let title = format!(
                "{host}: tunnel_stats counts the {sent} encapsulated and the {got} decapsulated"
            );
            let (Some((e0, d0)), Some((e1, d1))) = (before[i], after[i]) else {
                self.not_run(&title, "no counters in the output");
                continue;
            };
            let (encap, decap) = (e1.saturating_sub(e0), d1.saturating_sub(d0));
            let verdict = match encap >= COUNTED && decap >= COUNTED {
                true => Verdict::Pass,
                false => Verdict::Fail,
            };
            let note = format!("+{encap} and +{decap}; expected: at least +{COUNTED} each");
            self.record(&title, verdict, &note);
        }
    }

    /// (encapsulated, decapsulated) of `maps dump tunnel_stats` on `host`.
    fn tunnel_counts(&mut self, host: Site) -> Option<(u64, u64)> {
        let out = self.step_on(
            host,
            &format!("{host}: maps dump tunnel_stats"),
            &["maps", "dump", "tunnel_stats"],
            Expect::PrintsAll(&["encapsulated", "decapsulated"]),
        )?;
        let count = |row| table_count(&out.stdout, row);
        Some((count("encapsulated")?, count("decapsulated")?))
    }

    /// Containers on the default bridge, on either host, and the overlay's containers do not
    /// reach each other.
    fn overlay_isolation(&mut self, box1: &str, box2: &str, bbox1: Option<&str>) {
        let mut cases = vec![
            (
                Site::One,
                "bbox1",
                "box1",
                box1,
                "bridge -> overlay, same host",
            ),
            (
                Site::One,
                "bbox1",
                "box2",
                box2,
                "bridge -> overlay, other host",
            ),
            (
                Site::Two,
                PLAIN2,
                "box2",
                box2,
                "bridge -> overlay, same host",
            ),
        ];
        if let Some(bbox1) = bbox1 {
            cases.push((Site::One, "box1", "bbox1", bbox1, "overlay -> bridge"));
        }
        for (host, from, to, ip, what) in cases {
            let title = format!("{host}: {from} cannot reach {to} ({ip}; {what})");
            let args = ping(from, ip, 1);
            self.step_on(
                host,
                &title,
                &args.each_ref().map(String::as_str),
                Expect::Failure,
            );
        }
    }

    /// Removes the scene's containers and the network: it leaves host2, the tunnel map and
    /// the store.
    fn overlay_cleanup(&mut self, box1: Option<&str>) {
        for (host, name) in [
            (Site::One, "box1"),
            (Site::Two, "box2"),
            (Site::Two, PLAIN2),
        ] {
            let args = ["container", "rm", "-f", name];
            self.step_on(
                host,
                &format!("{host}: remove {name}"),
                &args,
                Expect::Success,
            );
        }
        let title = format!("host1: remove the network {NETWORK}");
        self.step_on(
            Site::One,
            &title,
            &["network", "rm", NETWORK],
            Expect::Success,
        );
        let title = format!("host2 drops {NETWORK} once the store has it no more");
        self.wait_for(
            Site::Two,
            &title,
            &["network", "ls"],
            Expect::Lacks("overlay"),
            SYNC,
        );
        if let Some(ip) = box1 {
            let title = format!("host2: the tunnel map no longer has box1 ({ip})");
            self.step_on(
                Site::Two,
                &title,
                &["maps", "dump", "tunnel"],
                Expect::Lacks(ip),
            );
        }
        self.store_listing(
            &format!("the store holds nothing of {NETWORK} any more"),
            Expect::Lacks(STORE_PREFIX),
        );
    }

    /// Lists what netd keeps in etcd, key and value a line, through etcd's JSON gateway from
    /// host1, and records whether `expect` holds of the listing.
    fn store_listing(&mut self, title: &str, expect: Expect) {
        if util::interrupted() {
            return;
        }
        let url = format!("http://{ETCD_IP}:{ETCD_PORT}/v3/kv/range");
        let body = range_request(STORE_PREFIX);
        let mut cmd = self.lab.on_host(&[
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "--header",
            "Content-Type: application/json",
            "--post-data",
            &body,
            &url,
        ]);
        println!(
            "\n$ {}    # every key under {STORE_PREFIX}, decoded from base64",
            shell_line(&cmd)
        );
        let out = match self.lab.run(&mut cmd) {
            Ok(out) => out,
            Err(e) => return self.record(title, Verdict::Fail, &format!("could not run: {e:#}")),
        };
        match store_listing(&out.stdout) {
            Some(listing) => {
                self.judge(
                    title,
                    Captured {
                        stdout: listing,
                        ..out
                    },
                    expect,
                );
            }
            None => {
                super::show(&out.stdout);
                super::show(&out.stderr);
                let note = format!(
                    "not an answer of etcd's range API ({})",
                    crate::lab::status_text(&out)
                );
                self.record(title, Verdict::Fail, &note);
            }
        }
    }
}

/// `exec FROM -- busybox ping -c COUNT -W 2 TARGET`.
fn ping(from: &str, target: &str, count: u64) -> [String; 10] {
    let count = count.to_string();
    [
        "exec", from, "--", "busybox", "ping", "-c", &count, "-W", "2", target,
    ]
    .map(String::from)
}

/// The body of an etcd v3 range request (JSON gateway) for every key under `prefix`.
fn range_request(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    serde_json::json!({ "key": STANDARD.encode(prefix), "range_end": STANDARD.encode(end) })
        .to_string()
}

/// An etcd range answer as `KEY VALUE` lines, or `None` if it is not one.
fn store_listing(answer: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(answer).ok()?;
    value.get("header")?;
    let decode = |field: &serde_json::Value| {
        let bytes = STANDARD.decode(field.as_str().unwrap_or_default()).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    let mut lines = vec![];
    for kv in value
        .get("kvs")
        .and_then(|k| k.as_array())
        .into_iter()
        .flatten()
    {
        let key = decode(kv.get("key")?)?;
        let value = kv.get("value").map_or(Some(String::new()), decode)?;
        lines.push(format!("{key} {value}\n"));
    }
    Some(lines.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_etcd_for_every_key_under_a_prefix() {
        let body: serde_json::Value = serde_json::from_str(&range_request("/netd/v1/")).unwrap();
        assert_eq!(body["key"], STANDARD.encode("/netd/v1/"));
        assert_eq!(
            body["range_end"],
            STANDARD.encode("/netd/v10"),
            "'/' + 1 is '0'"
        );
    }

    #[test]
    fn decodes_the_keys_and_values_of_a_range_answer() {
        let answer = format!(
            r#"{{"header":{{"revision":"7"}},"kvs":[{{"key":"{}","value":"{}"}}],"count":"1"}}"#,
            STANDARD.encode("/netd/v1/names/ov"),
            STANDARD.encode("abc")
        );
        assert_eq!(
            store_listing(&answer).as_deref(),
            Some("/netd/v1/names/ov abc\n")
        );
        assert_eq!(
            store_listing(r#"{"header":{"revision":"9"}}"#).as_deref(),
            Some("")
        );
        assert_eq!(store_listing("404 page not found"), None);
    }
}
