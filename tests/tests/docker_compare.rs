//! Issue 20, the comparison itself: the seeds' scenarios on netd's own CLI (`netd run`, `netd
//! container ...`, `netd exec`) and on stock dockerd 20.10 (iptables on, docker-proxy, the
//! default bridge; [`Docker::start_stock`], an image from `docker import` of busybox-static),
//! each in throwaway namespaces of its own, command for command. Every observable (addresses,
//! link environment, hosts and resolv.conf files, hostnames, `port` output, reachability, exit
//! statuses and Docker's key phrases in errors) is written the same way on both sides (an
//! address as its place in its subnet, a container ID as the container's name), printed as a
//! table SAME/DIFFERENT, and held equal but for [`INTENDED`], which README.md lists ("netd's CLI
//! beside stock Docker"; `the_readme_lists_every_intended_difference` checks it).
//!
//! The comparison is slow (stock dockerd starts in the order of ten seconds, once): it is
//! `#[ignore]`d and run by `cargo xtask compare-docker`.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use netd_tests::{
    compare::{ephemeral, print_times, Comparison, Observed},
    docker::{Docker, IMAGE},
    Host, Out, OUTSIDE_IP, UPLINK_IP,
};

/// The intended differences: observables whose name contains the first text, and why. README.md
/// shows each of them under "netd's CLI beside stock Docker".
pub const INTENDED: &[(&str, &str)] = &[
    (
        "IPv6 bindings",
        "netd's networks and published ports are IPv4 only; docker-proxy also binds [::] \
         (the IPv6 port listing belongs to another issue)",
    ),
    (
        "datapath",
        "the point of netd: an eBPF datapath, no iptables rule and no docker-proxy",
    ),
];

/// The networks of the scenarios (the same subnets on both sides: each is a namespace of its
/// own), after which addresses are named.
const SUBNETS: &[(&str, &str, u32)] =
    &[("my_net2", "172.22.0.0", 16), ("bridge", "172.17.0.0", 16)];

/// What the image's web root (and netd's side's) answers.
const GREETING: &str = "hello from docker";

/// How long an answer that should come may take.
const PATIENCE: Duration = Duration::from_secs(3);

/// Docker's key phrases that scripts match in errors (issue 20, item 9).
const PHRASES: &[&str] = &[
    "No such container",
    "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
    "is already in use by container",
    "Pool overlaps with other one on this address space",
    "It does not belong to any of this network's subnets",
    "Address already in use",
    "has active endpoints",
    "Cannot link to a non running container",
    "No public port",
];

/// Which CLI drives a side.
enum Cli {
    Stock(Docker),
    Netd,
}

/// One side: its host (with netd's daemon, or none beside stock dockerd) and its CLI. The CLI
/// is dropped first (dockerd stops), then the host.
struct Side {
    cli: Cli,
    host: Host,
    /// Container name -> ID, for writing IDs as names.
    ids: std::cell::RefCell<BTreeMap<String, String>>,
}

impl Side {
    fn stock() -> Option<Side> {
        let host = Docker::stock_host()?;
        let docker = Docker::start_stock(&host);
        Some(Side::new(Cli::Stock(docker), host))
    }

    fn netd() -> Option<Side> {
        let host = Host::start()?;
        let www = host.dir.join("www");
        std::fs::create_dir_all(&www).expect("web root");
        std::fs::write(www.join("index.html"), format!("{GREETING}\n")).expect("index");
        Some(Side::new(Cli::Netd, host))
    }

    fn new(cli: Cli, host: Host) -> Side {
        Side {
            cli,
            host,
            ids: Default::default(),
        }
    }

