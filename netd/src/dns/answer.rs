//! Answering one query: a name netd owns in the asker's networks is answered here (A and AAAA
//! records in a rotating order, an empty answer for other types, PTR for container addresses in
//! `in-addr.arpa` and `ip6.arpa`); anything else goes upstream. Messages are decoded and encoded
//! by hickory-proto.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, ResponseCode},
    rr::{
        rdata::{A, AAAA, PTR},
        Name, RData, Record, RecordType,
    },
};

use super::names::Names;

/// TTL of the records netd owns (Docker's embedded server uses 600).
const TTL: u32 = 600;

/// Largest UDP reply the server sends, whatever a client's EDNS allows (it also reads queries
/// of at most this size).
pub const MAX_UDP_PAYLOAD: u16 = 4096;

/// How a query came in, which bounds the reply's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// 512 bytes, or what the query's EDNS record allows, up to [`MAX_UDP_PAYLOAD`]; a longer
    /// reply is sent truncated (TC set, no records) so that the client asks again over TCP.
    Udp,
    /// Length-prefixed: up to 65,535 bytes.
    Tcp,
}

impl Transport {
    /// The largest reply to `request` this transport carries.
    pub fn limit(self, request: &Message) -> usize {
        match self {
            Transport::Udp => usize::from(request.max_payload().min(MAX_UDP_PAYLOAD)),
            Transport::Tcp => usize::from(u16::MAX),
        }
    }
}

/// What to do with a query.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not ours: ask the upstream servers.
    Forward,
    /// Not a DNS query at all: say nothing.
    Ignore,
}

/// The answer to `query` from `asker`, arrived over `transport`; `rotation` picks the first of
/// several addresses. A response is never answered (two servers would answer each other
/// forever).
pub fn answer(
    names: &Names,
    asker: Option<&str>,
    query: &[u8],
    rotation: usize,
    transport: Transport,
) -> Answer {
    let Ok(request) = Message::from_vec(query) else {
        return formerr(query);
    };
    if request.metadata.message_type != MessageType::Query {
        return Answer::Ignore;
    }
    let reply = |code, answers| reply(&request, code, answers, transport);
    if request.metadata.op_code != OpCode::Query {
        return reply(ResponseCode::NotImp, vec![]);
    }
    if request.queries.len() != 1 {
        return reply(ResponseCode::FormErr, vec![]);
    }
    let Some(asker) = asker else {
        return Answer::Forward;
    };
    let q = &request.queries[0];
    let name = q.name().to_ascii();
    match q.query_type() {
        RecordType::PTR => match ptr_address(&name).and_then(|ip| names.reverse(asker, ip)) {
            Some(target) => match Name::from_ascii(format!("{target}.")) {
                Ok(target) => reply(
                    ResponseCode::NoError,
                    vec![Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    )],
                ),
                Err(_) => Answer::Forward,
            },
            None => Answer::Forward,
        },
        qtype => match names.lookup(asker, &name) {
            Some(addrs) => {
                // The name exists; it may have no record of this type (an empty answer).
                let mut records: Vec<RData> = addrs
                    .into_iter()
                    .filter_map(|ip| match (qtype, ip) {
                        (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
                        (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => {
                            Some(RData::AAAA(AAAA(v6)))
                        }
                        _ => None,
                    })
                    .collect();
                if !records.is_empty() {
                    let n = records.len();
                    records.rotate_left(rotation % n);
                }
                let records = records
                    .into_iter()
                    .map(|rdata| Record::from_rdata(q.name().clone(), TTL, rdata))
                    .collect();
                reply(ResponseCode::NoError, records)
            }
            None => Answer::Forward,
        },
    }
}

/// A response to `request` with `code` and `answers`, with an EDNS record if the request had
/// one (RFC 6891 6.1.1), truncated if it does not fit `transport`.
fn reply(
    request: &Message,
    code: ResponseCode,
    answers: Vec<Record>,
    transport: Transport,
) -> Answer {
    let mut resp = Message::response(request.metadata.id, request.metadata.op_code);
    resp.metadata.response_code = code;
    resp.metadata.recursion_desired = request.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.queries = request.queries.clone();
    resp.answers = answers;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        resp.set_edns(edns);
    }
    let Ok(bytes) = resp.to_vec() else {
        return Answer::Ignore;
    };
    if bytes.len() <= transport.limit(request) {
        return Answer::Reply(bytes);
    }
    resp.metadata.truncation = true;
    resp.answers.clear();
    match resp.to_vec() {
        Ok(bytes) if bytes.len() <= transport.limit(request) => Answer::Reply(bytes),
        _ => Answer::Ignore,
    }
}

