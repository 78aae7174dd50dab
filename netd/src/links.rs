//! Docker's legacy links (`docker run --link NAME[:ALIAS]`): the `NAME[:ALIAS]`
//! syntax, the environment variables a link gives the linking container and
//! the `/etc/hosts` line that makes the alias resolvable.
//!
//! Everything here is pure so it can be unit-tested against Docker's own
//! output. It follows moby as of Docker 28 (`daemon/links/links.go`,
//! `opts.ParseLink`, and `addLegacyLinks`/`buildSandboxOptions` in
//! `daemon/container_operations*.go`).
//!
//! For `--link db:webdb` given to container `web`, with `db` at 172.17.0.5
//! exposing 5432/tcp, [`link_env`] gives, in Docker's order:
//!
//! ```text
//! WEBDB_PORT=tcp://172.17.0.5:5432
//! WEBDB_PORT_5432_TCP=tcp://172.17.0.5:5432
//! WEBDB_PORT_5432_TCP_ADDR=172.17.0.5
//! WEBDB_PORT_5432_TCP_PORT=5432
//! WEBDB_PORT_5432_TCP_PROTO=tcp
//! WEBDB_NAME=/web/webdb
//! WEBDB_ENV_<VAR>=<value>          (one per `-e VAR=value` of db)
//! ```
//!
//! and [`hosts_line`] gives `172.17.0.5\twebdb 6e5cdeb2d300 db`.
//!
//! What moby does, and therefore what this module does:
//!
//! * Variable prefix: the alias uppercased with every `-` replaced by `_`
//!   (`my-db` → `MY_DB_`). Nothing else is escaped (a `.` stays a `.`).
//! * `ALIAS_NAME=/THIS/ALIAS` keeps the alias as written (`/web/my-db`).
//! * Ports are sorted with TCP first: every TCP port by number, then the other
//!   protocols by name and number. So `ALIAS_PORT` is the lowest *TCP* port
//!   when there is one, even if a lower UDP port exists (Docker before 28
//!   sorted by number first; moby changed this in 2025, "fix port-sorting
//!   with mixed protocols"). With only UDP ports it is the lowest UDP port.
//! * Every port gets `ALIAS_PORT_<n>_<PROTO>` (URL), `_ADDR`, `_PORT` and
//!   `_PROTO`; the protocol is uppercase in names and lowercase in values.
//! * A run of consecutive port numbers of one protocol additionally gets
//!   `_START`, `_PORT_START`, `_END` and `_PORT_END` under the first port's
//!   prefix. moby appends them right after the per-port variables of the
//!   port that ends the run (the first port after it, or the run's last port
//!   when the run ends the list); this module does the same.
//! * Then `ALIAS_NAME`, then `ALIAS_ENV_<VAR>=<value>` for each of the linked
//!   container's variables in its order. `VAR` keeps its case; entries
//!   without `=` are skipped; exactly `HOME` and `PATH` (case-sensitive) are
//!   skipped.
//! * The hosts line is `IP<TAB>ALIAS HOSTNAME NAME` (libnetwork writes
//!   `"%s\t%s\n"`), where HOSTNAME is the linked container's hostname, which
//!   defaults to its 12-character short id, and NAME is left out when it
//!   equals ALIAS.
//!
//! The variables are computed when the linking container starts (its first
//! process keeps them for good) and again for each `docker exec` (Docker
//! 20.10's `ContainerExecCreate` calls `setupLinkedContainers`), while the
//! hosts line is rewritten whenever the linked container gets a new address.
//! Callers compute [`link_env`] at start and at each exec, and recompute
//! [`hosts_line`] on changes.
//! (Docker 29 stops setting the variables unless
//! `DOCKER_KEEP_DEPRECATED_LEGACY_LINKS_ENV_VARS=1`; netd's contract asks for
//! them, so netd always sets them.)

use std::cmp::Ordering;
use std::net::Ipv4Addr;

use thiserror::Error;

/// A parsed `--link NAME[:ALIAS]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkSpec {
    /// The linked container's name (no leading `/`).
    pub name: String,
    /// The alias under which it is seen; defaults to `name`.
    pub alias: String,
}

impl std::fmt::Display for LinkSpec {
    /// `NAME:ALIAS`, which [`parse_link`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.alias)
    }
}

