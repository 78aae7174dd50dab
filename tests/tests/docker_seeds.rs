//! Seeds 000, 002 and 004 (container communication on Docker) command for command on two
//! dockerds, each in a throwaway host of its own: stock Docker (iptables, docker-proxy, the
//! default bridge; networks of driver `bridge`) and dockerd on netd's plugin (driver `netd`).
//! What each side shows (reachability by address and by name, isolation of two networks and
//! `docker network connect`, `--link` on a user-defined network, the `-p` forms from the outside
//! and from the host, port listings) is collected as plain data, with what differs by nature
//! written the same way on both sides (an address as its place in its subnet, a host port
//! Docker picks as `EPHEMERAL`), printed side by side and held equal, but for the intended
//! differences in [`KNOWN`], which README.md lists too ("Differences from stock Docker").
//!
//! Both sides start at once (each dockerd once, for all three seeds); both get the same outside
//! world, with the same dnsmasq as upstream DNS server (it knows no name), so that a name
//! neither side knows fails at once on both instead of timing out on an unreachable server.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use netd_tests::{
    compare::{ephemeral, print_times, Comparison, Observed},
    docker::{docker_proxies, Docker, Flavour, IMAGE},
    wait_until, Host, Launch, OUTSIDE_IP, UPLINK_IP,
};

const GET_INDEX: &str = r"printf 'GET / HTTP/1.0\r\n\r\n'";
/// What the image's web root answers.
const GREETING: &str = "hello from docker";

/// The seeds' networks (the same subnets on both sides: each is a namespace of its own) and the
/// stock side's default bridge, after which addresses are named.
const SUBNETS: &[(&str, &str, u32)] = &[
    ("my_net2", "172.22.0.0", 16),
    ("myBridge", "192.168.0.0", 16),
    ("otherBridge", "172.23.0.0", 16),
    ("web_net", "172.24.0.0", 16),
    ("bridge", "172.17.0.0", 16),
];

/// How long an answer that should come may take (a name dockerd's events have not brought
/// yet, a port just published); what should not answer costs this much once.
const PATIENCE: Duration = Duration::from_secs(2);

/// The intended differences: observables whose name has the first text, and why.
const KNOWN: &[(&str, &str)] = &[
    (
        "default bridge",
        "the plugin's dockerd runs with --bridge=none: no docker0; a container without \
         --network has only lo (so no ping, and a legacy link without hosts line or address)",
    ),
    (
        "docker ps PORTS",
        "dockerd shows no remote driver's port map (`netd container port` lists it)",
    ),
    (
        "IPv6 host bindings",
        "netd publishes IPv4 only (its networks are IPv4 only); docker-proxy also binds [::]",
    ),
    (
        "datapath",
        "the point of netd: an eBPF datapath, no iptables rule and no docker-proxy",
    ),
];

/// One dockerd in a host of its own (dockerd is dropped first, then its host).
struct Side {
    docker: Docker,
    host: Host,
}

impl Side {
    fn start(flavour: Flavour) -> Option<Side> {
        let (host, docker): (Host, fn(&Host) -> Docker) = match flavour {
            Flavour::NetdPlugin => (Docker::host(Launch::Nsenter)?, Docker::start),
            Flavour::Stock => (Docker::stock_host()?, Docker::start_stock),
        };
        let docker = docker(&host);
        if flavour == Flavour::NetdPlugin {
            // netd names containers from dockerd's events and, whenever it (re)subscribes,
            // from the list of every container; the comparison starts once it follows the
            // events, so that no name waits for netd's retry (every second while dockerd starts).
            wait_until(
                "netd following dockerd's events",
                Duration::from_secs(10),
                || {
                    host.daemon_log()
                        .contains("following dockerd's events socket=")
                },
            );
        }
        Some(Side { docker, host })
    }

    fn flavour(&self) -> Flavour {
        self.docker.flavour()
    }

