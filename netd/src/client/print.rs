//! How replies look: Docker-like tables by default, JSON with `--format json`.
use anyhow::anyhow;
use serde::Serialize;

use crate::{
    api::{ContainerView, Reply},
    cli::Format,
};

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let value = match serde_json::to_value(value)? {
        serde_json::Value::Object(mut o) if o.contains_key("kind") => {
            o.remove("value").unwrap_or_default()
        }
        v => v,
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("   ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    rows.into_iter().for_each(line);
}

fn unexpected() -> anyhow::Error {
    anyhow!("unexpected reply from the daemon")
}

pub fn created(reply: Reply) {
    if let Reply::Created(id) = reply {
        println!("{id}");
    }
}

pub fn networks(reply: Reply, format: Format) -> anyhow::Result<()> {
    let Reply::Networks(nets) = reply else {
        return Err(unexpected());
    };
    if let Format::Json = format {
        return json(&nets);
    }
    let rows = nets
        .iter()
        .map(|n| {
            let id = n.id.chars().take(12).collect();
            vec![id, n.name.clone(), n.driver.clone(), n.scope.clone()]
        })
        .collect();
    table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows);
    Ok(())
}

pub fn containers(reply: Reply, format: Format) -> anyhow::Result<()> {
    let Reply::Containers(cs) = reply else {
        return Err(unexpected());
    };
    if let Format::Json = format {
        return json(&cs);
    }
    let rows = cs
        .iter()
        .map(|c| {
            let addrs: Vec<String> = c
                .networks
                .iter()
                .filter_map(|(n, e)| Some(format!("{n}={}", e.ip_address?)))
                .collect();
            vec![
                c.id.chars().take(12).collect(),
                c.name.clone(),
                c.status.clone(),
                c.network_mode.clone(),
                addrs.join(","),
                runtime(c).to_string(),
            ]
        })
        .collect();
    table(
        &[
            "CONTAINER ID",
            "NAME",
            "STATUS",
            "NETWORK",
            "ADDRESSES",
            "RUNTIME",
        ],
        rows,
    );
    Ok(())
}

/// Who made the container: `netd`, the runtime that manages it (`cni`), or `adopted` for a
/// namespace someone else made and netd only attached.
fn runtime(c: &ContainerView) -> &str {
    match (&c.runtime, &c.netns) {
        (Some(runtime), _) => runtime,
        (None, Some(_)) => "adopted",
        (None, None) => "netd",
    }
}

pub fn container(reply: Reply) -> anyhow::Result<()> {
    let Reply::Containers(cs) = reply else {
        return Err(unexpected());
    };
    json(cs.first().ok_or_else(unexpected)?)
}

pub fn ports(reply: Reply) {
    if let Reply::Ports(ports) = reply {
        ports.iter().for_each(|p| println!("{p}"));
    }
}

pub fn maps(reply: Reply, format: Format) -> anyhow::Result<()> {
    let Reply::Maps(maps) = reply else {
        return Err(unexpected());
    };
    if let Format::Json = format {
        return json(&maps);
    }
    for m in maps {
        println!("{} ({}): {} entries", m.name, m.pin.display(), m.rows.len());
        let header: Vec<String> = m.columns.iter().map(|c| c.to_uppercase()).collect();
        table(
            &header.iter().map(String::as_str).collect::<Vec<_>>(),
            m.rows,
        );
        println!();
    }
    Ok(())
}

pub fn stats(reply: Reply, format: Format) -> anyhow::Result<()> {
    let Reply::Stats(stats) = reply else {
        return Err(unexpected());
    };
    if let Format::Json = format {
        return json(&stats);
    }
    let rows = stats
        .rows
        .iter()
        .map(|r| {
            vec![
                r.container.clone().unwrap_or_else(|| "-".into()),
                r.port.clone(),
                r.reason.clone(),
                r.packets.to_string(),
            ]
        })
        .collect();
    table(&["CONTAINER", "PORT", "REASON", "PACKETS"], rows);
    println!();
    let totals = stats
        .totals
        .iter()
        .map(|(reason, n)| vec![reason.clone(), n.to_string()])
        .collect();
    table(&["TOTAL BY REASON", "PACKETS"], totals);
    Ok(())
}

pub fn policy(reply: Reply, format: Format) -> anyhow::Result<()> {
    let Reply::Policy(view) = reply else {
        return Err(unexpected());
    };
    if let Format::Json = format {
        return json(&view);
    }
    let list = |l: &[String]| match l.is_empty() {
        true => "-".to_string(),
        false => l.join(","),
    };
    let rows = view
        .rows
        .iter()
        .map(|r| {
            vec![
                r.port.clone(),
                r.container.clone().unwrap_or_else(|| "-".into()),
                list(&r.allow),
                list(&r.deny),
                r.otherwise.clone(),
            ]
        })
        .collect();
    table(&["PORT", "CONTAINER", "ALLOW", "DENY", "OTHERS"], rows);
    if let Some(file) = &view.file {
        println!(
            "\nhost-wide rules also from {file} (netd policy reload, or SIGHUP, reads it again)"
        );
    }
    Ok(())
}

pub fn event_header() {
    println!(
        "{:<12} {:<5} {:<14} {:<16} {:<5} {:<45} {:<45} VERDICT",
        "TIME", "KIND", "DIRECTION", "CONTAINER", "PROTO", "BEFORE", "AFTER"
    );
}

pub fn event(e: &crate::api::EventView) {
    let secs = e.time.rem_euclid(86400.0);
    let time = format!(
        "{:02}:{:02}:{:06.3}",
        (secs / 3600.0) as u32,
        ((secs % 3600.0) / 60.0) as u32,
        secs % 60.0
    );
    let verdict = match &e.reason {
        Some(r) => format!("{} ({r})", e.verdict),
        None => e.verdict.clone(),
    };
    println!(
        "{time:<12} {:<5} {:<14} {:<16} {:<5} {:<45} {:<45} {verdict}",
        e.kind,
        e.direction,
        e.container.as_deref().unwrap_or("-"),
        e.proto,
        e.before,
        e.after.as_deref().unwrap_or("-")
    );
}

pub fn explain(reply: Reply, format: Format) -> anyhow::Result<()> {
    let Reply::Explain(view) = reply else {
        return Err(unexpected());
    };
    if let Format::Json = format {
        return json(&view);
    }
    for (i, hop) in view.hops.iter().enumerate() {
        let reason = hop
            .reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        println!(
            "{}. {} on {}: {}{reason}",
            i + 1,
            hop.program,
            hop.interface,
            hop.verdict
        );
        println!("   in:  {}", hop.before);
        println!("   out: {}", hop.after);
        for m in &hop.matched {
            println!("   matched {m}");
        }
    }
    match &view.delivered_to {
        Some(c) => println!("=> delivered to container {c}"),
        None => println!("=> not delivered to a container"),
    }
    Ok(())
}

/// One line per difference (or a one-line summary when there is none); the exit status.
pub fn check(reply: Reply, format: Format) -> anyhow::Result<i32> {
    let Reply::Check(view) = reply else {
        return Err(unexpected());
    };
    let status = i32::from(!view.differences.is_empty());
    if let Format::Json = format {
        json(&view)?;
        return Ok(status);
    }
    for d in &view.differences {
        println!("{} {}: {}", d.area, d.subject, d.problem);
    }
    if view.differences.is_empty() {
        println!(
            "state and kernel agree: {} networks, {} containers ({} running), {} endpoints, {} published ports",
            view.networks, view.containers, view.running, view.endpoints, view.ports
        );
    }
    Ok(status)
}