/// Why a `--link` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    /// Docker's message for `--link ""`.
    #[error("empty string specified for links")]
    Empty,
    /// Docker's message for more than one colon (control characters escaped: one line).
    #[error("bad format for links: {}", .0.escape_debug())]
    BadFormat(String),
    /// `:alias`.
    #[error("invalid link {0:?}: empty container name")]
    EmptyName(String),
    /// `name:`.
    #[error("invalid link {0:?}: empty alias")]
    EmptyAlias(String),
    /// A name or alias with whitespace, a control character or a `/`.
    #[error(
        "invalid link {spec:?}: {part:?} may not contain whitespace, control characters or '/'"
    )]
    InvalidChars { spec: String, part: String },
}

/// Parses `NAME`, `NAME:ALIAS`, or the `/NAME:/THIS/ALIAS` form that Docker
/// stores in `HostConfig.Links` (and accepts back, as `opts.ParseLink` does).
///
/// Stricter than Docker, which accepts `name:` (empty alias) and aliases with
/// spaces or slashes that then break the hosts file or the `/THIS/ALIAS` path.
pub fn parse_link(spec: &str) -> Result<LinkSpec, LinkError> {
    if spec.is_empty() {
        return Err(LinkError::Empty);
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, alias) = match parts.as_slice() {
        [name] => {
            let name = name.strip_prefix('/').unwrap_or(name);
            (name, name)
        }
        [name, alias] => match name.strip_prefix('/') {
            // HostConfig form: only the last path component of the alias counts.
            Some(name) => (name, alias.rsplit('/').next().unwrap_or(alias)),
            None => (*name, *alias),
        },
        _ => return Err(LinkError::BadFormat(spec.to_string())),
    };
    if name.is_empty() {
        return Err(LinkError::EmptyName(spec.to_string()));
    }
    if alias.is_empty() {
        return Err(LinkError::EmptyAlias(spec.to_string()));
    }
    for part in [name, alias] {
        if part
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(LinkError::InvalidChars {
                spec: spec.to_string(),
                part: part.to_string(),
            });
        }
    }
    Ok(LinkSpec {
        name: name.to_string(),
        alias: alias.to_string(),
    })
}

/// What a link needs to know about the linked container.
#[derive(Debug, Clone, Copy)]
pub struct Linked<'a> {
    /// Its name, with or without Docker's leading `/`.
    pub name: &'a str,
    /// Its id (full or short); the hosts line uses the first 12 characters.
    pub id: &'a str,
    /// Its address on the network the link uses.
    pub ip: Ipv4Addr,
    /// Exposed ports (`--expose`, and every published container port), as
    /// `(port, "tcp" | "udp")`. Order and duplicates do not matter; the
    /// protocol is case-insensitive and an empty one means `tcp`.
    pub exposed: &'a [(u16, &'a str)],
    /// Its `-e K=V` environment, in order.
    pub env: &'a [String],
}

/// Docker's short id: the first 12 characters (the whole id if shorter).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// The link's name as Docker records it, `/THIS/ALIAS`: the value of
/// `ALIAS_NAME` and of the right-hand side in `HostConfig.Links`.
pub fn link_path(this_name: &str, alias: &str) -> String {
    format!("/{}/{}", this_name.trim_start_matches('/'), alias)
}

/// The variable prefix for `alias`: uppercased, `-` replaced by `_`.
pub fn env_prefix(alias: &str) -> String {
    // Go's strings.ToUpper maps each rune to a single rune; keep a rune whose
    // uppercase form would be several characters (Rust's `ß` → `SS`).
    alias
        .chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .map(|c| if c == '-' { '_' } else { c })
        .collect()
}

/// One exposed port, protocol normalized to lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    num: u16,
    proto: String,
}

/// moby's `withTCPPriority`: TCP first, then by protocol, then by number.
fn tcp_first(a: &Port, b: &Port) -> Ordering {
    let rank = |p: &Port| p.proto != "tcp";
    rank(a)
        .cmp(&rank(b))
        .then_with(|| a.proto.cmp(&b.proto))
        .then_with(|| a.num.cmp(&b.num))
}

fn sorted_ports(exposed: &[(u16, &str)]) -> Vec<Port> {
    let mut ports: Vec<Port> = exposed
        .iter()
        .map(|&(num, proto)| Port {
            num,
            proto: if proto.is_empty() {
                "tcp".to_string()
            } else {
                proto.to_ascii_lowercase()
            },
        })
        .collect();
    ports.sort_by(tcp_first);
    // Docker's exposed ports are a set.
    ports.dedup();
    ports
}

