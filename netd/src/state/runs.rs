//! Port mappings on disk as runs: `-p 20000-29999:20000-29999` is ten thousand mappings in memory
//! but one record in the container's file, so writing a container costs the same whatever range
//! it publishes.
//!
//! A run is a mapping and a `count` of followers, each one port above the one before it on both
//! the host (unless the host port is still to be chosen) and the container side. A record without
//! `count` is a single mapping, which is how files written before runs existed read back.
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ports::PortMapping;

#[derive(Serialize, Deserialize)]
struct Run {
    #[serde(flatten)]
    first: PortMapping,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    count: u32,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// Whether `next` continues a run whose last mapping is `last`.
fn follows(last: &PortMapping, next: &PortMapping) -> bool {
    let host_next = match last.host_port {
        0 => next.host_port == 0,
        port => port.checked_add(1) == Some(next.host_port),
    };
    host_next
        && last.container_port.checked_add(1) == Some(next.container_port)
        && last.host_ip == next.host_ip
        && last.proto == next.proto
        && last.host_range == next.host_range
}

fn to_runs(mappings: &[PortMapping]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut last: Option<PortMapping> = None;
    for m in mappings {
        match (runs.last_mut(), last) {
            (Some(run), Some(prev)) if follows(&prev, m) => run.count += 1,
            _ => runs.push(Run {
                first: *m,
                count: 1,
            }),
        }
        last = Some(*m);
    }
    runs
}

fn expand(run: &Run) -> impl Iterator<Item = PortMapping> + '_ {
    (0..run.count).map(move |i| {
        // A run never passes port 65535: `follows` stops it there, and `deserialize` checks.
        let step = i as u16;
        let mut m = run.first;
        if m.host_port != 0 {
            m.host_port += step;
        }
        m.container_port += step;
        m
    })
}

pub fn serialize<S: Serializer>(mappings: &[PortMapping], s: S) -> Result<S::Ok, S::Error> {
    to_runs(mappings).serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PortMapping>, D::Error> {
    let runs = Vec::<Run>::deserialize(d)?;
    let fits = |base: u16, count: u32| u32::from(base) + count - 1 <= u32::from(u16::MAX);
    if let Some(bad) = runs.iter().find(|r| {
        r.count == 0 || !fits(r.first.container_port, r.count) || !fits(r.first.host_port, r.count)
    }) {
        return Err(serde::de::Error::custom(format!(
            "port run of {} from {} passes port 65535",
            bad.count, bad.first
        )));
    }
    Ok(runs.iter().flat_map(expand).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::parse_publish;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Holder(#[serde(with = "super")] Vec<PortMapping>);

    fn mappings(specs: &[&str]) -> Vec<PortMapping> {
        specs
            .iter()
            .flat_map(|s| parse_publish(s).unwrap())
            .collect()
    }

    fn records(specs: &[&str]) -> usize {
        let json = serde_json::to_value(Holder(mappings(specs))).unwrap();
        json.as_array().unwrap().len()
    }

    #[test]
    fn a_published_range_is_one_record() {
        assert_eq!(records(&["20000-29999:20000-29999"]), 1);
        assert_eq!(records(&["127.0.0.1::8000-8099"]), 1);
    }

    #[test]
    fn runs_break_where_anything_but_the_ports_changes() {
        assert_eq!(records(&["80:80", "81:81/udp"]), 2);
        assert_eq!(records(&["80:80", "10.0.0.1:81:81"]), 2);
        assert_eq!(records(&["80:80", "82:81"]), 2);
        assert_eq!(records(&["8000-8010:80", "9000-9010:81"]), 2);
    }

    #[test]
    fn runs_read_back_as_the_same_mappings() {
        for specs in [
            &["20000-29999:20000-29999", "8080:80", "9000-9001:53/udp"][..],
            &["65534-65535:65534-65535", "1:1"],
            &["::80-90", "127.0.0.1:8000-8010:80", "8000-8010:81"],
        ] {
            let before = Holder(mappings(specs));
            let text = serde_json::to_string(&before).unwrap();
            let after: Holder = serde_json::from_str(&text).unwrap();
            assert_eq!(after, before, "{text}");
        }
    }

    #[test]
    fn a_record_without_count_is_one_mapping() {
        let text = r#"[{"host_ip":"0.0.0.0","host_port":8080,"container_port":80,"proto":"tcp"}]"#;
        let Holder(ms) = serde_json::from_str(text).unwrap();
        assert_eq!(ms, mappings(&["8080:80"]));
    }

    #[test]
    fn a_run_past_port_65535_is_refused() {
        let text = r#"[{"host_ip":"0.0.0.0","host_port":65535,"container_port":80,"proto":"tcp","count":2}]"#;
        let err = serde_json::from_str::<Holder>(text).unwrap_err();
        assert!(err.to_string().contains("passes port 65535"), "{err}");
    }
}
