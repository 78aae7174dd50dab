//! Command-line interface, as `../shared/CONTRACT.md` defines it.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Docker-style container networking with an eBPF datapath.
#[derive(Debug, Parser)]
#[command(name = "netd", version, about)]
pub struct Cli {
    /// Daemon socket.
    #[arg(
        long,
        global = true,
        env = "NETD_SOCKET",
        default_value = "/run/netd/netd.sock"
    )]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (or tear down everything it installed with --cleanup).
    Daemon(DaemonArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Create and start a container, then run CMD in it if one is given (`docker run`).
    Run(RunArgs),
    /// Run a command inside a container's network namespace.
    Exec(ExecArgs),
    /// Look into the datapath's BPF maps.
    #[command(subcommand)]
    Maps(MapsCommand),
    /// Packets the datapath dropped, per container and reason, with totals.
    Stats {
        container: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Run a synthetic packet through the attached programs and show each hop's verdict.
    Explain {
        /// A container name, or an outside address (the packet then comes in through an uplink).
        #[arg(long)]
        from: String,
        /// Destination address and port.
        #[arg(long)]
        to: std::net::SocketAddrV4,
        #[arg(long, value_enum, default_value = "tcp")]
        proto: ExplainProto,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Compare the daemon's saved state with the kernel and print every difference (exit 1 if
    /// there is any).
    Check {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Install netd as a CNI plugin for container runtimes (podman, containerd, Kubernetes).
    #[command(subcommand)]
    Cni(CniCommand),
    /// Who may reach published ports: show the policy in force, or read the policy file again.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Stream flow and drop events from the datapath until interrupted.
    Monitor {
        #[arg(long)]
        container: Option<String>,
        /// Only events with this port (before or after translation).
        #[arg(long)]
        port: Option<u16>,
        /// Only drops.
        #[arg(long)]
        drops: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The host-wide policy and every port's own allowlist.
    Show {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Read `--publish-policy FILE` again (as SIGHUP does); established flows it still allows
    /// go on, the others are cut off.
    Reload,
}

/// A `--publish-allow`/`--publish-deny` value: an address or a prefix.
fn prefix_arg(text: &str) -> Result<ipnet::IpNet, String> {
    crate::policy::parse_prefix(text, "prefix").map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum CniCommand {
    /// Put the plugin (this binary, as `netd`) in the runtime's plugin dir and a conflist for a
    /// netd network in its config dir.
    Install {
        /// Where the runtime looks for plugins.
        #[arg(long, default_value = "/opt/cni/bin")]
        bin_dir: PathBuf,
        /// Where the runtime looks for network configurations.
        #[arg(long, default_value = "/etc/cni/net.d")]
        conf_dir: PathBuf,
        /// The netd network the runtime's containers join (the CNI network gets its name).
        #[arg(long)]
        network: String,
    },
}

#[derive(Debug, Args, Clone)]
pub struct DaemonArgs {
    /// Persistent state.
    #[arg(long, env = "NETD_STATE_DIR", default_value = "/var/lib/netd")]
    pub state_dir: PathBuf,
    /// Socket, container namespaces, hosts and resolv.conf files.
    #[arg(long, env = "NETD_RUN_DIR", default_value = "/run/netd")]
    pub run_dir: PathBuf,
    /// Pinned maps, programs and links (bpffs is mounted here if it is not already).
    #[arg(long, env = "NETD_BPFFS", default_value = "/sys/fs/bpf/netd")]
    pub bpffs: PathBuf,
    /// Host interfaces that face the outside (default: those carrying a default route).
    #[arg(long, env = "NETD_UPLINK", value_delimiter = ',')]
    pub uplink: Vec<String>,
    /// Subnet of the default network `bridge`.
    #[arg(long, default_value = "172.17.0.0/16", value_parser = crate::ipam::parse_default_subnet)]
    pub default_subnet: Ipv4Net,
    /// IPv6 subnet of the default network `bridge`, which is then dual-stack (IPv4 only if
    /// not given, as Docker's `--fixed-cidr-v6` off).
    #[arg(long, value_parser = crate::ipam::parse_default_subnet6)]
    pub default_subnet_v6: Option<Ipv6Net>,
    /// Where the upstream DNS servers are read from.
    #[arg(long, env = "NETD_RESOLV_CONF", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// cgroup (v2) whose processes' connections to published ports are translated by socket
    /// hooks, which act only on sockets of the daemon's network namespace (default: the root of
    /// the cgroup2 hierarchy).
    #[arg(long, env = "NETD_CGROUP", conflicts_with = "no_cgroup_hooks")]
    pub cgroup: Option<PathBuf>,
    /// Attach no socket hooks: host processes then reach published ports only through container
    /// addresses, not through 127.0.0.1 or the host's own addresses.
    #[arg(long)]
    pub no_cgroup_hooks: bool,
    /// Group allowed to use the API socket (mode 0660); without it only root may (0600).
    #[arg(long, short = 'G')]
    pub group: Option<String>,
    /// Size of each of the two NAT tables in entries (two per translated flow): assured flows
    /// (handshake done, or traffic both ways; never evicted) and new or closing ones (evicted
    /// oldest first when full). Takes effect when the tables are created (first start, or after
    /// --cleanup).
    #[arg(long, default_value_t = netd_common::DEFAULT_NAT_ENTRIES, value_parser = clap::value_parser!(u32).range(64..))]
    pub nat_entries: u32,
    /// Seconds an established TCP flow through NAT may stay idle (default one day).
    #[arg(long)]
    pub nat_timeout_tcp: Option<u64>,
    /// Seconds an answered UDP flow through NAT may stay idle (default 120; unanswered: 30).
    #[arg(long)]
    pub nat_timeout_udp: Option<u64>,
    /// Seconds an ICMP echo flow through NAT may stay idle (default 30).
    #[arg(long)]
    pub nat_timeout_icmp: Option<u64>,
    /// Serve Prometheus metrics at ADDR (`PORT` alone means 127.0.0.1:PORT); off by default.
    #[arg(long, value_parser = crate::daemon::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Serve Docker's network driver API (`docker network create -d netd`) at PATH, by
    /// default where dockerd looks for plugins.
    #[arg(long, value_name = "PATH", num_args = 0..=1,
          default_missing_value = crate::docker::DEFAULT_SOCKET)]
    pub docker_plugin: Option<PathBuf>,
    /// dockerd's API, where the Docker plugin learns containers' names and aliases.
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// Most events per second and CPU the datapath writes for `netd monitor` (more are counted
    /// as suppressed).
    #[arg(long, default_value_t = netd_common::DEFAULT_EVENTS_RATE, value_parser = clap::value_parser!(u64).range(1..))]
    pub events_rate: u64,
    /// Have the eBPF programs log every drop (through aya-log, into the daemon's log at debug
    /// level; run with RUST_LOG=debug to see them).
    #[arg(long)]
    pub debug_bpf: bool,
    /// Remove everything this daemon installed, then exit.
    #[arg(long)]
    pub cleanup: bool,
    /// Clients (addresses or prefixes) that may reach published ports; with any, every other
    /// client is refused, except where a longer --publish-deny prefix says otherwise. Applies
    /// to every port without an allowlist of its own (`--publish-allow PORT=...` of a
    /// container).
    #[arg(long, value_delimiter = ',', value_parser = prefix_arg, value_name = "CIDR")]
    pub publish_allow: Vec<ipnet::IpNet>,
    /// Clients that may not reach published ports (the longest matching prefix decides).
    #[arg(long, value_delimiter = ',', value_parser = prefix_arg, value_name = "CIDR")]
    pub publish_deny: Vec<ipnet::IpNet>,
    /// A file of `allow CIDR` and `deny CIDR` lines added to --publish-allow/--publish-deny,
    /// read at start and again on SIGHUP or `netd policy reload`.
    #[arg(long, value_name = "FILE")]
    pub publish_policy: Option<PathBuf>,
    /// The etcd cluster that the daemons of several hosts share for overlay networks:
    /// `etcd://HOST:PORT[,HOST:PORT...]`.
    #[arg(long, env = "NETD_CLUSTER_STORE")]
    pub cluster_store: Option<String>,
    /// This host's underlay address, where other hosts send its overlay traffic (default: the
    /// first uplink's address).
    #[arg(long, env = "NETD_ADVERTISE_ADDR", requires = "cluster_store")]
    pub advertise_addr: Option<std::net::IpAddr>,
    /// Seconds a host's endpoints outlive it in the cluster store: a host that has not renewed
    /// its lease for this long is gone, and the other hosts stop sending to its containers.
    /// 15 minutes, as Cilium's kvstore lease.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(2..=86400), requires = "cluster_store")]
    pub cluster_lease_ttl: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExplainProto {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show networks as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Connect a container to a network.
    Connect {
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// The IPv6 address, on a dual-stack network.
        #[arg(long)]
        ip6: Option<Ipv6Addr>,
        #[arg(long = "alias")]
        aliases: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect { network: String, container: String },
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    #[arg(long, short = 'd', default_value = "bridge")]
    pub driver: String,
    /// The subnet of each family (IPv4, and IPv6 with `--ipv6`); `--gateway` and `--ip-range`
    /// likewise, each taken for the subnet of its family.
    #[arg(long)]
    pub subnet: Vec<IpNet>,
    #[arg(long)]
    pub gateway: Vec<IpAddr>,
    #[arg(long)]
    pub ip_range: Vec<IpNet>,
    /// Dual stack: the network has an IPv6 subnet as well (given with `--subnet`).
    #[arg(long)]
    pub ipv6: bool,
    #[arg(long)]
    pub internal: bool,
    /// Driver options KEY=VALUE.
    #[arg(long = "opt", short = 'o')]
    pub options: Vec<String>,
    pub name: String,
}

/// A value of each family, from a repeatable flag: at most one of each.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PerFamily<V4, V6> {
    pub v4: Option<V4>,
    pub v6: Option<V6>,
}

impl NetworkCreateArgs {
    /// `--subnet`, `--gateway` and `--ip-range` split by family.
    pub fn subnets(&self) -> Result<PerFamily<Ipv4Net, Ipv6Net>, String> {
        per_family("--subnet", &self.subnet, |n| match n {
            IpNet::V4(n) => Ok(*n),
            IpNet::V6(n) => Err(*n),
        })
    }

    pub fn gateways(&self) -> Result<PerFamily<Ipv4Addr, Ipv6Addr>, String> {
        per_family("--gateway", &self.gateway, |n| match n {
            IpAddr::V4(n) => Ok(*n),
            IpAddr::V6(n) => Err(*n),
        })
    }

    pub fn ip_ranges(&self) -> Result<PerFamily<Ipv4Net, Ipv6Net>, String> {
        per_family("--ip-range", &self.ip_range, |n| match n {
            IpNet::V4(n) => Ok(*n),
            IpNet::V6(n) => Err(*n),
        })
    }
}

/// Sorts the values of `flag` by family (`split` gives `Ok` for IPv4, `Err` for IPv6); two of
/// one family are refused.
fn per_family<T, V4, V6>(
    flag: &str,
    values: &[T],
    split: impl Fn(&T) -> Result<V4, V6>,
) -> Result<PerFamily<V4, V6>, String> {
    let mut out = PerFamily { v4: None, v6: None };
    for value in values {
        let twice = match split(value) {
            Ok(v4) => out.v4.replace(v4).is_some().then_some("IPv4"),
            Err(v6) => out.v6.replace(v6).is_some().then_some("IPv6"),
        };
        if let Some(family) = twice {
            return Err(format!(
                "{flag} is given twice for {family}: one per family"
            ));
        }
    }
    Ok(out)
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create a container (its network is wired when it starts).
    Create(ContainerCreateArgs),
    /// Wire a container's network and mark it running.
    Start { name: String },
    /// End a container's processes and release its addresses.
    Stop { name: String },
    /// Remove a container (-f stops it first).
    #[command(alias = "remove")]
    Rm {
        #[arg(short, long)]
        force: bool,
        name: String,
    },
    /// List containers.
    #[command(alias = "list")]
    Ls {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a container as JSON.
    Inspect { name: String },
    /// Show a container's published ports, or the host sides of one (`PORT[/PROTO]`).
    Port { name: String, port: Option<String> },
    /// Publish another port of a container (takes effect at once if it is running), and/or
    /// give its host ports allowlists of their own.
    Publish {
        name: String,
        spec: Option<String>,
        /// `PORT[-END][/PROTO]=CIDR[,CIDR...]`: only these clients may reach the host port(s);
        /// replaces an earlier allowlist of the same ports. Flows it no longer allows are cut.
        #[arg(long = "publish-allow", value_name = "PORT=CIDR,...")]
        allow: Vec<String>,
    },
    /// Stop publishing a port; connections already made through it go on.
    Unpublish { name: String, spec: String },
}

#[derive(Debug, Args)]
pub struct ContainerCreateArgs {
    /// bridge, host, none, container:NAME or a network name.
    #[arg(long, alias = "net", default_value = "bridge")]
    pub network: String,
    #[arg(long)]
    pub ip: Option<Ipv4Addr>,
    /// The IPv6 address, on a dual-stack network.
    #[arg(long)]
    pub ip6: Option<Ipv6Addr>,
    #[arg(long = "network-alias", alias = "net-alias")]
    pub aliases: Vec<String>,
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// `PORT[-END][/PROTO]=CIDR[,CIDR...]`: only these clients may reach that published host
    /// port (others get a TCP reset or ICMP port unreachable, as from a closed port).
    #[arg(long = "publish-allow", value_name = "PORT=CIDR,...")]
    pub publish_allow: Vec<String>,
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    #[arg(long)]
    pub expose: Vec<String>,
    #[arg(long = "link")]
    pub links: Vec<String>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    /// Adopt this network namespace instead of creating one.
    #[arg(long)]
    pub netns: Option<PathBuf>,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run CMD in the background and print its PID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when CMD exits.
    #[arg(long, conflicts_with = "detach", requires = "cmd")]
    pub rm: bool,
    #[command(flatten)]
    pub create: ContainerCreateArgs,
    /// The command to run in the container, after `--`.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Run in the background and print the PID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    pub name: String,
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum MapsCommand {
    /// Print every map (or one), decoded.
    Dump {
        map: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("netd").chain(args.iter().copied()))
    }

    fn network_create(args: &[&str]) -> NetworkCreateArgs {
        let full: Vec<&str> = ["network", "create"].iter().chain(args).copied().collect();
        match parse(&full).unwrap().command {
            Command::Network(NetworkCommand::Create(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subnets_gateways_and_ranges_are_one_per_family() {
        let a = network_create(&[
            "--ipv6",
            "--subnet",
            "fd00:28::/64",
            "--subnet",
            "172.28.0.0/16",
            "--gateway",
            "172.28.0.254",
            "--ip-range",
            "fd00:28::100/120",
            "n",
        ]);
        assert!(a.ipv6);
        let subnets = a.subnets().unwrap();
        assert_eq!(subnets.v4, Some("172.28.0.0/16".parse().unwrap()));
        assert_eq!(subnets.v6, Some("fd00:28::/64".parse().unwrap()));
        let gateways = a.gateways().unwrap();
        assert_eq!(
            (gateways.v4, gateways.v6),
            (Some("172.28.0.254".parse().unwrap()), None)
        );
        let ranges = a.ip_ranges().unwrap();
        assert_eq!(
            (ranges.v4, ranges.v6),
            (None, Some("fd00:28::100/120".parse().unwrap()))
        );
        let twice = network_create(&["--subnet", "10.1.0.0/16", "--subnet", "10.2.0.0/16", "n"]);
        assert_eq!(
            twice.subnets().unwrap_err(),
            "--subnet is given twice for IPv4: one per family"
        );
    }

    #[test]
    fn container_create_takes_dockers_flags() {
        let cli = parse(&[
            "container",
            "create",
            "--network",
            "net1",
            "--ip",
            "10.0.0.5",
            "--network-alias",
            "db",
            "-e",
            "A=1",
            "--expose",
            "80/tcp",
            "--hostname",
            "h",
            "c1",
        ])
        .unwrap();
        let Command::Container(ContainerCommand::Create(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.network, "net1");
        assert_eq!(a.ip, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(
            (a.aliases, a.env, a.expose),
            (vec!["db".into()], vec!["A=1".into()], vec!["80/tcp".into()])
        );
        assert_eq!(a.name, "c1");
    }

    #[test]
    fn malformed_addresses_are_refused_by_the_parser() {
        assert!(parse(&["network", "create", "--subnet", "10.0.0.0/33", "n"]).is_err());
        assert!(parse(&["network", "create", "--gateway", "10.0.0", "n"]).is_err());
        assert!(parse(&["container", "create", "--ip", "300.0.0.1", "c"]).is_err());
    }

    #[test]
    fn exec_takes_the_command_after_the_double_dash() {
        let cli = parse(&[
            "--socket", "/tmp/s", "exec", "-d", "-e", "X=1", "c", "--", "sh", "-c", "echo hi",
        ])
        .unwrap();
        assert_eq!(cli.socket, PathBuf::from("/tmp/s"));
        let Command::Exec(a) = cli.command else {
            panic!()
        };
        assert!(a.detach);
        assert_eq!(a.cmd, ["sh", "-c", "echo hi"]);
    }

    #[test]
    fn run_takes_create_flags_then_the_command() {
        let cli = parse(&[
            "run",
            "--rm",
            "-p",
            "8080:80",
            "--network",
            "n1",
            "web",
            "--",
            "sh",
            "-c",
            "true",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!()
        };
        assert!(a.rm && !a.detach);
        assert_eq!(
            (a.create.name.as_str(), a.create.network.as_str()),
            ("web", "n1")
        );
        assert_eq!(a.create.publish, ["8080:80"]);
        assert_eq!(a.cmd, ["sh", "-c", "true"]);
        assert!(
            parse(&["run", "--rm", "web"]).is_err(),
            "--rm needs a command"
        );
    }

    #[test]
    fn daemon_defaults_follow_the_contract() {
        let Command::Daemon(d) = parse(&["daemon"]).unwrap().command else {
            panic!()
        };
        assert_eq!(d.default_subnet.to_string(), "172.17.0.0/16");
        assert!(!d.cleanup);
    }
}

/// Property tests of the address options as the command line parses them: any text is taken
/// exactly when the address type parses it, to the same value, and never panics.
/// `PROPTEST_CASES` sets the number of cases.
#[cfg(test)]
mod props {
    use clap::Parser as _;
    use proptest::prelude::*;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("netd").chain(args.iter().copied()))
    }

    /// Text that is often an address or a CIDR, sometimes nearly.
    fn address_text() -> impl Strategy<Value = String> {
        prop_oneof![
            (any::<[u8; 4]>(), proptest::option::of(0u8..=40)).prop_map(|(a, p)| match p {
                Some(p) => format!("{}/{p}", std::net::Ipv4Addr::from(a)),
                None => std::net::Ipv4Addr::from(a).to_string(),
            }),
            "[0-9./:a-f-]{0,20}",
            any::<String>().prop_filter("not a flag", |s| !s.starts_with('-')),
        ]
    }

    proptest! {
        #[test]
        fn network_addresses_are_taken_exactly_when_they_parse(text in address_text()) {
            let create = |flag: &str| match parse(&["network", "create", flag, &text, "n"]) {
                Ok(Cli { command: Command::Network(NetworkCommand::Create(a)), .. }) => Some(a),
                Ok(other) => panic!("{other:?}"),
                Err(_) => None,
            };
            let net = text.parse::<IpNet>().ok();
            prop_assert_eq!(create("--subnet").map(|a| a.subnet), net.map(|n| vec![n]));
            prop_assert_eq!(create("--ip-range").map(|a| a.ip_range), net.map(|n| vec![n]));
            let gw = text.parse::<IpAddr>().ok();
            prop_assert_eq!(create("--gateway").map(|a| a.gateway), gw.map(|g| vec![g]));
            let ip = text.parse::<Ipv4Addr>().ok();
            let connect = parse(&["network", "connect", "--ip", &text, "n", "c"]).ok().map(|c| match c.command {
                Command::Network(NetworkCommand::Connect { ip, .. }) => ip,
                other => panic!("{other:?}"),
            });
            prop_assert_eq!(connect, ip.map(Some));
        }

        #[test]
        fn the_default_subnet_is_taken_only_with_room_in_it(text in address_text()) {
            let got = match parse(&["daemon", "--default-subnet", &text]) {
                Ok(Cli { command: Command::Daemon(d), .. }) => Some(d.default_subnet),
                Ok(other) => panic!("{other:?}"),
                Err(_) => None,
            };
            let want = text.parse::<Ipv4Net>().ok().filter(|n| n.prefix_len() <= 30).map(|n| n.trunc());
            prop_assert_eq!(got, want);
        }
    }
}