/// The environment (`K=V` strings) that `--link NAME:ALIAS` gives container
/// `this_name`, in the order Docker generates it. `this_name` may carry
/// Docker's leading `/`.
pub fn link_env(this_name: &str, alias: &str, linked: &Linked) -> Vec<String> {
    let prefix = env_prefix(alias);
    let ip = linked.ip;
    let ports = sorted_ports(linked.exposed);
    let port_prefix = |p: &Port| format!("{prefix}_PORT_{}_{}", p.num, p.proto.to_uppercase());

    let mut env = Vec::with_capacity(2 + ports.len() * 4 + linked.env.len());
    if let Some(first) = ports.first() {
        env.push(format!(
            "{prefix}_PORT={}://{ip}:{}",
            first.proto, first.num
        ));
        let (mut start, mut end) = (first, first);
        for (i, p) in ports.iter().enumerate() {
            let pp = port_prefix(p);
            env.push(format!("{pp}={}://{ip}:{}", p.proto, p.num));
            env.push(format!("{pp}_ADDR={ip}"));
            env.push(format!("{pp}_PORT={}", p.num));
            env.push(format!("{pp}_PROTO={}", p.proto));

            if u32::from(p.num) == u32::from(end.num) + 1 && p.proto == start.proto {
                end = p;
                if i < ports.len() - 1 {
                    continue;
                }
            }
            if end != start {
                let sp = port_prefix(start);
                env.push(format!("{sp}_START={}://{ip}:{}", start.proto, start.num));
                env.push(format!("{sp}_PORT_START={}", start.num));
                env.push(format!("{sp}_END={}://{ip}:{}", end.proto, end.num));
                env.push(format!("{sp}_PORT_END={}", end.num));
            }
            (start, end) = (p, p);
        }
    }

    env.push(format!("{prefix}_NAME={}", link_path(this_name, alias)));

    for var in linked.env {
        let Some((name, value)) = var.split_once('=') else {
            continue;
        };
        // Docker skips these two, which image builds add.
        if name == "HOME" || name == "PATH" {
            continue;
        }
        env.push(format!("{prefix}_ENV_{name}={value}"));
    }
    env
}

/// The `/etc/hosts` line for the link, without the trailing newline:
/// `IP<TAB>ALIAS SHORTID NAME`, NAME left out when it equals ALIAS. The short
/// id stands for the linked container's hostname, which is what Docker
/// writes; a container with its own `--hostname` uses
/// [`hosts_line_with_hostname`].
pub fn hosts_line(alias: &str, linked: &Linked) -> String {
    hosts_line_with_hostname(alias, short_id(linked.id), linked)
}