    /// `docker network create -d DRIVER --subnet SUBNET [EXTRA] NAME`, SUBNET from [`SUBNETS`].
    fn network(&self, name: &str, extra: &[&str]) {
        let (_, base, len) = SUBNETS.iter().find(|(n, _, _)| *n == name).expect("subnet");
        let subnet = format!("{base}/{len}");
        let mut args = vec!["network", "create", "-d", self.flavour().driver()];
        args.extend(["--subnet", &subnet]);
        args.extend_from_slice(extra);
        args.push(name);
        self.docker.ok(&args);
    }

    /// `docker run -d --stop-timeout 1 --name NAME ARGS IMAGE CMD`, noted under `scene` as the
    /// command and whether the container started.
    fn run(&self, seen: &mut Observed, scene: &str, name: &str, args: &[&str], cmd: &[&str]) {
        let mut all = vec!["run", "-d", "--stop-timeout", "1", "--name", name];
        all.extend_from_slice(args);
        all.push(IMAGE);
        all.extend_from_slice(cmd);
        let out = self.docker.docker(&all);
        let value = if out.ok() {
            "started".to_string()
        } else {
            format!("failed: {}", out.stderr.trim())
        };
        let mut shown: Vec<&str> = args.to_vec();
        shown.extend(["--name", name]);
        shown.extend_from_slice(cmd);
        let shown = shown.join(" ").replace(UPLINK_IP, "UPLINK");
        seen.note(format!("{scene}: docker run {shown}"), value);
    }

    /// A container that only waits.
    fn idle(&self, seen: &mut Observed, scene: &str, name: &str, args: &[&str]) {
        self.run(seen, scene, name, args, &["sleep", "600"]);
    }

    /// busybox httpd serving the image's web root on `port`.
    fn web(&self, seen: &mut Observed, scene: &str, name: &str, port: &str, args: &[&str]) {
        self.run(
            seen,
            scene,
            name,
            args,
            &["httpd", "-f", "-p", port, "-h", "/www"],
        );
    }

    /// Container `name`'s address on `network`, as Docker reports it (empty if none).
    fn address(&self, name: &str, network: &str) -> String {
        let format = format!(
            "{{{{with index .NetworkSettings.Networks \"{network}\"}}}}\
             {{{{.IPAddress}}}}{{{{end}}}}"
        );
        let out = self.docker.docker(&["inspect", name, "--format", &format]);
        out.stdout.trim().to_string()
    }

    /// `ping -c 3 TARGET` from `from` (0.2 s apart): `answered (ADDRESS)`, `no answer
    /// (ADDRESS)`, or ping's complaint about the name.
    fn ping(&self, seed: Seed, from: &str, target: &str) -> String {
        if target.is_empty() {
            return "no address to ping".into();
        }
        check(
            seed,
            || {
                let script = format!("ping -c 3 -i 0.2 -W 1 {target} 2>&1");
                let out = self.docker.exec(from, &script);
                ping_outcome(&out.stdout)
            },
            |v| v.starts_with("answered"),
        )
    }

    /// `nslookup NAME` from `from`: the IPv4 addresses answered, or `not found`.
    fn lookup(&self, seed: Seed, from: &str, name: &str) -> String {
        check(
            seed,
            || {
                let out = self.docker.exec(from, &format!("nslookup {name} 2>&1"));
                lookup_outcome(&out.stdout)
            },
            |v| v != "not found",
        )
    }

