//! (s) A dual-stack network (`--ipv6` and an IPv6 `--subnet`, as Docker's `--ipv6`): each
//! container gets an address of both families (one given with `--ip6`), its IPv6 default route
//! and a link-local address; neighbour discovery is answered at the port, so containers reach
//! each other and the gateway over IPv6; names resolve to AAAA records and back through
//! ip6.arpa; a second dual-stack network's containers stay out of reach, the drop counted.
use super::{section, Demo, Expect};

const NETWORK: &str = "dual";
const SUBNET6: &str = "fd00:31::/64";
const GATEWAY6: &str = "fd00:31::1";
/// The address `--ip6` gives the second container.
const FIXED6: &str = "fd00:31::50";
const OTHER: &str = "dual2";
const OTHER6: &str = "fd00:32::2";

impl Demo<'_> {
    pub(super) fn dual_stack(&mut self) {
        section("(s) a dual-stack network: IPv6 addresses, neighbour discovery, AAAA, isolation");
        let create = [
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "172.31.0.0/24",
            "--subnet",
            SUBNET6,
            NETWORK,
        ];
        self.step(
            &format!("create {NETWORK} with --ipv6 and subnets 172.31.0.0/24 and {SUBNET6}"),
            &create,
            Expect::Success,
        );
        self.step(
            &format!("inspect {NETWORK} shows both families"),
            &["network", "inspect", NETWORK],
            Expect::PrintsAll(&["\"enable_ipv6\": true", SUBNET6, GATEWAY6]),
        );
        self.container("six1", &["--network", NETWORK]);
        self.container("six2", &["--network", NETWORK, "--ip6", FIXED6]);
        self.step(
            "six1 has fd00:31::2/64 and a link-local address",
            &[
                "exec", "six1", "--", "busybox", "ip", "-6", "addr", "show", "eth0",
            ],
            Expect::PrintsAll(&["fd00:31::2/64", "fe80::"]),
        );
        self.step(
            &format!("six1's IPv6 default route is via {GATEWAY6}"),
            &["exec", "six1", "--", "busybox", "ip", "-6", "route"],
            Expect::Prints("default via fd00:31::1"),
        );
        for (to, what) in [(GATEWAY6, "the gateway"), (FIXED6, "six2")] {
            let ping = [
                "exec", "six1", "--", "busybox", "ping", "-6", "-c", "1", "-W", "2", to,
            ];
            self.step(
                &format!("six1 pings {what} at {to}"),
                &ping,
                Expect::Success,
            );
        }
        self.step(
            "six1 learnt six2's MAC from the NDP responder",
            &["exec", "six1", "--", "busybox", "ip", "-6", "neigh"],
            Expect::Prints(FIXED6),
        );
        let aaaa = [
            "exec",
            "six1",
            "--",
            "busybox",
            "nslookup",
            "-type=aaaa",
            "six2",
        ];
        self.step(
            "six2 resolves to its AAAA record",
            &aaaa,
            Expect::Prints(FIXED6),
        );
        let ptr = ["exec", "six1", "--", "busybox", "nslookup", FIXED6];
        self.step(
            &format!("{FIXED6} resolves back to six2 (ip6.arpa)"),
            &ptr,
            Expect::Prints("six2"),
        );
        self.dual_stack_isolation();
    }

    /// A container on a second dual-stack network is out of six1's reach.
    fn dual_stack_isolation(&mut self) {
        let create = [
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "172.31.1.0/24",
            "--subnet",
            "fd00:32::/64",
            OTHER,
        ];
        self.step(
            &format!("create {OTHER} (fd00:32::/64)"),
            &create,
            Expect::Success,
        );
        self.container("six3", &["--network", OTHER]);
        let ping = [
            "exec", "six1", "--", "busybox", "ping", "-6", "-c", "1", "-W", "1", OTHER6,
        ];
        self.step(
            &format!("six1 cannot reach six3 on {OTHER} at {OTHER6}"),
            &ping,
            Expect::Failure,
        );
        self.drops_counted("isolation");
    }
}