    fn name(&self) -> &'static str {
        match self.cli {
            Cli::Stock(_) => "stock Docker",
            Cli::Netd => "netd",
        }
    }

    /// `docker ARGS`, or netd's words for it (`netd container VERB ...` for container verbs).
    fn cli(&self, args: &[&str]) -> Out {
        match &self.cli {
            Cli::Stock(docker) => docker.docker(args),
            Cli::Netd => {
                let mut all = vec![];
                if matches!(
                    args.first(),
                    Some(&("stop" | "start" | "rm" | "port" | "inspect"))
                ) {
                    all.push("container");
                }
                all.extend_from_slice(args);
                self.host.netd(&all)
            }
        }
    }

    /// `docker run -d --name NAME FLAGS IMAGE sleep` (stock) or `netd run FLAGS NAME`; a web
    /// server on port 80 if `web`. Remembers the ID.
    fn run(&self, name: &str, flags: &[&str], web: bool) -> Out {
        let out = match &self.cli {
            Cli::Stock(docker) => {
                let mut all = vec!["run", "-d", "--stop-timeout", "1", "--name", name];
                all.extend_from_slice(flags);
                all.push(IMAGE);
                match web {
                    true => all.extend(["httpd", "-f", "-p", "80", "-h", "/www"]),
                    false => all.extend(["sleep", "600"]),
                }
                docker.docker(&all)
            }
            Cli::Netd => {
                let mut all = vec!["run"];
                all.extend_from_slice(flags);
                all.push(name);
                let out = self.host.netd(&all);
                if out.ok() && web {
                    let root = self.host.dir.join("www").display().to_string();
                    let cmd = [
                        "exec", "-d", name, "--", "busybox", "httpd", "-f", "-p", "80",
                    ];
                    let mut cmd = cmd.to_vec();
                    cmd.extend(["-h", &root]);
                    self.host.ok(&cmd);
                }
                out
            }
        };
        if out.ok() {
            let id = self.id(name);
            self.ids.borrow_mut().insert(name.to_string(), id);
        }
        out
    }

    /// A server on `port` in container `name` that says `hi` to each connection, in the
    /// background (`docker exec -d`).
    fn serve(&self, name: &str, port: &str) -> Out {
        let server = ["busybox", "nc", "-ll", "-p", port, "-e", "echo", "hi"];
        match &self.cli {
            Cli::Stock(docker) => {
                let mut cmd = vec!["exec", "-d", name];
                cmd.extend(server);
                docker.docker(&cmd)
            }
            Cli::Netd => {
                let mut cmd = vec!["exec", "-d", name, "--"];
                cmd.extend(server);
                self.host.netd(&cmd)
            }
        }
    }

    /// `CMD ARG...` in container `name`, without a shell.
    fn exec(&self, name: &str, cmd: &[&str]) -> Out {
        match &self.cli {
            Cli::Stock(docker) => {
                let mut all = vec!["exec", name];
                all.extend_from_slice(cmd);
                docker.docker(&all)
            }
            Cli::Netd => self.host.exec(name, cmd),
        }
    }

    /// `sh -c SCRIPT` in container `name`.
    fn sh(&self, name: &str, script: &str) -> Out {
        match &self.cli {
            Cli::Stock(docker) => docker.exec(name, script),
            Cli::Netd => self.host.exec(name, &["sh", "-c", script]),
        }
    }

    fn id(&self, name: &str) -> String {
        match &self.cli {
            Cli::Stock(docker) => docker.ok(&["inspect", "-f", "{{.Id}}", name]).trim().into(),
            Cli::Netd => self.host.inspect(name)["id"]
                .as_str()
                .unwrap_or_default()
                .into(),
        }
    }

    /// Container `name`'s address on `network` (empty if none).
    fn address(&self, name: &str, network: &str) -> String {
        match &self.cli {
            Cli::Stock(docker) => {
                let format = format!(
                    "{{{{with index .NetworkSettings.Networks \"{network}\"}}}}\
                     {{{{.IPAddress}}}}{{{{end}}}}"
                );
                docker
                    .docker(&["inspect", name, "--format", &format])
                    .stdout
                    .trim()
                    .into()
            }
            Cli::Netd => self.host.inspect(name)["networks"][network]["ip_address"]
                .as_str()
                .unwrap_or_default()
                .into(),
        }
    }

    /// `text` with addresses and container IDs named ([`label`]).
    fn label(&self, text: &str) -> String {
        label(text, &self.ids.borrow())
    }
}