    /// What `sh -c SCRIPT` prints in container `name`, one line per line of it, or `none`.
    fn shell(&self, name: &str, script: &str) -> String {
        let out = self.docker.exec(name, script).stdout;
        let lines: Vec<String> = out
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            "none".into()
        } else {
            label(&lines.join("; "))
        }
    }

    /// Container `name`'s IPv4 addresses, as `IFACE ADDRESS/LEN`.
    fn interfaces(&self, name: &str) -> String {
        self.shell(
            name,
            "ip -o -4 addr show | awk '$2 != \"lo\" { print $2, $4 }'",
        )
    }

    /// Whether container `name`'s MAC is Docker's (`02:42` and its address) or what it is.
    fn mac(&self, name: &str, network: &str) -> String {
        let mac = self.shell(name, "cat /sys/class/net/eth0/address");
        let ip: Option<Ipv4Addr> = self.address(name, network).parse().ok();
        let docker_mac = ip.map(|ip| {
            let [a, b, c, d] = ip.octets();
            format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
        });
        if docker_mac.as_deref() == Some(mac.as_str()) {
            "02:42 and its address".into()
        } else {
            mac
        }
    }

    /// Whether `GET /` to `ip:port` from the outside namespace is answered.
    fn get_from_outside(&self, seed: Seed, ip: &str, port: &str) -> String {
        let script = format!("{GET_INDEX} | socat -T2 - TCP:{ip}:{port},connect-timeout=1");
        check(
            seed,
            || answer(&self.host.outside(&["sh", "-c", &script]).stdout),
            |v| v == "answers",
        )
    }

    /// Whether `GET /` to `ip:port` from a host process is answered.
    fn get_from_host(&self, seed: Seed, ip: &str, port: &str) -> String {
        let script = format!("{GET_INDEX} | socat -T2 - TCP:{ip}:{port},connect-timeout=1");
        check(
            seed,
            || answer(&self.host.on_host_in_cgroup(&script).stdout),
            |v| v == "answers",
        )
    }

    /// The ports published for container `name`, as its network's driver lists them: `docker
    /// port` for stock Docker, `netd container port` for netd (dockerd lists no remote
    /// driver's); raw lines.
    fn port_lines(&self, name: &str) -> Vec<String> {
        let out = match self.flavour() {
            Flavour::Stock => self.docker.docker(&["port", name]).stdout,
            Flavour::NetdPlugin => {
                let netd_name = format!("docker-{}", self.docker.sandbox(name));
                self.host.netd(&["container", "port", &netd_name]).stdout
            }
        };
        let mut lines: Vec<String> = out.lines().map(|l| l.trim().to_string()).collect();
        lines.retain(|l| !l.is_empty());
        lines.sort();
        lines
    }

    /// dockerd's own listing of `name`'s ports (`docker ps`' PORTS column).
    fn ps_ports(&self, name: &str) -> String {
        let filter = format!("name=^{name}$");
        let out = self
            .docker
            .docker(&["ps", "--filter", &filter, "--format", "{{.Ports}}"]);
        let ports = out.stdout.trim();
        if ports.is_empty() {
            "none".into()
        } else {
            ephemeral(&label(ports))
        }
    }
}

/// `answers` if the reply has the web root's greeting.
fn answer(reply: &str) -> String {
    if reply.contains(GREETING) {
        "answers".into()
    } else {
        "no answer".into()
    }
}

/// What the seed shows for a check: an answer (asked again until it comes, for up to
/// [`PATIENCE`]), or none (asked once: one answer would be a leak).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seed {
    Answers,
    Refuses,
}

