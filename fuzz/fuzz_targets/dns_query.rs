//! libFuzzer target: the embedded DNS server's answer to one query, over UDP and TCP, from a
//! container that has names to resolve. Whatever the bytes, answering never panics; a reply is a
//! DNS response with the query's id that fits its transport; a response is never answered.
#![no_main]

use std::{collections::BTreeMap, net::Ipv4Addr, sync::OnceLock};

use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use netd::{
    dns::{
        answer::{answer, Answer, Transport, MAX_UDP_PAYLOAD},
        names::Names,
    },
    state::{
        Attachment, BridgeConfig, Container, DriverConfig, EndpointState, Network, NetworkMode,
        State, Status,
    },
};

fn network(name: &str, subnet: &str, net_id: u32) -> Network {
    let subnet: ipnet::Ipv4Net = subnet.parse().unwrap();
    Network {
        name: name.into(),
        id: format!("{name:0>64}"),
        driver: DriverConfig::Bridge(BridgeConfig {
            device: format!("br-{name}"),
        }),
        subnet,
        gateway: netd::ipam::default_gateway(subnet),
        ip_range: None,
        internal: false,
        options: BTreeMap::new(),
        net_id,
        default: false,
        user_subnet: false,
        created: 0,
    }
}

fn running(name: &str, network: &str, ip: Ipv4Addr, aliases: &[&str]) -> Container {
    Container {
        name: name.into(),
        id: format!("{name:0<64}"),
        mode: NetworkMode::Bridge,
        attachments: vec![Attachment {
            network: network.into(),
            ip: None,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ifname: None,
            handover: None,
        }],
        publish: vec![],
        ports: vec![],
        expose: vec![],
        links: vec![],
        link_env: vec![],
        env: vec![],
        hostname: name.into(),
        adopted_netns: None,
        runtime: None,
        runtime_id: None,
        status: Status::Running,
        endpoints: vec![EndpointState {
            network: network.into(),
            ifname: "eth0".into(),
            host_veth: Some(format!("veth-{name}")),
            ip,
            mac: [2, 0x42, 0, 0, 0, 1],
        }],
        created: 0,
    }
}

/// Two networks, and 120 containers behind the alias `crowd` (more than 512 bytes of answers).
fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut state = State::default();
        for n in [
            network("app", "10.1.0.0/16", 2),
            network("data", "10.2.0.0/24", 3),
        ] {
            state.networks.insert(n.name.clone(), n);
        }
        let mut cs = vec![
            running("web", "app", Ipv4Addr::new(10, 1, 0, 2), &["www"]),
            running("db", "data", Ipv4Addr::new(10, 2, 0, 2), &[]),
        ];
        for i in 0..120u8 {
            cs.push(running(
                &format!("c{i}"),
                "app",
                Ipv4Addr::new(10, 1, 1, i),
                &["crowd"],
            ));
        }
        for c in cs {
            state.containers.insert(c.name.clone(), c);
        }
        Names::from_state(&state)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, query)) = data.split_first() else {
        return;
    };
    let asker = [None, Some("web"), Some("db"), Some("c7")][usize::from(selector & 3)];
    let transport = if selector & 4 == 0 {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let rotation = usize::from(selector >> 3);
    if let Answer::Reply(reply) = answer(names(), asker, query, rotation, transport) {
        let m = Message::from_vec(&reply).expect("a reply decodes");
        assert!(
            query.len() >= 12 && query[2] & 0x80 == 0,
            "a reply to a non-query"
        );
        assert_eq!(m.metadata.id, u16::from_be_bytes([query[0], query[1]]));
        assert_eq!(m.metadata.message_type, MessageType::Response);
        let limit = match (transport, Message::from_vec(query)) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, Ok(q)) => usize::from(q.max_payload().min(MAX_UDP_PAYLOAD)),
            (Transport::Udp, Err(_)) => 512,
        };
        assert!(
            reply.len() <= limit,
            "{} bytes over {transport:?}",
            reply.len()
        );
    }
});