/// FORMERR for a message whose header is readable but whose body is not; nothing otherwise.
fn formerr(query: &[u8]) -> Answer {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Answer::Ignore;
    }
    let id = u16::from_be_bytes([query[0], query[1]]);
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
        .to_vec()
        .map(Answer::Reply)
        .unwrap_or(Answer::Ignore)
}

/// The address of a reverse name: `4.3.2.1.in-addr.arpa.` is 1.2.3.4, and an `ip6.arpa.` name
/// of 32 nibbles, lowest first, an IPv6 address.
fn ptr_address(name: &str) -> Option<IpAddr> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let octets: Vec<u8> = rest
            .split('.')
            .map(|o| o.parse().ok())
            .collect::<Option<_>>()?;
        return match octets[..] {
            [d, c, b, a] => Some(Ipv4Addr::new(a, b, c, d).into()),
            _ => None,
        };
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .split('.')
        .map(|n| match n.as_bytes() {
            [d] => (*d as char).to_digit(16).map(|d| d as u8),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        // Lowest nibble first: the pair is (low, high) of byte i, counted from the end.
        bytes[i] = pair[1] << 4 | pair[0];
    }
    Some(Ipv6Addr::from(bytes).into())
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;

    use super::*;

    /// The answer over UDP, where most queries come.
    fn answer(names: &Names, asker: Option<&str>, query: &[u8], rotation: usize) -> Answer {
        super::answer(names, asker, query, rotation, Transport::Udp)
    }

    fn names() -> Names {
        Names::for_tests(&[
            ("web", "app", "10.1.0.2", &["www"]),
            ("web2", "app", "10.1.0.3", &["www"]),
            ("db", "data", "10.2.0.2", &[]),
        ])
    }

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    fn decoded(a: Answer) -> Message {
        match a {
            Answer::Reply(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_container_name_is_answered_with_its_address() {
        let m = decoded(answer(
            &names(),
            Some("web2"),
            &query("web.", RecordType::A),
            0,
        ));
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&m), [Ipv4Addr::new(10, 1, 0, 2)]);
    }

    #[test]
    fn several_containers_behind_one_alias_come_back_in_rotating_order() {
        assert_eq!(
            answer(&names(), Some("db"), &query("www.", RecordType::A), 0),
            Answer::Forward,
            "db is not on app"
        );
        let r0 = a_records(&decoded(answer(
            &names(),
            Some("web"),
            &query("www.", RecordType::A),
            0,
        )));
        let r1 = a_records(&decoded(answer(
            &names(),
            Some("web"),
            &query("www.", RecordType::A),
            1,
        )));
        assert_eq!(r0.len(), 2);
        assert_eq!(r0[0], r1[1]);
        assert_eq!(r0[1], r1[0]);
    }

    #[test]
    fn names_of_other_networks_and_outside_names_go_upstream() {
        assert_eq!(
            answer(&names(), Some("web"), &query("db.", RecordType::A), 0),
            Answer::Forward
        );
        assert_eq!(
            answer(
                &names(),
                Some("web"),
                &query("example.org.", RecordType::A),
                0
            ),
            Answer::Forward
        );
        assert_eq!(
            answer(&names(), None, &query("web.", RecordType::A), 0),
            Answer::Forward
        );
    }

    #[test]
    fn container_addresses_resolve_back_to_names() {
        let m = decoded(answer(
            &names(),
            Some("web2"),
            &query("2.0.1.10.in-addr.arpa.", RecordType::PTR),
            0,
        ));
        match &m.answers[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_ascii(), "web."),
            other => panic!("{other:?}"),
        }
    }

    /// `web` on a dual-stack network: both addresses under each name.
    fn dual_stack() -> Names {
        Names::for_tests(&[
            ("web", "app", "10.1.0.2", &["www"]),
            ("web", "app", "fd00:1::2", &["www"]),
            ("web2", "app", "10.1.0.3", &[]),
        ])
    }

    fn aaaa_records(m: &Message) -> Vec<Ipv6Addr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_dual_stack_name_has_its_ipv4_address_in_a_and_its_ipv6_address_in_aaaa() {
        let ask = |qtype| {
            decoded(answer(
                &dual_stack(),
                Some("web2"),
                &query("www.", qtype),
                0,
            ))
        };
        let a = ask(RecordType::A);
        assert_eq!(a_records(&a), [Ipv4Addr::new(10, 1, 0, 2)]);
        assert!(aaaa_records(&a).is_empty());
        let aaaa = ask(RecordType::AAAA);
        assert_eq!(
            aaaa_records(&aaaa),
            ["fd00:1::2".parse::<Ipv6Addr>().unwrap()]
        );
        assert!(a_records(&aaaa).is_empty());
        assert_eq!(ask(RecordType::ANY).answers.len(), 2);
    }

    #[test]
    fn an_ipv6_address_resolves_back_to_its_name_under_ip6_arpa() {
        let name = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.";
        let m = decoded(answer(
            &dual_stack(),
            Some("web2"),
            &query(name, RecordType::PTR),
            0,
        ));
        match &m.answers[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_ascii(), "web."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reverse_names_of_both_families_are_read_and_malformed_ones_are_not() {
        let v6: Ipv6Addr = "4321:0:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(
            ptr_address(
                "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.IP6.ARPA."
            ),
            Some(v6.into())
        );
        assert_eq!(
            ptr_address("4.3.2.1.in-addr.arpa"),
            Some(Ipv4Addr::new(1, 2, 3, 4).into())
        );
        for bad in [
            "1.0.ip6.arpa.",
            "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.",
            "10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.",
            "3.2.1.in-addr.arpa.",
        ] {
            assert_eq!(ptr_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn aaaa_for_a_known_name_is_empty_not_forwarded() {
        let m = decoded(answer(
            &names(),
            Some("web2"),
            &query("web.", RecordType::AAAA),
            0,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        assert_eq!(
            answer(&names(), Some("web"), b"\x12\x34", 0),
            Answer::Ignore
        );
        let m = decoded(answer(
            &names(),
            Some("web"),
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff",
            0,
        ));
        assert_eq!(
            (m.metadata.id, m.metadata.response_code),
            (0x1234, ResponseCode::FormErr)
        );
    }

    #[test]
    fn a_crowd_over_plain_udp_is_truncated_and_whole_over_tcp_or_edns() {
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_ascii("crowd.").unwrap(),
            RecordType::A,
        ));
        let plain = q.to_vec().unwrap();
        let udp = match super::answer(&props::names(), Some("web"), &plain, 0, Transport::Udp) {
            Answer::Reply(b) => b,
            other => panic!("{other:?}"),
        };
        let m = Message::from_vec(&udp).unwrap();
        assert!(udp.len() <= 512 && m.metadata.truncation && m.answers.is_empty());
        let tcp = match super::answer(&props::names(), Some("web"), &plain, 0, Transport::Tcp) {
            Answer::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (tcp.answers.len(), tcp.metadata.truncation),
            (props::CROWD as usize, false)
        );
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        q.set_edns(edns);
        let big = match super::answer(
            &props::names(),
            Some("web"),
            &q.to_vec().unwrap(),
            0,
            Transport::Udp,
        ) {
            Answer::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(big.answers.len(), props::CROWD as usize);
    }
}

/// Property tests of query handling: arbitrary bytes and arbitrary well-formed queries never
/// panic; every reply is a DNS response with the query's id and question that fits its transport
/// (truncated, with TC set, when the records do not); names netd owns are answered with exactly
/// their addresses, others forwarded, responses never answered. `PROPTEST_CASES` sets the number
/// of cases.
#[cfg(test)]
mod props {
    use hickory_proto::op::Query;
    use proptest::prelude::*;

    use super::*;

    /// How many containers share the alias `crowd` (more than 512 bytes of A records).
    pub(super) const CROWD: u8 = 120;

    /// The names of the properties: three containers, and a crowd behind one alias.
    pub(super) fn names() -> Names {
        let mut rows: Vec<(String, String, String, Vec<&str>)> = vec![
            ("web".into(), "app".into(), "10.1.0.2".into(), vec!["www"]),
            ("web2".into(), "app".into(), "10.1.0.3".into(), vec!["www"]),
            ("db".into(), "data".into(), "10.2.0.2".into(), vec![]),
            ("web".into(), "app".into(), "fd00:1::2".into(), vec!["www"]),
        ];
        for i in 0..CROWD {
            rows.push((
                format!("c{i}"),
                "app".into(),
                format!("10.1.1.{i}"),
                vec!["crowd"],
            ));
        }
        let rows: Vec<(&str, &str, &str, &[&str])> = rows
            .iter()
            .map(|(c, n, ip, a)| (c.as_str(), n.as_str(), ip.as_str(), a.as_slice()))
            .collect();
        Names::for_tests(&rows)
    }

    fn asker() -> impl Strategy<Value = Option<&'static str>> {
        proptest::sample::select(vec![
            None,
            Some("web"),
            Some("db"),
            Some("c7"),
            Some("nobody"),
        ])
    }

    fn name() -> impl Strategy<Value = Name> {
        let known = proptest::sample::select(vec![
            "web.",
            "WWW.",
            "www",
            "db.",
            "crowd.",
            "Crowd.",
            "c3.",
            "example.org.",
            "2.0.1.10.in-addr.arpa.",
            "2.0.2.10.IN-ADDR.arpa.",
            "7.1.1.10.in-addr.arpa.",
            "9.9.9.in-addr.arpa.",
            "in-addr.arpa.",
            "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.",
            "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.",
            "ip6.arpa.",
            ".",
        ])
        .prop_map(|n| Name::from_ascii(n).unwrap());
        let random = proptest::collection::vec("[a-zA-Z0-9_-]{1,12}", 1..5)
            .prop_filter_map("a valid name", |labels| {
                Name::from_ascii(labels.join(".")).ok()
            });
        prop_oneof![3 => known, 1 => random]
    }

    fn record_type() -> impl Strategy<Value = RecordType> {
        prop_oneof![
            Just(RecordType::A),
            Just(RecordType::AAAA),
            Just(RecordType::PTR),
            Just(RecordType::ANY),
            Just(RecordType::MX),
            Just(RecordType::TXT),
            any::<u16>().prop_map(RecordType::from),
        ]
    }

    /// A query as a stub resolver (or something stranger) builds it.
    fn message() -> impl Strategy<Value = Message> {
        (
            any::<u16>(),
            prop_oneof![8 => Just(MessageType::Query), 1 => Just(MessageType::Response)],
            prop_oneof![
                8 => Just(OpCode::Query),
                1 => Just(OpCode::Status),
                1 => Just(OpCode::Notify),
                1 => Just(OpCode::Update)
            ],
            proptest::collection::vec((name(), record_type()), 0..3),
            prop_oneof![Just(None), any::<u16>().prop_map(Some)],
            any::<bool>(),
        )
            .prop_map(|(id, kind, op, queries, edns, rd)| {
                let mut m = Message::new(id, kind, op);
                m.metadata.recursion_desired = rd;
                for (n, t) in queries {
                    m.add_query(Query::query(n, t));
                }
                if let Some(size) = edns {
                    let mut e = Edns::new();
                    e.set_max_payload(size);
                    m.set_edns(e);
                }
                m
            })
    }

    /// Bytes of a query, sometimes cut short or with bytes changed.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            (
                message(),
                proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
                proptest::option::of(any::<usize>())
            )
                .prop_map(|(m, changes, cut)| {
                    let mut b = m.to_vec().unwrap();
                    for (at, v) in changes {
                        let at = at % b.len();
                        b[at] = v;
                    }
                    if let Some(cut) = cut {
                        b.truncate(cut % (b.len() + 1));
                    }
                    b
                }),
        ]
    }

    fn transport() -> impl Strategy<Value = Transport> {
        prop_oneof![Just(Transport::Udp), Just(Transport::Tcp)]
    }

    /// A reply must be a response to the query: its id, and within what its transport carries.
    fn check_reply(
        query: &[u8],
        reply: &[u8],
        transport: Transport,
    ) -> Result<Message, TestCaseError> {
        let m = Message::from_vec(reply)
            .map_err(|e| TestCaseError::fail(format!("reply does not decode: {e}")))?;
        prop_assert!(query.len() >= 2);
        prop_assert_eq!(m.metadata.id, u16::from_be_bytes([query[0], query[1]]));
        prop_assert_eq!(m.metadata.message_type, MessageType::Response);
        let limit = match (transport, Message::from_vec(query)) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, Ok(q)) => usize::from(q.max_payload().min(MAX_UDP_PAYLOAD)),
            (Transport::Udp, Err(_)) => 512,
        };
        prop_assert!(
            reply.len() <= limit,
            "{} bytes over {:?}",
            reply.len(),
            transport
        );
        Ok(m)
    }

    proptest! {
        #[test]
        fn any_bytes_get_a_valid_reply_with_their_id_or_none(
            query in bytes(), asker in asker(), rotation in any::<usize>(), transport in transport()
        ) {
            match answer(&names(), asker, &query, rotation, transport) {
                Answer::Reply(reply) => {
                    prop_assert!(query.len() >= 12, "a reply to {} bytes", query.len());
                    prop_assert!(query[2] & 0x80 == 0, "a reply to a response");
                    check_reply(&query, &reply, transport)?;
                }
                Answer::Forward => prop_assert!(Message::from_vec(&query).is_ok()),
                Answer::Ignore => {}
            }
        }

        #[test]
        fn well_formed_queries_are_answered_by_the_rules(
            query in message(), asker in asker(), rotation in any::<usize>(), transport in transport()
        ) {
            let names = names();
            let bytes = query.to_vec().unwrap();
            // What the server sees: names on the wire are absolute.
            let query = Message::from_vec(&bytes).unwrap();
            let got = answer(&names, asker, &bytes, rotation, transport);
            if query.metadata.message_type == MessageType::Response {
                prop_assert_eq!(got, Answer::Ignore);
                return Ok(());
            }
            let expect_code = |m: &Message, code| -> Result<(), TestCaseError> {
                prop_assert_eq!(m.metadata.response_code, code);
                prop_assert!(m.answers.is_empty());
                Ok(())
            };
            if query.metadata.op_code != OpCode::Query || query.queries.len() != 1 {
                let Answer::Reply(reply) = got else {
                    return Err(TestCaseError::fail(format!("no error reply: {got:?}")));
                };
                let m = check_reply(&bytes, &reply, transport)?;
                let code = match query.metadata.op_code {
                    OpCode::Query => ResponseCode::FormErr,
                    _ => ResponseCode::NotImp,
                };
                return expect_code(&m, code);
            }
            let Some(asker) = asker else {
                prop_assert_eq!(got, Answer::Forward);
                return Ok(());
            };
            let q = &query.queries[0];
            let owned = match q.query_type() {
                RecordType::PTR => ptr_address(&q.name().to_ascii())
                    .and_then(|ip| names.reverse(asker, ip))
                    .map(|target| vec![target.to_string()]),
                qtype => names.lookup(asker, &q.name().to_ascii()).map(|addrs| {
                    addrs
                        .iter()
                        .filter(|ip| match qtype {
                            RecordType::A => ip.is_ipv4(),
                            RecordType::AAAA => ip.is_ipv6(),
                            RecordType::ANY => true,
                            _ => false,
                        })
                        .map(IpAddr::to_string)
                        .collect()
                }),
            };
            let Some(mut wanted) = owned else {
                prop_assert_eq!(got, Answer::Forward);
                return Ok(());
            };
            let Answer::Reply(reply) = got else {
                return Err(TestCaseError::fail(format!("{q} is ours but got {got:?}")));
            };
            let m = check_reply(&bytes, &reply, transport)?;
            prop_assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            prop_assert_eq!(&m.queries, &query.queries);
            prop_assert_eq!(m.edns.is_some(), query.edns.is_some());
            if m.metadata.truncation {
                prop_assert_eq!(transport, Transport::Udp);
                prop_assert!(m.answers.is_empty());
                return Ok(());
            }
            let mut given: Vec<String> = m.answers.iter().map(|r| match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::PTR(p) => p.0.to_ascii().trim_end_matches('.').to_string(),
                other => format!("unexpected {other:?}"),
            }).collect();
            given.sort();
            wanted.sort();
            prop_assert_eq!(given, wanted);
        }
    }
}