/// Asks until the value is `good` or [`PATIENCE`] is over, or once if the seed `Refuses`; the
/// last value.
fn check(seed: Seed, ask: impl Fn() -> String, good: impl Fn(&str) -> bool) -> String {
    if seed == Seed::Refuses {
        return ask();
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = ask();
        if good(&value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// busybox ping's output in short: `answered (ADDRESS)`, `no answer (ADDRESS)`, or its error.
fn ping_outcome(out: &str) -> String {
    if let Some(err) = out.lines().find(|l| l.starts_with("ping: ")) {
        return label(err.trim());
    }
    let target = out
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map_or("?", |(ip, _)| ip);
    let received = out
        .lines()
        .find_map(|l| l.split_once(" packets received"))
        .and_then(|(head, _)| head.rsplit(' ').next()?.parse::<u32>().ok())
        .unwrap_or(0);
    let outcome = if received > 0 {
        "answered"
    } else {
        "no answer"
    };
    format!("{outcome} ({})", label(target))
}

/// busybox nslookup's answer in short: the IPv4 addresses after `Name:`, or `not found`.
fn lookup_outcome(out: &str) -> String {
    let answers = out.split_once("\nName:").map_or("", |(_, rest)| rest);
    let mut ips: Vec<String> = answers
        .lines()
        .filter(|l| l.starts_with("Address"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<Ipv4Addr>().ok())
        .map(|ip| label(&ip.to_string()))
        .collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        "not found".into()
    } else {
        ips.join(", ")
    }
}

/// An address's name: `NETWORK#N` (the Nth address of one of [`SUBNETS`]), `UPLINK`,
/// `OUTSIDE`, or itself.
fn address_name(ip: Ipv4Addr) -> String {
    if ip.to_string() == UPLINK_IP {
        return "UPLINK".into();
    }
    if ip.to_string() == OUTSIDE_IP {
        return "OUTSIDE".into();
    }
    for (name, base, len) in SUBNETS {
        let base = u32::from(base.parse::<Ipv4Addr>().expect("subnet"));
        let mask = u32::MAX << (32 - len);
        if u32::from(ip) & mask == base {
            return format!("{name}#{}", u32::from(ip) - base);
        }
    }
    ip.to_string()
}

/// `text` with every IPv4 address in it named by [`address_name`] and every 12-digit container
/// ID as `ID`.
fn label(text: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let trimmed = word.trim_end_matches('.');
        if let Ok(ip) = trimmed.parse::<Ipv4Addr>() {
            out.push_str(&address_name(ip));
            out.push_str(&word[trimmed.len()..]);
        } else if word.len() == 12 && word.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str("ID");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() || c == '.' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Whether a port listing's line is an IPv6 binding (`[::]:8082`, `:::8082`).
fn ipv6_binding(line: &str) -> bool {
    line.split(" -> ")
        .nth(1)
        .is_some_and(|to| to.contains("::"))
}

/// The host port of the first IPv4 binding in a listing.
fn host_port(lines: &[String]) -> String {
    lines
        .iter()
        .filter(|l| !ipv6_binding(l))
        .find_map(|l| Some(l.rsplit(':').next()?.to_string()))
        .unwrap_or_else(|| "0".into())
}

/// Seed 000: containers on `my_net2` by address and by name; the default bridge, where names do
/// not resolve; a joined container talking over 127.0.0.1.
fn seed_000(side: &Side, seen: &mut Observed) {
    side.network("my_net2", &[]);
    side.idle(seen, "000", "bbox1", &["--network", "my_net2"]);
    side.idle(seen, "000", "bbox2", &["--network", "my_net2"]);
    seen.note("000: bbox1 ip a (eth0)", side.interfaces("bbox1"));
    seen.note("000: bbox1 eth0 MAC", side.mac("bbox1", "my_net2"));
    seen.note("000: bbox2 ip a (eth0)", side.interfaces("bbox2"));
    seen.note(
        "000: docker exec bbox2 ping bbox1 -c 3",
        side.ping(Seed::Answers, "bbox2", "bbox1"),
    );
    let bbox1 = side.address("bbox1", "my_net2");
    seen.note(
        "000: docker exec bbox2 ping <bbox1's address> -c 3",
        side.ping(Seed::Answers, "bbox2", &bbox1),
    );
    seen.note(
        "000: docker exec bbox1 ping bbox2 -c 3",
        side.ping(Seed::Answers, "bbox1", "bbox2"),
    );
    let by_driver = match side.flavour() {
        Flavour::Stock => side.docker.ok(&["network", "ls", "--format", "{{.Name}}"]),
        Flavour::NetdPlugin => side.host.ok(&["network", "ls"]),
    };
    let listed = by_driver.split_whitespace().any(|w| w == "my_net2");
    seen.note(
        "000: my_net2 listed by name by its driver (docker network ls / netd network ls)",
        if listed { "yes" } else { "no" },
    );

    let scene = "000 default bridge";
    side.idle(seen, scene, "bbox3", &[]);
    side.idle(seen, scene, "bbox4", &[]);
    seen.note(
        format!("{scene}: bbox3 ip a (eth0)"),
        side.interfaces("bbox3"),
    );
    seen.note(
        format!("{scene}: docker exec bbox4 ping bbox3 -c 3"),
        side.ping(Seed::Refuses, "bbox4", "bbox3"),
    );
    let bbox3 = side.address("bbox3", "bridge");
    seen.note(
        format!("{scene}: docker exec bbox4 ping <bbox3's address> -c 3"),
        side.ping(Seed::Answers, "bbox4", &bbox3),
    );

    side.web(seen, "000", "web1", "80", &["--network", "my_net2"]);
    side.idle(seen, "000", "joined", &["--network", "container:web1"]);
    let same = side.interfaces("joined") == side.interfaces("web1");
    seen.note(
        "000: joined ip a is web1's",
        if same { "yes" } else { "no" },
    );
    let local = side
        .docker
        .exec("joined", &format!("{GET_INDEX} | nc -w 2 127.0.0.1 80"));
    seen.note(
        "000: docker exec joined: GET http://127.0.0.1/ (web1's httpd)",
        answer(&local.stdout),
    );
}

/// Seed 002: two containers on `myBridge` (`--subnet --gateway`), by name both ways; a
/// container on another network cannot reach them until `docker network connect`; `--link`.
fn seed_002(side: &Side, seen: &mut Observed) {
    let scene = "002";
    side.network("myBridge", &["--gateway", "192.168.0.1"]);
    side.network("otherBridge", &[]);
    let my_bridge = ["-p", "8080:8080", "--net", "myBridge"];
    side.web(seen, scene, "tomcat1", "8080", &my_bridge);
    side.idle(
        seen,
        scene,
        "mysql1",
        &["-p", "3306:3306", "--net", "myBridge"],
    );
    seen.note("002: tomcat1 ip a", side.interfaces("tomcat1"));
    seen.note(
        "002: docker exec tomcat1 ping mysql1",
        side.ping(Seed::Answers, "tomcat1", "mysql1"),
    );
    seen.note(
        "002: docker exec mysql1 ping tomcat1",
        side.ping(Seed::Answers, "mysql1", "tomcat1"),
    );
    seen.note(
        "002: outside: GET http://UPLINK:8080/ (tomcat1 -p 8080:8080)",
        side.get_from_outside(Seed::Answers, UPLINK_IP, "8080"),
    );

    side.idle(seen, scene, "tomcat1-other", &["--net", "otherBridge"]);
    let mysql1 = side.address("mysql1", "myBridge");
    for (when, seed) in [("before", Seed::Refuses), ("after", Seed::Answers)] {
        if when == "after" {
            side.docker
                .ok(&["network", "connect", "myBridge", "tomcat1-other"]);
            seen.note(
                "002: docker network connect myBridge tomcat1-other; ip a",
                side.interfaces("tomcat1-other"),
            );
        }
        seen.note(
            format!("002: docker exec tomcat1-other ping <mysql1's address> ({when} connect)"),
            side.ping(seed, "tomcat1-other", &mysql1),
        );
        seen.note(
            format!("002: docker exec tomcat1-other ping mysql1 ({when} connect)"),
            side.ping(seed, "tomcat1-other", "mysql1"),
        );
    }

    side.idle(
        seen,
        scene,
        "tomcat2",
        &["--net", "myBridge", "--link", "mysql1"],
    );
    seen.note(
        "002: docker exec tomcat2 (--link mysql1) ping mysql1",
        side.ping(Seed::Answers, "tomcat2", "mysql1"),
    );
    seen.note(
        "002: docker exec tomcat2 (--link mysql1) grep mysql1 /etc/hosts",
        side.shell("tomcat2", "grep -w mysql1 /etc/hosts"),
    );

    let scene = "002 default bridge";
    side.idle(seen, scene, "tomcat1-docker0", &[]);
    for (when, seed) in [("before", Seed::Refuses), ("after", Seed::Answers)] {
        if when == "after" {
            let out = side
                .docker
                .docker(&["network", "connect", "myBridge", "tomcat1-docker0"]);
            seen.note(
                format!("{scene}: docker network connect myBridge tomcat1-docker0; ip a"),
                if out.ok() {
                    side.interfaces("tomcat1-docker0")
                } else {
                    format!("failed: {}", out.stderr.trim())
                },
            );
        }
        seen.note(
            format!(
                "{scene}: docker exec tomcat1-docker0 ping <mysql1's address> ({when} connect)"
            ),
            side.ping(seed, "tomcat1-docker0", &mysql1),
        );
    }
}

/// One of seed 004's `-p` forms and what the seed says it does.
struct Form {
    container: &'static str,
    /// The flags, `UPLINK` standing for the host's uplink address.
    flags: &'static [&'static str],
    /// The host port, if the form names one.
    host_port: Option<&'static str>,
    /// Whether the port answers from the outside at the uplink's address.
    outside: Seed,
    /// Whether it answers a host process at 127.0.0.1.
    host: Seed,
}

const FORMS: [Form; 4] = [
    Form {
        container: "p1",
        flags: &["-p", "127.0.0.1:8081:80"],
        host_port: Some("8081"),
        outside: Seed::Refuses,
        host: Seed::Answers,
    },
    Form {
        container: "p2",
        flags: &["-p", "UPLINK::80"],
        host_port: None,
        outside: Seed::Answers,
        host: Seed::Refuses,
    },
    Form {
        container: "p3",
        flags: &["-p", "8082:80"],
        host_port: Some("8082"),
        outside: Seed::Answers,
        host: Seed::Answers,
    },
    Form {
        container: "p4",
        flags: &["-P", "--expose", "80"],
        host_port: None,
        outside: Seed::Answers,
        host: Seed::Answers,
    },
];

/// Seed 004: the `-p` forms, from the outside and from the host, with the ports listed; `--link
/// db:webdb` and `--link db` on a user-defined network (a name, no environment, no hosts line),
/// and on the default bridge (hosts line and environment).
fn seed_004(side: &Side, seen: &mut Observed) {
    side.network("web_net", &[]);
    let mut ipv6 = Vec::new();
    let mut ps = Vec::new();
    for form in FORMS {
        let name = form.container;
        let flags: Vec<String> = form
            .flags
            .iter()
            .map(|f| f.replace("UPLINK", UPLINK_IP))
            .collect();
        let mut args = vec!["--network", "web_net"];
        args.extend(flags.iter().map(String::as_str));
        side.web(seen, "004", name, "80", &args);
        let lines = side.port_lines(name);
        let (v6, v4): (Vec<String>, Vec<String>) =
            lines.iter().cloned().partition(|l| ipv6_binding(l));
        let what = form.flags.join(" ");
        seen.note(
            format!("004: {name} ({what}) port listing (IPv4)"),
            ephemeral(&label(&v4.join(", "))),
        );
        ipv6.push(format!("{name}: {}", ephemeral(&v6.join(", "))));
        ps.push(format!("{name}: {}", side.ps_ports(name)));
        let port = form
            .host_port
            .map_or_else(|| host_port(&lines), String::from);
        let shown = form.host_port.unwrap_or("<listed port>");
        seen.note(
            format!("004: outside: GET http://UPLINK:{shown}/ ({name})"),
            side.get_from_outside(form.outside, UPLINK_IP, &port),
        );
        seen.note(
            format!("004: host: GET http://127.0.0.1:{shown}/ ({name})"),
            side.get_from_host(form.host, "127.0.0.1", &port),
        );
    }
    seen.note("004 IPv6 host bindings (docker port)", ipv6.join("; "));
    seen.note("004 docker ps PORTS", ps.join("; "));

    let scene = "004";
    let db_args = [
        "--network",
        "web_net",
        "--expose",
        "5432",
        "-e",
        "PGDATA=/db",
    ];
    side.idle(seen, scene, "db", &db_args);
    side.idle(
        seen,
        scene,
        "web",
        &["--network", "web_net", "--link", "db:webdb"],
    );
    side.idle(
        seen,
        scene,
        "web2",
        &["--network", "web_net", "--link", "db"],
    );
    side.idle(seen, scene, "stranger", &["--network", "web_net"]);
    seen.note(
        "004: docker exec web (--link db:webdb) nslookup webdb",
        side.lookup(Seed::Answers, "web", "webdb"),
    );
    seen.note(
        "004: docker exec web (--link db:webdb) ping webdb",
        side.ping(Seed::Answers, "web", "webdb"),
    );
    seen.note(
        "004: docker exec web (--link db:webdb): WEBDB_* in its environment",
        side.shell(
            "web",
            "tr '\\0' '\\n' < /proc/1/environ | grep ^WEBDB_ | sort",
        ),
    );
    seen.note(
        "004: docker exec web (--link db:webdb) grep webdb /etc/hosts",
        side.shell("web", "grep -w webdb /etc/hosts"),
    );
    seen.note(
        "004: docker inspect -f {{.HostConfig.Links}} web",
        side.docker
            .ok(&["inspect", "-f", "{{.HostConfig.Links}}", "web"])
            .trim(),
    );
    seen.note(
        "004: docker exec stranger (no link) nslookup webdb",
        side.lookup(Seed::Refuses, "stranger", "webdb"),
    );
    seen.note(
        "004: docker exec db nslookup webdb (links are one-way)",
        side.lookup(Seed::Refuses, "db", "webdb"),
    );
    seen.note(
        "004: docker exec web2 (--link db) ping db",
        side.ping(Seed::Answers, "web2", "db"),
    );

    let scene = "004 default bridge";
    side.idle(
        seen,
        scene,
        "db0",
        &["--expose", "5432", "-e", "PGDATA=/db"],
    );
    side.idle(seen, scene, "web0", &["--link", "db0:webdb"]);
    seen.note(
        format!("{scene}: docker exec web0 (--link db0:webdb) grep webdb /etc/hosts"),
        side.shell("web0", "grep -w webdb /etc/hosts"),
    );
    seen.note(
        format!("{scene}: docker exec web0 (--link db0:webdb): WEBDB_* in its environment"),
        side.shell(
            "web0",
            "tr '\\0' '\\n' < /proc/1/environ | grep ^WEBDB_ | sort",
        ),
    );
    seen.note(
        format!("{scene}: docker inspect -f {{{{.HostConfig.Links}}}} web0"),
        side.docker
            .ok(&["inspect", "-f", "{{.HostConfig.Links}}", "web0"])
            .trim(),
    );
    seen.note(
        format!("{scene}: docker exec web0 (--link db0:webdb) ping webdb"),
        side.ping(Seed::Answers, "web0", "webdb"),
    );
}

/// What carries the seeds' traffic in the host's namespace: iptables(-nft) rules and
/// docker-proxy processes.
fn datapath(side: &Side, seen: &mut Observed) {
    let rules = side.host.on_host(&["nft", "list", "ruleset"]).stdout;
    let mut chains: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain "))
        .map(|c| c.trim_end_matches(" {"))
        .filter(|c| c.starts_with("DOCKER"))
        .collect();
    chains.sort();
    chains.dedup();
    let rules = match (rules.trim().is_empty(), chains.is_empty()) {
        (true, _) => "none".to_string(),
        (false, true) => "rules, no DOCKER chain".to_string(),
        (false, false) => chains.join(", "),
    };
    seen.note("datapath: nft list ruleset (the host's namespace)", rules);
    let proxies = docker_proxies(&side.host);
    seen.note(
        "datapath: docker-proxy processes (the host's namespace)",
        proxies.to_string(),
    );
}

/// Every seed on one side; how long it took.
fn observe(flavour: Flavour) -> Option<(Observed, Duration)> {
    let started = Instant::now();
    let side = Side::start(flavour)?;
    let _upstream = side.host.upstream_dns();
    let mut seen = Observed::default();
    seed_000(&side, &mut seen);
    seed_002(&side, &mut seen);
    seed_004(&side, &mut seen);
    datapath(&side, &mut seen);
    Some((seen, started.elapsed()))
}

#[test]
fn seeds_000_002_004_show_on_netd_what_they_show_on_stock_docker() {
    let started = Instant::now();
    let (stock, netd) = std::thread::scope(|s| {
        let stock = s.spawn(|| observe(Flavour::Stock));
        let netd = s.spawn(|| observe(Flavour::NetdPlugin));
        (
            stock.join().expect("the stock side"),
            netd.join().expect("the netd side"),
        )
    });
    let (Some((stock, stock_time)), Some((netd, netd_time))) = (stock, netd) else {
        return;
    };
    let unexpected = Comparison {
        stock: &stock,
        netd: &netd,
        stock_label: "stock Docker",
        listed: KNOWN,
        listed_as: "known",
    }
    .print();
    print_times(stock_time.as_secs_f64(), netd_time.as_secs_f64(), started);
    // The reference is stock Docker's datapath, and netd's side has none of it.
    let rules = "datapath: nft list ruleset (the host's namespace)";
    assert!(stock.get(rules).is_some_and(|r| r.contains("DOCKER")));
    assert_eq!(netd.get(rules), Some("none"));
    assert!(unexpected.is_empty(), "\n{}", unexpected.join("\n"));
}

#[test]
fn addresses_are_named_by_their_place_and_picked_ports_as_ephemeral() {
    assert_eq!(
        label("inet 172.22.0.5/16 and 10.99.0.2, 192.168.1.2."),
        "inet my_net2#5/16 and UPLINK, myBridge#258."
    );
    assert_eq!(
        label("172.17.0.5 webdb 6e5cdeb2d300 db"),
        "bridge#5 webdb ID db"
    );
    assert_eq!(label("8.8.8.8 bbox1"), "8.8.8.8 bbox1");
    assert_eq!(
        ephemeral("80/tcp -> 0.0.0.0:49155, 80/tcp -> 0.0.0.0:8082, :::32768->80/tcp"),
        "80/tcp -> 0.0.0.0:EPHEMERAL, 80/tcp -> 0.0.0.0:8082, :::EPHEMERAL->80/tcp"
    );
    assert!(ipv6_binding("80/tcp -> :::8082"));
    assert!(!ipv6_binding("80/tcp -> 0.0.0.0:8082"));
    let lines = [
        "80/tcp -> :::9".to_string(),
        "80/tcp -> 10.99.0.2:40000".into(),
    ];
    assert_eq!(host_port(&lines), "40000");
}

#[test]
fn busybox_ping_and_nslookup_are_read_in_short() {
    let answered = "PING bbox1 (172.22.0.5): 56 data bytes\n64 bytes from 172.22.0.5: seq=0\n\
                    --- bbox1 ping statistics ---\n3 packets transmitted, 3 packets received, 0% \
                    packet loss\n";
    assert_eq!(ping_outcome(answered), "answered (my_net2#5)");
    let lost = "PING 192.168.0.3 (192.168.0.3): 56 data bytes\n\n--- 192.168.0.3 ping \
                statistics ---\n3 packets transmitted, 0 packets received, 100% packet loss\n";
    assert_eq!(ping_outcome(lost), "no answer (myBridge#3)");
    assert_eq!(
        ping_outcome("ping: bad address 'bbox3'\n"),
        "ping: bad address 'bbox3'"
    );
    let found = "Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\nNon-authoritative answer:\n\
                 Name:\twebdb\nAddress: 172.24.0.6\n\n*** Can't find webdb: No answer\n";
    assert_eq!(lookup_outcome(found), "web_net#6");
    let refused = "Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\n\
                   ** server can't find webdb: NXDOMAIN\n";
    assert_eq!(lookup_outcome(refused), "not found");
}