/// What only this comparison notes.
trait Outcomes {
    fn outcome(&mut self, what: &str, out: &Out);
}

impl Outcomes for Observed {
    /// A failing (or not) command: its exit status, and which of Docker's [`PHRASES`] its
    /// error carries.
    fn outcome(&mut self, what: &str, out: &Out) {
        self.note(format!("{what}: exit status"), out.status.to_string());
        let said: Vec<&str> = PHRASES
            .iter()
            .copied()
            .filter(|p| out.stderr.contains(p))
            .collect();
        let said = match said.is_empty() {
            true => "none of Docker's phrases".to_string(),
            false => said.join(" | "),
        };
        self.note(format!("{what}: error says"), said);
    }
}

/// An address's name: `NETWORK#N`, `UPLINK`, `OUTSIDE`, or itself.
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

/// `text` with every IPv4 address named by [`address_name`] and every container ID of `ids`
/// (full or short) as `ID(NAME)`.
fn label(text: &str, ids: &BTreeMap<String, String>) -> String {
    let mut text = text.to_string();
    for (name, id) in ids {
        text = text.replace(id.as_str(), &format!("ID({name})"));
        if id.len() >= 12 {
            text = text.replace(&id[..12], &format!("ID({name})"));
        }
    }
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let trimmed = word.trim_end_matches('.');
        match trimmed.parse::<Ipv4Addr>() {
            Ok(ip) => {
                out.push_str(&address_name(ip));
                out.push_str(&word[trimmed.len()..]);
            }
            Err(_) => out.push_str(word),
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Lines as one value: each line's words joined by one space, lines by `; `; `none` if empty.
fn lines(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    match lines.is_empty() {
        true => "none".into(),
        false => lines.join("; "),
    }
}

/// Asks until the value is `good` or [`PATIENCE`] is over; the last value.
fn patiently(ask: impl Fn() -> String, good: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = ask();
        if good(&value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `busybox ping` from `from` to `target`: `answered`, `no answer` or its complaint.
fn ping(side: &Side, from: &str, target: &str) -> String {
    let ask = || {
        let out = side.sh(from, &format!("busybox ping -c 1 -W 1 {target} 2>&1"));
        match (
            out.ok(),
            out.stdout.lines().find(|l| l.starts_with("ping: ")),
        ) {
            (true, _) => "answered".to_string(),
            (false, Some(err)) => err.trim().to_string(),
            (false, None) => "no answer".to_string(),
        }
    };
    patiently(ask, |v| v == "answered")
}

/// `busybox nslookup NAME` from `from`: the addresses answered, or `not found`.
fn lookup(side: &Side, from: &str, name: &str) -> String {
    let out = side
        .sh(from, &format!("busybox nslookup {name} 2>&1"))
        .stdout;
    let answers = out.split_once("\nName:").map_or("", |(_, rest)| rest);
    let ips: Vec<String> = answers
        .lines()
        .filter(|l| l.starts_with("Address"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<Ipv4Addr>().ok())
        .map(|ip| side.label(&ip.to_string()))
        .collect();
    match ips.is_empty() {
        true => "not found".into(),
        false => ips.join(", "),
    }
}

/// Seed 003 on the default bridge: addresses handed out and taken back, `--link demo:nginx`
/// (environment, hosts file, names), a stopped and restarted linked container, a joined
/// container's hostname, and the address of a removed container.
fn seed_003_links_and_addresses(side: &Side, seen: &mut Observed) {
    let s = "003";
    let run = |seen: &mut Observed, name: &str, flags: &[&str]| {
        let out = side.run(name, flags, false);
        seen.note(format!("{s}: run {} {name}", flags.join(" ")), status(&out));
    };
    let address = |seen: &mut Observed, name: &str, when: &str| {
        let ip = side.address(name, "bridge");
        seen.note(format!("{s}: address of {name} {when}"), side.label(&ip));
    };
    let sh = |seen: &mut Observed, name: &str, what: &str, script: &str| {
        let out = side.sh(name, script);
        let value = match out.ok() {
            true => side.label(&lines(&out.stdout)),
            false => format!("failed ({})", out.status),
        };
        seen.note(format!("{s}: {name}'s {what}"), value);
    };
    run(seen, "demo", &["--expose", "80", "-e", "SERVER=demo"]);
    address(seen, "demo", "at first");
    run(seen, "linker", &["--link", "demo:nginx"]);
    address(seen, "linker", "at first");
    let env = "env | grep ^NGINX_ | sort";
    sh(seen, "linker", "NGINX_* environment", env);
    sh(seen, "linker", "/etc/hosts", "cat /etc/hosts");
    sh(
        seen,
        "linker",
        "/etc/hosts, last line",
        "tail -1 /etc/hosts",
    );
    sh(seen, "linker", "hostname", "hostname");
    sh(seen, "linker", "/etc/resolv.conf", "cat /etc/resolv.conf");
    for target in ["nginx", "demo"] {
        let value = ping(side, "linker", target);
        seen.note(format!("{s}: linker pings {target}"), side.label(&value));
    }
    let out = side.cli(&["stop", "demo"]);
    seen.note(format!("{s}: stop demo"), status(&out));
    let out = side.sh("linker", "env");
    seen.outcome(&format!("{s}: exec in linker while demo is stopped"), &out);
    run(seen, "demo2", &[]);
    address(seen, "demo2", "(after demo stopped)");
    let out = side.cli(&["start", "demo"]);
    seen.note(format!("{s}: start demo"), status(&out));
    address(seen, "demo", "after its restart");
    sh(
        seen,
        "linker",
        "nginx hosts line after demo's restart",
        "grep -w nginx /etc/hosts",
    );
    sh(
        seen,
        "linker",
        "NGINX_* environment after demo's restart",
        env,
    );
    let value = ping(side, "linker", "nginx");
    seen.note(
        format!("{s}: linker pings nginx after demo's restart"),
        value,
    );
    run(seen, "joiner", &["--network", "container:demo"]);
    sh(seen, "joiner", "hostname", "hostname");
    sh(
        seen,
        "joiner",
        "/etc/hosts, last line",
        "tail -1 /etc/hosts",
    );
    // Seed 000: a joined container reaches its target's services on 127.0.0.1.
    let out = side.serve("demo", "8000");
    seen.note(format!("{s}: a server in demo on 8000"), status(&out));
    let get = "busybox nc -w 2 127.0.0.1 8000 2>&1";
    let got = patiently(|| lines(&side.sh("joiner", get).stdout), |v| v == "hi");
    seen.note(format!("{s}: joiner connects to 127.0.0.1:8000"), got);
    run(seen, "ib", &[]);
    address(seen, "ib", "at first");
    let out = side.cli(&["rm", "-f", "ib"]);
    seen.note(format!("{s}: rm -f ib"), status(&out));
    run(seen, "ic", &[]);
    address(seen, "ic", "(after ib was removed)");
    // Seed 000: no names on the default bridge.
    let value = ping(side, "ic", "demo");
    seen.note(
        format!("{s}: ic pings demo by name (default bridge)"),
        side.label(&value),
    );
}

/// Seed 001's other modes: `--network host` and `--network none`.
fn seed_001_modes(side: &Side, seen: &mut Observed) {
    let s = "001";
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let machine = machine.trim();
    for (name, mode) in [("hostc", "host"), ("nonec", "none")] {
        let out = side.run(name, &["--network", mode], false);
        seen.note(format!("{s}: run --network {mode} {name}"), status(&out));
        let show = |script: &str| {
            let out = side.sh(name, script).stdout;
            let text = side.label(&lines(&out));
            match machine.is_empty() {
                true => text,
                false => text.replace(machine, "MACHINE"),
            }
        };
        seen.note(format!("{s}: {name}'s hostname"), show("hostname"));
        let hosts = show("grep -v -e localhost -e ip6- /etc/hosts");
        seen.note(format!("{s}: {name}'s /etc/hosts past localhost"), hosts);
        if mode == "none" {
            let links = show("busybox ip -o link | cut -d: -f2");
            seen.note(format!("{s}: {name}'s interfaces"), links);
            seen.note(
                format!("{s}: {name}'s /etc/resolv.conf"),
                show("cat /etc/resolv.conf"),
            );
        }
    }
}

/// Seeds 002 and 004 on a user-defined network: names, `--link db:webdb` there (a name for the
/// linking container alone), isolation from the default bridge.
fn seed_002_user_network(side: &Side, seen: &mut Observed) {
    let s = "002";
    let out = side.cli(&["network", "create", "--subnet", "172.22.0.0/16", "my_net2"]);
    seen.note(format!("{s}: network create my_net2"), status(&out));
    for (name, flags) in [
        ("db", &["--network", "my_net2", "--expose", "5432"][..]),
        ("app", &["--network", "my_net2", "--link", "db:webdb"]),
        ("other", &["--network", "my_net2"]),
    ] {
        let out = side.run(name, flags, false);
        seen.note(format!("{s}: run {} {name}", flags.join(" ")), status(&out));
        let ip = side.address(name, "my_net2");
        seen.note(format!("{s}: address of {name}"), side.label(&ip));
    }
    let sh = |seen: &mut Observed, name: &str, what: &str, script: &str| {
        let out = side.sh(name, script);
        seen.note(
            format!("{s}: {name}'s {what}"),
            side.label(&lines(&out.stdout)),
        );
    };
    sh(
        seen,
        "app",
        "WEBDB_* environment",
        "env | grep ^WEBDB_ | sort",
    );
    sh(seen, "app", "/etc/hosts", "cat /etc/hosts");
    sh(seen, "app", "/etc/resolv.conf", "cat /etc/resolv.conf");
    for (from, name) in [
        ("app", "webdb"),
        ("other", "webdb"),
        ("app", "db"),
        ("other", "app"),
    ] {
        seen.note(
            format!("{s}: nslookup {name} in {from}"),
            lookup(side, from, name),
        );
    }
    let value = ping(side, "app", "webdb");
    seen.note(format!("{s}: app pings webdb"), side.label(&value));
    let demo = side.address("demo", "bridge");
    let value = ping(side, "app", &demo);
    seen.note(
        format!("{s}: app pings demo (default bridge)"),
        side.label(&value),
    );
    // `network connect` gives ic (on the default bridge) a second interface on my_net2.
    let out = side.cli(&["network", "connect", "my_net2", "ic"]);
    seen.note(format!("{s}: network connect my_net2 ic"), status(&out));
    let ip = side.address("ic", "my_net2");
    seen.note(format!("{s}: address of ic on my_net2"), side.label(&ip));
    for (from, to) in [("ic", "db"), ("other", "ic"), ("ic", demo.as_str())] {
        let value = ping(side, from, to);
        seen.note(
            format!("{s}: {from} pings {}", side.label(to)),
            side.label(&value),
        );
    }
    sh(seen, "ic", "/etc/hosts, last lines", "tail -2 /etc/hosts");
}

/// Seed 004's `-p`: the port listings, one port of them, and the traffic.
fn seed_004_ports(side: &Side, seen: &mut Observed) {
    let s = "004";
    let out = side.run("web", &["-p", "8080:80", "-p", "127.0.0.1:8081:80"], true);
    seen.note(
        format!("{s}: run -p 8080:80 -p 127.0.0.1:8081:80 web"),
        status(&out),
    );
    for args in [
        &["port", "web"][..],
        &["port", "web", "80"],
        &["port", "web", "80/tcp"],
    ] {
        let out = side.cli(args);
        let (v4, v6): (Vec<&str>, Vec<&str>) = out.stdout.lines().partition(|l| !l.contains("::"));
        let what = args.join(" ");
        seen.note(format!("{s}: {what}"), lines(&v4.join("\n")));
        seen.note(
            format!("{s}: {what} (IPv6 bindings)"),
            lines(&v6.join("\n")),
        );
        seen.note(format!("{s}: {what}: exit status"), out.status.to_string());
    }
    let flags = [
        "-P",
        "--expose",
        "90",
        "-p",
        "127.0.0.1::81",
        "-p",
        "9000-9001:82-83",
    ];
    let out = side.run("web2", &flags, false);
    seen.note(format!("{s}: run {} web2", flags.join(" ")), status(&out));
    let out = side.cli(&["port", "web2"]);
    let mut v4: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| !l.contains("::"))
        .map(ephemeral)
        .collect();
    // `docker port` lists different container ports in a map's order: compare them sorted.
    v4.sort();
    seen.note(format!("{s}: port web2 (sorted)"), lines(&v4.join("\n")));
    let out = side.cli(&["port", "web", "81"]);
    seen.note(
        format!("{s}: port web 81: exit status"),
        out.status.to_string(),
    );
    seen.note(format!("{s}: port web 81: error"), out.stderr.trim());
    let get = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat -T2 - TCP:{UPLINK_IP}:8080,connect-timeout=1"
    );
    let answer = || match side
        .host
        .outside(&["sh", "-c", &get])
        .stdout
        .contains(GREETING)
    {
        true => "answers".to_string(),
        false => "no answer".to_string(),
    };
    seen.note(
        format!("{s}: GET UPLINK:8080 from outside"),
        patiently(answer, |v| v == "answers"),
    );
}

/// Refused requests: exit statuses and Docker's phrases.
fn errors(side: &Side, seen: &mut Observed) {
    let s = "errors";
    seen.outcome(
        &format!("{s}: rm -f nosuch"),
        &side.cli(&["rm", "-f", "nosuch"]),
    );
    seen.outcome(&format!("{s}: rm nosuch"), &side.cli(&["rm", "nosuch"]));
    let out = side.exec("ic", &["nosuchcommand"]);
    seen.note(
        format!("{s}: exec ic nosuchcommand: exit status"),
        out.status.to_string(),
    );
    let out = side.exec("ic", &["/etc/hosts"]);
    seen.note(
        format!("{s}: exec ic /etc/hosts (not executable): exit status"),
        out.status.to_string(),
    );
    let out = side.exec("ic", &["sh", "-c", "exit 3"]);
    seen.note(
        format!("{s}: exec ic sh -c 'exit 3': exit status"),
        out.status.to_string(),
    );
    let out = side.exec("nosuch", &["true"]);
    seen.outcome(&format!("{s}: exec nosuch true"), &out);
    seen.outcome(&format!("{s}: run (name j)"), &side.run("j", &[], false));
    seen.outcome(
        &format!("{s}: run (name demo, taken)"),
        &side.run("demo", &[], false),
    );
    let out = side.cli(&["network", "create", "--subnet", "172.22.5.0/24", "ovl"]);
    seen.outcome(
        &format!("{s}: network create --subnet 172.22.5.0/24 (overlaps)"),
        &out,
    );
    let flags = ["--network", "my_net2", "--ip", "10.9.9.9"];
    seen.outcome(
        &format!("{s}: run --ip 10.9.9.9 on my_net2"),
        &side.run("badip", &flags, false),
    );
    let db = side.address("db", "my_net2");
    let flags = ["--network", "my_net2", "--ip", db.as_str()];
    seen.outcome(
        &format!("{s}: run --ip (db's) on my_net2"),
        &side.run("dupip", &flags, false),
    );
    let out = side.cli(&["network", "rm", "my_net2"]);
    seen.outcome(&format!("{s}: network rm my_net2 (in use)"), &out);
    let out = side.run("nonet", &["--network", "nosuch"], false);
    seen.note(
        format!("{s}: run --network nosuch: exit status"),
        out.status.to_string(),
    );
}

/// What carries the traffic in the host's namespace.
fn datapath(side: &Side, seen: &mut Observed) {
    let rules = side.host.on_host(&["nft", "list", "ruleset"]).stdout;
    let docker_chains = rules.lines().any(|l| l.trim().starts_with("chain DOCKER"));
    seen.note(
        "datapath: DOCKER chains in the host's namespace",
        docker_chains.to_string(),
    );
}

fn status(out: &Out) -> String {
    match out.ok() {
        true => "ok".into(),
        false => format!("failed ({}): {}", out.status, out.stderr.trim()),
    }
}

/// Every scenario on one side; how long it took.
fn observe(side: Option<Side>, started: Instant) -> Option<(Observed, Duration)> {
    let side = side?;
    let _upstream = side.host.upstream_dns();
    let mut seen = Observed::default();
    seed_003_links_and_addresses(&side, &mut seen);
    seed_001_modes(&side, &mut seen);
    seed_002_user_network(&side, &mut seen);
    seed_004_ports(&side, &mut seen);
    errors(&side, &mut seen);
    datapath(&side, &mut seen);
    eprintln!("{} side done", side.name());
    Some((seen, started.elapsed()))
}

#[test]
#[ignore = "starts stock dockerd (slow): run by `cargo xtask compare-docker`"]
fn the_seeds_on_netds_cli_show_what_they_show_on_stock_docker() {
    let started = Instant::now();
    let (stock, netd) = std::thread::scope(|s| {
        let stock = s.spawn(|| observe(Side::stock(), started));
        let netd = s.spawn(|| observe(Side::netd(), started));
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
        stock_label: "stock Docker 20.10",
        listed: INTENDED,
        listed_as: "intended",
    }
    .print();
    print_times(stock_time.as_secs_f64(), netd_time.as_secs_f64(), started);
    assert!(
        unexpected.is_empty(),
        "differences not listed as intended:\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn the_readme_lists_every_intended_difference() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split_once("#### netd's CLI beside stock Docker")
        .map(|(_, rest)| rest.split("\n#").next().unwrap_or(rest))
        .expect("README.md has a section \"netd's CLI beside stock Docker\"");
    for (part, _) in INTENDED {
        assert!(
            section.contains(&format!("**{part}**")),
            "README.md's section does not list {part:?} (as **{part}**)"
        );
    }
    let listed = section.matches("\n- **").count();
    assert_eq!(listed, INTENDED.len(), "the section lists exactly INTENDED");
}

#[test]
fn addresses_and_ids_are_named() {
    let ids = BTreeMap::from([("demo".to_string(), "0123456789abcdef".repeat(4))]);
    assert_eq!(
        label(
            "172.17.0.2\tnginx 0123456789ab demo; 172.22.0.3, 10.99.0.2.",
            &ids
        ),
        "bridge#2\tnginx ID(demo) demo; my_net2#3, UPLINK."
    );
    assert_eq!(label(&"0123456789abcdef".repeat(4), &ids), "ID(demo)");
    assert_eq!(lines("a  b\n\nc\n"), "a b; c");
    assert_eq!(
        ephemeral("90/tcp -> 0.0.0.0:49153; 82/tcp -> 0.0.0.0:9000"),
        "90/tcp -> 0.0.0.0:EPHEMERAL; 82/tcp -> 0.0.0.0:9000"
    );
    assert_eq!(lines(""), "none");
}