/// [`hosts_line`] with the linked container's hostname given explicitly
/// (Docker writes `child.Config.Hostname`, which defaults to the short id).
pub fn hosts_line_with_hostname(alias: &str, hostname: &str, linked: &Linked) -> String {
    let name = linked.name.strip_prefix('/').unwrap_or(linked.name);
    let mut line = format!("{}\t{alias}", linked.ip);
    if !hostname.is_empty() {
        line.push(' ');
        line.push_str(hostname);
    }
    if alias != name && !name.is_empty() {
        line.push(' ');
        line.push_str(name);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB_IP: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 5);
    /// Seed 004 shows only the short id `6e5cdeb2d300`; the rest is made up.
    const DB_ID: &str = "6e5cdeb2d3000f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899a";

    fn linked<'a>(
        name: &'a str,
        ip: Ipv4Addr,
        exposed: &'a [(u16, &'a str)],
        env: &'a [String],
    ) -> Linked<'a> {
        Linked {
            name,
            id: DB_ID,
            ip,
            exposed,
            env,
        }
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    // ---- parse_link ----

    #[test]
    fn name_alone_is_its_own_alias() {
        let l = parse_link("db").unwrap();
        assert_eq!(
            l,
            LinkSpec {
                name: "db".into(),
                alias: "db".into()
            }
        );
    }

    #[test]
    fn name_and_alias_split_on_the_colon() {
        let l = parse_link("db:webdb").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("db", "webdb"));
        assert_eq!(l.to_string(), "db:webdb");
        assert_eq!(parse_link(&l.to_string()).unwrap(), l);
    }

    #[test]
    fn hostconfig_form_keeps_the_last_alias_component() {
        // `docker inspect -f "{{ .HostConfig.Links }}" web` shows [/db:/web/db].
        let l = parse_link("/db:/web/webdb").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("db", "webdb"));
        let l = parse_link("/db").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("db", "db"));
    }

    #[test]
    fn empty_spec_is_rejected_with_dockers_message() {
        let e = parse_link("").unwrap_err();
        assert_eq!(e, LinkError::Empty);
        assert_eq!(e.to_string(), "empty string specified for links");
    }

    #[test]
    fn more_than_one_colon_is_rejected_with_dockers_message() {
        let e = parse_link("a:b:c").unwrap_err();
        assert_eq!(e.to_string(), "bad format for links: a:b:c");
        assert!(matches!(parse_link("::"), Err(LinkError::BadFormat(_))));
        // Found by the property tests: a newline in the spec made a two-line error.
        let e = parse_link("a\nb:c:d").unwrap_err();
        assert_eq!(e.to_string(), "bad format for links: a\\nb:c:d");
    }

    #[test]
    fn empty_name_or_alias_is_rejected() {
        assert!(matches!(parse_link(":db"), Err(LinkError::EmptyName(_))));
        assert!(matches!(parse_link("db:"), Err(LinkError::EmptyAlias(_))));
        assert!(matches!(parse_link(":"), Err(LinkError::EmptyName(_))));
        assert!(matches!(parse_link("/"), Err(LinkError::EmptyName(_))));
    }

    #[test]
    fn whitespace_control_and_slashes_are_rejected() {
        for bad in ["db:my alias", "d b", "db:a\tb", "db:a/b", "a/b:c", "db:\n"] {
            let e = parse_link(bad).unwrap_err();
            assert!(
                matches!(e, LinkError::InvalidChars { .. }),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn error_messages_are_one_line() {
        for bad in ["", "a:b:c", ":x", "x:", "x:a b", "x:a\nb"] {
            let msg = parse_link(bad).unwrap_err().to_string();
            assert!(!msg.contains('\n'), "{bad:?} gave {msg:?}");
        }
    }

    // ---- link_env: the seed examples ----

    #[test]
    fn seed_004_env_example_reproduced_verbatim() {
        // Seed 004: `docker run --rm --name web2 --link db:db training/webapp env`,
        // db (training/postgres) at 172.17.0.5 exposing 5432/tcp. These are the
        // lines the article prints, in `env`'s order.
        let seed = "
            DB_NAME=/web2/db
            DB_PORT=tcp://172.17.0.5:5432
            DB_PORT_5432_TCP=tcp://172.17.0.5:5432
            DB_PORT_5432_TCP_PROTO=tcp
            DB_PORT_5432_TCP_PORT=5432
            DB_PORT_5432_TCP_ADDR=172.17.0.5
        ";
        let l = parse_link("db:db").unwrap();
        let env = link_env(
            "web2",
            &l.alias,
            &linked("db", DB_IP, &[(5432, "tcp")], &[]),
        );
        assert_eq!(sorted(env.clone()), sorted(lines(seed)));
        // And Docker's generation order.
        assert_eq!(
            env,
            [
                "DB_PORT=tcp://172.17.0.5:5432",
                "DB_PORT_5432_TCP=tcp://172.17.0.5:5432",
                "DB_PORT_5432_TCP_ADDR=172.17.0.5",
                "DB_PORT_5432_TCP_PORT=5432",
                "DB_PORT_5432_TCP_PROTO=tcp",
                "DB_NAME=/web2/db",
            ]
        );
    }

    #[test]
    fn seed_004_webdb_variables() {
        // Seed 004: web linked with `--link db:webdb`, db at 172.17.0.82.
        let ip = Ipv4Addr::new(172, 17, 0, 82);
        let env = link_env("web", "webdb", &linked("db", ip, &[(5432, "tcp")], &[]));
        for want in [
            "WEBDB_NAME=/web/webdb",
            "WEBDB_PORT_5432_TCP_ADDR=172.17.0.82",
            "WEBDB_PORT_5432_TCP_PORT=5432",
            "WEBDB_PORT_5432_TCP_PROTO=tcp",
            "WEBDB_PORT=tcp://172.17.0.82:5432",
        ] {
            assert!(env.iter().any(|e| e == want), "{want} missing from {env:?}");
        }
    }

    #[test]
    fn seed_004_hosts_line_reproduced_verbatim() {
        // Seed 004: `--link db:webdb`; the article's `cat /etc/hosts` shows
        // "172.17.0.5  webdb 6e5cdeb2d300 db" (its tab rendered as spaces).
        let seed = "172.17.0.5  webdb 6e5cdeb2d300 db";
        let l = parse_link("db:webdb").unwrap();
        let line = hosts_line(&l.alias, &linked("db", DB_IP, &[(5432, "tcp")], &[]));
        assert_eq!(line, "172.17.0.5\twebdb 6e5cdeb2d300 db");
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            seed.split_whitespace().collect::<Vec<_>>()
        );
    }

    #[test]
    fn four_exposed_ports_give_twelve_port_variables_plus_default() {
        // Seed 004's arithmetic: 4 ports → 12 of _ADDR/_PORT/_PROTO.
        let ports = [(5432, "tcp"), (6000, "tcp"), (7000, "udp"), (8000, "udp")];
        let env = link_env("web", "webdb", &linked("db", DB_IP, &ports, &[]));
        let triples = env
            .iter()
            .filter(|e| {
                let k = e.split('=').next().unwrap();
                k.ends_with("_ADDR")
                    || k.ends_with("_TCP_PORT")
                    || k.ends_with("_UDP_PORT")
                    || k.ends_with("_PROTO")
            })
            .count();
        assert_eq!(triples, 12);
        assert_eq!(env[0], "WEBDB_PORT=tcp://172.17.0.5:5432");
    }

    // ---- link_env: naming ----

    #[test]
    fn prefix_is_uppercased_with_dashes_as_underscores_but_name_path_keeps_alias() {
        let env = link_env("/web", "my-db.1", &linked("db", DB_IP, &[(80, "tcp")], &[]));
        assert_eq!(env[0], "MY_DB.1_PORT=tcp://172.17.0.5:80");
        assert!(env.contains(&"MY_DB.1_NAME=/web/my-db.1".to_string()));
    }

    #[test]
    fn this_name_may_carry_dockers_leading_slash() {
        let a = link_env("/web2", "db", &linked("db", DB_IP, &[], &[]));
        let b = link_env("web2", "db", &linked("db", DB_IP, &[], &[]));
        assert_eq!(a, b);
        assert_eq!(a, ["DB_NAME=/web2/db"]);
        assert_eq!(link_path("/web2", "db"), "/web2/db");
    }

    #[test]
    fn prefix_follows_gos_single_rune_uppercasing() {
        assert_eq!(env_prefix("straße-x"), "STRAßE_X");
        assert_eq!(env_prefix("Db"), "DB");
    }

    // ---- link_env: ports ----

    #[test]
    fn no_exposed_ports_gives_only_name_and_env() {
        let env = [String::from("A=1")];
        let got = link_env("web", "db", &linked("db", DB_IP, &[], &env));
        assert_eq!(got, ["DB_NAME=/web/db", "DB_ENV_A=1"]);
    }

    #[test]
    fn default_port_prefers_tcp_for_the_same_number() {
        let env = link_env(
            "web",
            "db",
            &linked("db", DB_IP, &[(53, "udp"), (53, "tcp")], &[]),
        );
        assert_eq!(env[0], "DB_PORT=tcp://172.17.0.5:53");
        assert_eq!(env[1], "DB_PORT_53_TCP=tcp://172.17.0.5:53");
        assert_eq!(env[5], "DB_PORT_53_UDP=udp://172.17.0.5:53");
    }

    #[test]
    fn default_port_is_the_lowest_tcp_port_even_below_a_lower_udp_port() {
        // moby >= 28 sorts every TCP port before any other protocol.
        let env = link_env(
            "web",
            "db",
            &linked("db", DB_IP, &[(53, "udp"), (80, "tcp")], &[]),
        );
        assert_eq!(env[0], "DB_PORT=tcp://172.17.0.5:80");
        assert_eq!(env[1], "DB_PORT_80_TCP=tcp://172.17.0.5:80");
        assert_eq!(env[5], "DB_PORT_53_UDP=udp://172.17.0.5:53");
    }

    #[test]
    fn default_port_is_the_lowest_udp_port_when_there_is_no_tcp() {
        let env = link_env(
            "web",
            "dns",
            &linked("d", DB_IP, &[(5353, "udp"), (53, "udp")], &[]),
        );
        assert_eq!(env[0], "DNS_PORT=udp://172.17.0.5:53");
    }

    #[test]
    fn each_port_gets_url_addr_port_proto_in_that_order() {
        let env = link_env("web", "db", &linked("db", DB_IP, &[(6379, "tcp")], &[]));
        assert_eq!(
            env[1..5],
            [
                "DB_PORT_6379_TCP=tcp://172.17.0.5:6379",
                "DB_PORT_6379_TCP_ADDR=172.17.0.5",
                "DB_PORT_6379_TCP_PORT=6379",
                "DB_PORT_6379_TCP_PROTO=tcp",
            ]
        );
    }

    #[test]
    fn protocols_are_normalized_and_duplicates_dropped() {
        let a = link_env(
            "web",
            "db",
            &linked(
                "db",
                DB_IP,
                &[(80, "TCP"), (80, "tcp"), (80, ""), (53, "Udp")],
                &[],
            ),
        );
        let b = link_env(
            "web",
            "db",
            &linked("db", DB_IP, &[(53, "udp"), (80, "tcp")], &[]),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn consecutive_ports_get_range_variables_as_in_mobys_test() {
        // moby's TestLinkMultipleEnv, with our IP and names.
        let ip = Ipv4Addr::new(172, 0, 17, 2);
        let ports = [
            (6300, "udp"),
            (6379, "tcp"),
            (6380, "tcp"),
            (6381, "tcp"),
            (6382, "udp"),
        ];
        let env = [String::from("PASSWORD=gordon")];
        let got = link_env("db", "docker", &linked("docker", ip, &ports, &env));
        assert_eq!(
            got,
            [
                "DOCKER_PORT=tcp://172.0.17.2:6379",
                "DOCKER_PORT_6379_TCP=tcp://172.0.17.2:6379",
                "DOCKER_PORT_6379_TCP_ADDR=172.0.17.2",
                "DOCKER_PORT_6379_TCP_PORT=6379",
                "DOCKER_PORT_6379_TCP_PROTO=tcp",
                "DOCKER_PORT_6380_TCP=tcp://172.0.17.2:6380",
                "DOCKER_PORT_6380_TCP_ADDR=172.0.17.2",
                "DOCKER_PORT_6380_TCP_PORT=6380",
                "DOCKER_PORT_6380_TCP_PROTO=tcp",
                "DOCKER_PORT_6381_TCP=tcp://172.0.17.2:6381",
                "DOCKER_PORT_6381_TCP_ADDR=172.0.17.2",
                "DOCKER_PORT_6381_TCP_PORT=6381",
                "DOCKER_PORT_6381_TCP_PROTO=tcp",
                "DOCKER_PORT_6300_UDP=udp://172.0.17.2:6300",
                "DOCKER_PORT_6300_UDP_ADDR=172.0.17.2",
                "DOCKER_PORT_6300_UDP_PORT=6300",
                "DOCKER_PORT_6300_UDP_PROTO=udp",
                // the run 6379-6381/tcp ends at 6300/udp: reported after it
                "DOCKER_PORT_6379_TCP_START=tcp://172.0.17.2:6379",
                "DOCKER_PORT_6379_TCP_PORT_START=6379",
                "DOCKER_PORT_6379_TCP_END=tcp://172.0.17.2:6381",
                "DOCKER_PORT_6379_TCP_PORT_END=6381",
                "DOCKER_PORT_6382_UDP=udp://172.0.17.2:6382",
                "DOCKER_PORT_6382_UDP_ADDR=172.0.17.2",
                "DOCKER_PORT_6382_UDP_PORT=6382",
                "DOCKER_PORT_6382_UDP_PROTO=udp",
                "DOCKER_NAME=/db/docker",
                "DOCKER_ENV_PASSWORD=gordon",
            ]
        );
    }

    #[test]
    fn a_range_ending_the_list_is_reported_last() {
        let env = link_env(
            "web",
            "db",
            &linked("db", DB_IP, &[(81, "tcp"), (80, "tcp")], &[]),
        );
        assert_eq!(
            env,
            [
                "DB_PORT=tcp://172.17.0.5:80",
                "DB_PORT_80_TCP=tcp://172.17.0.5:80",
                "DB_PORT_80_TCP_ADDR=172.17.0.5",
                "DB_PORT_80_TCP_PORT=80",
                "DB_PORT_80_TCP_PROTO=tcp",
                "DB_PORT_81_TCP=tcp://172.17.0.5:81",
                "DB_PORT_81_TCP_ADDR=172.17.0.5",
                "DB_PORT_81_TCP_PORT=81",
                "DB_PORT_81_TCP_PROTO=tcp",
                "DB_PORT_80_TCP_START=tcp://172.17.0.5:80",
                "DB_PORT_80_TCP_PORT_START=80",
                "DB_PORT_80_TCP_END=tcp://172.17.0.5:81",
                "DB_PORT_80_TCP_PORT_END=81",
                "DB_NAME=/web/db",
            ]
        );
    }

    #[test]
    fn separate_runs_get_separate_range_variables() {
        let ports = [
            (80, "tcp"),
            (81, "tcp"),
            (90, "tcp"),
            (91, "tcp"),
            (92, "tcp"),
        ];
        let env = link_env("web", "db", &linked("db", DB_IP, &ports, &[]));
        let ranges: Vec<&str> = env
            .iter()
            .map(String::as_str)
            .filter(|e| e.contains("_START=") || e.contains("_END="))
            .collect();
        assert_eq!(
            ranges,
            [
                "DB_PORT_80_TCP_START=tcp://172.17.0.5:80",
                "DB_PORT_80_TCP_PORT_START=80",
                "DB_PORT_80_TCP_END=tcp://172.17.0.5:81",
                "DB_PORT_80_TCP_PORT_END=81",
                "DB_PORT_90_TCP_START=tcp://172.17.0.5:90",
                "DB_PORT_90_TCP_PORT_START=90",
                "DB_PORT_90_TCP_END=tcp://172.17.0.5:92",
                "DB_PORT_90_TCP_PORT_END=92",
            ]
        );
        // The first run's variables come right after port 90's four.
        let i = env
            .iter()
            .position(|e| e == "DB_PORT_90_TCP_PROTO=tcp")
            .unwrap();
        assert_eq!(env[i + 1], "DB_PORT_80_TCP_START=tcp://172.17.0.5:80");
    }

    #[test]
    fn ranges_never_mix_protocols() {
        let env = link_env(
            "web",
            "db",
            &linked("db", DB_IP, &[(80, "tcp"), (81, "udp")], &[]),
        );
        assert!(!env
            .iter()
            .any(|e| e.contains("_START") || e.contains("_END")));
        assert_eq!(env.len(), 1 + 8 + 1);
    }

    #[test]
    fn udp_runs_get_range_variables_too() {
        let env = link_env(
            "web",
            "db",
            &linked("db", DB_IP, &[(53, "udp"), (54, "udp")], &[]),
        );
        assert!(env.contains(&"DB_PORT_53_UDP_END=udp://172.17.0.5:54".to_string()));
        assert!(env.contains(&"DB_PORT_53_UDP_PORT_END=54".to_string()));
    }

    #[test]
    fn port_65535_does_not_overflow_range_detection() {
        let env = link_env(
            "web",
            "db",
            &linked("db", DB_IP, &[(65535, "tcp"), (0, "tcp")], &[]),
        );
        assert!(!env.iter().any(|e| e.contains("_START")));
        let env = link_env(
            "web",
            "db",
            &linked("db", DB_IP, &[(65534, "tcp"), (65535, "tcp")], &[]),
        );
        assert!(env.contains(&"DB_PORT_65534_TCP_PORT_END=65535".to_string()));
    }

    // ---- link_env: the linked container's environment ----

    #[test]
    fn linked_env_is_passed_through_with_prefix_keeping_names_and_order() {
        let env: Vec<String> = ["PASSWORD=gordon", "lower=x", "EMPTY=", "EQ=a=b=c"]
            .map(String::from)
            .into();
        let got = link_env("web", "db", &linked("db", DB_IP, &[], &env));
        assert_eq!(
            got,
            [
                "DB_NAME=/web/db",
                "DB_ENV_PASSWORD=gordon",
                "DB_ENV_lower=x",
                "DB_ENV_EMPTY=",
                "DB_ENV_EQ=a=b=c",
            ]
        );
    }

    #[test]
    fn home_and_path_are_skipped_but_only_exactly() {
        let env: Vec<String> = ["HOME=/root", "PATH=/bin", "home=h", "PATHS=p", "A=1"]
            .map(String::from)
            .into();
        let got = link_env("web", "db", &linked("db", DB_IP, &[], &env));
        assert_eq!(
            got,
            [
                "DB_NAME=/web/db",
                "DB_ENV_home=h",
                "DB_ENV_PATHS=p",
                "DB_ENV_A=1"
            ]
        );
    }

    #[test]
    fn env_entries_without_equals_are_skipped() {
        let env: Vec<String> = ["NOVALUE", "B=2"].map(String::from).into();
        let got = link_env("web", "db", &linked("db", DB_IP, &[], &env));
        assert_eq!(got, ["DB_NAME=/web/db", "DB_ENV_B=2"]);
    }

    // ---- hosts_line ----

    #[test]
    fn hosts_line_omits_the_name_when_the_alias_is_the_name() {
        let line = hosts_line("db", &linked("db", DB_IP, &[], &[]));
        assert_eq!(line, "172.17.0.5\tdb 6e5cdeb2d300");
    }

    #[test]
    fn hosts_line_accepts_dockers_leading_slash_in_the_name() {
        let line = hosts_line("webdb", &linked("/db", DB_IP, &[], &[]));
        assert_eq!(line, "172.17.0.5\twebdb 6e5cdeb2d300 db");
        assert_eq!(
            hosts_line("db", &linked("/db", DB_IP, &[], &[])),
            "172.17.0.5\tdb 6e5cdeb2d300"
        );
    }

    #[test]
    fn hosts_line_uses_the_short_id_whatever_the_id_length() {
        let mut l = linked("db", DB_IP, &[], &[]);
        l.id = "6e5cdeb2d300";
        assert_eq!(hosts_line("x", &l), "172.17.0.5\tx 6e5cdeb2d300 db");
        l.id = "abc";
        assert_eq!(hosts_line("x", &l), "172.17.0.5\tx abc db");
        assert_eq!(short_id(DB_ID), "6e5cdeb2d300");
    }

    #[test]
    fn hosts_line_uses_a_custom_hostname_when_given() {
        let l = linked("db", DB_IP, &[], &[]);
        assert_eq!(
            hosts_line_with_hostname("webdb", "dbhost", &l),
            "172.17.0.5\twebdb dbhost db"
        );
    }

    #[test]
    fn hosts_line_follows_a_new_address_while_env_is_a_snapshot() {
        // Seed 003: after db restarts with a new IP, the hosts entry changes;
        // the variables computed at the linking container's start do not.
        let before = link_env("web", "db", &linked("db", DB_IP, &[(80, "tcp")], &[]));
        let new_ip = Ipv4Addr::new(172, 17, 0, 9);
        let after = linked("db", new_ip, &[(80, "tcp")], &[]);
        assert_eq!(hosts_line("db", &after), "172.17.0.9\tdb 6e5cdeb2d300");
        assert!(before.contains(&"DB_PORT=tcp://172.17.0.5:80".to_string()));
    }
}

/// Property tests of `--link`: what parses prints back as itself, what must be refused is, and
/// every refusal is one line. `PROPTEST_CASES` sets the number of cases.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    /// A name or alias Docker users write.
    fn part() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}"
    }

    fn check_error(spec: &str, e: &LinkError) -> Result<(), TestCaseError> {
        let text = e.to_string();
        prop_assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");
        if !spec.is_empty() {
            prop_assert!(
                text.contains(&format!("{spec:?}"))
                    || text.contains(&*spec.escape_debug().to_string()),
                "{text} does not name {spec:?}"
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn name_and_alias_round_trip(name in part(), alias in proptest::option::of(part()), slash in any::<bool>()) {
            let lead = if slash { "/" } else { "" };
            let spec = match &alias {
                Some(a) => format!("{lead}{name}:{a}"),
                None => format!("{lead}{name}"),
            };
            let parsed = parse_link(&spec).unwrap();
            prop_assert_eq!(&parsed.name, &name);
            prop_assert_eq!(&parsed.alias, alias.as_ref().unwrap_or(&name));
            prop_assert_eq!(parse_link(&parsed.to_string()), Ok(parsed));
        }

        #[test]
        fn dockers_stored_form_keeps_the_last_path_component(name in part(), this in part(), alias in part()) {
            let parsed = parse_link(&format!("/{name}:/{this}/{alias}")).unwrap();
            prop_assert_eq!(parsed, LinkSpec { name, alias });
        }

        #[test]
        fn any_text_parses_to_a_usable_link_or_one_line_error(
            spec in prop_oneof!["[a-z:/ \\t\\n.\\x00-]{0,12}", any::<String>()]
        ) {
            match parse_link(&spec) {
                Ok(link) => {
                    for p in [&link.name, &link.alias] {
                        prop_assert!(!p.is_empty());
                        prop_assert!(!p.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == ':'));
                    }
                    prop_assert_eq!(parse_link(&link.to_string()), Ok(link));
                }
                Err(e) => check_error(&spec, &e)?,
            }
        }

        #[test]
        fn more_than_one_colon_is_refused(parts in proptest::collection::vec("[a-z]{0,4}", 3..6)) {
            let spec = parts.join(":");
            prop_assert_eq!(parse_link(&spec), Err(LinkError::BadFormat(spec.clone())));
        }
    }
}
