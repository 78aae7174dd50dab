//! Answering one query: a name netd owns in the asker's networks is answered here (A records in
//! a rotating order, an empty answer for other types, PTR for container addresses); anything
//! else goes upstream. Messages are decoded and encoded by hickory-proto.
use std::net::Ipv4Addr;

use hickory_proto::{
    op::{Message, MessageType, OpCode, ResponseCode},
    rr::{
        rdata::{A, PTR},
        Name, RData, Record, RecordType,
    },
};

use super::names::Names;

/// TTL of the records netd owns (Docker's embedded server uses 600).
const TTL: u32 = 600;

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

/// The answer to `query` from `asker`; `rotation` picks the first of several addresses.
pub fn answer(names: &Names, asker: Option<&str>, query: &[u8], rotation: usize) -> Answer {
    let Ok(request) = Message::from_vec(query) else {
        return formerr(query);
    };
    if request.metadata.message_type != MessageType::Query
        || request.metadata.op_code != OpCode::Query
        || request.queries.len() != 1
    {
        return reply(&request, ResponseCode::NotImp, vec![]);
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
                    &request,
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
            Some(mut addrs) => {
                let n = addrs.len();
                addrs.rotate_left(rotation % n);
                let records = match qtype {
                    RecordType::A | RecordType::ANY => addrs
                        .into_iter()
                        .map(|ip| Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))))
                        .collect(),
                    // The name exists, with no record of this type (netd networks are IPv4).
                    _ => vec![],
                };
                reply(&request, ResponseCode::NoError, records)
            }
            None => Answer::Forward,
        },
    }
}

/// A response to `request` with `code` and `answers`.
fn reply(request: &Message, code: ResponseCode, answers: Vec<Record>) -> Answer {
    let mut resp = Message::response(request.metadata.id, request.metadata.op_code);
    resp.metadata.response_code = code;
    resp.metadata.recursion_desired = request.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.queries = request.queries.clone();
    resp.answers = answers;
    resp.to_vec().map(Answer::Reply).unwrap_or(Answer::Ignore)
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

/// The address of a reverse name (`4.3.2.1.in-addr.arpa.` is 1.2.3.4).
fn ptr_address(name: &str) -> Option<Ipv4Addr> {
    let rest = name.trim_end_matches('.').to_ascii_lowercase();
    let rest = rest.strip_suffix(".in-addr.arpa")?;
    let octets: Vec<u8> = rest
        .split('.')
        .map(|o| o.parse().ok())
        .collect::<Option<_>>()?;
    match octets[..] {
        [d, c, b, a] => Some(Ipv4Addr::new(a, b, c, d)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;

    use super::*;

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
}
