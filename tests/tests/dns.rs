//! Names, as containers see them with real resolvers (busybox nslookup, glibc getent, dig):
//! the embedded server on user-defined networks (names, short IDs, aliases, rotation, PTR, only
//! on shared networks, following start/stop/connect/disconnect), none on the default bridge,
//! outside names from the upstream server, and robustness against garbage.
use netd_tests::Host;

fn dig(host: &Host, container: &str, args: &[&str]) -> String {
    let mut cmd = vec!["dig", "+short", "+time=2", "+tries=1"];
    cmd.extend_from_slice(args);
    host.exec(container, &cmd).stdout.trim().to_string()
}

#[test]
fn containers_on_a_user_network_resolve_each_other_by_name_id_and_alias() {
    let Some(host) = Host::start() else { return };
    let _upstream = host.upstream_dns();
    host.ok(&["network", "create", "app"]);
    host.container("web", &["--network", "app", "--network-alias", "frontend"]);
    host.container("db", &["--network", "app"]);
    let web = host.ip("web", "app");
    let id = host.inspect("web")["id"].as_str().unwrap()[..12].to_string();
    assert_eq!(dig(&host, "db", &["web"]), web);
    assert_eq!(dig(&host, "db", &["frontend"]), web);
    assert_eq!(dig(&host, "db", &[&id]), web);
    let getent = host.exec("db", &["getent", "hosts", "web"]).stdout;
    assert!(getent.starts_with(&web), "{getent}");
    let nslookup = host.exec("db", &["busybox", "nslookup", "web"]).stdout;
    assert!(nslookup.contains(&web), "{nslookup}");
    assert_eq!(dig(&host, "db", &["-x", &web]), "web.", "PTR");
    assert_eq!(
        dig(&host, "db", &["outside.test"]),
        "10.99.0.77",
        "outside names go upstream"
    );
    let gateway = host.inspect("db")["networks"]["app"]["gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        dig(&host, "db", &[&format!("@{gateway}"), "web"]),
        web,
        "the gateway answers too"
    );
    let resolv = host.exec("db", &["cat", "/etc/resolv.conf"]).stdout;
    assert!(resolv.starts_with("nameserver 127.0.0.11\n"), "{resolv}");
}

#[test]
fn an_alias_shared_by_several_containers_returns_all_in_rotating_order() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "app"]);
    for c in ["aa", "bb", "cc"] {
        host.container(c, &["--network", "app", "--network-alias", "pool"]);
    }
    host.container("client", &["--network", "app"]);
    let answers: Vec<String> = (0..3).map(|_| dig(&host, "client", &["pool"])).collect();
    for a in &answers {
        assert_eq!(a.lines().count(), 3, "{a}");
    }
    let firsts: std::collections::BTreeSet<&str> =
        answers.iter().map(|a| a.lines().next().unwrap()).collect();
    assert!(firsts.len() > 1, "the order rotates: {answers:?}");
}

#[test]
fn names_resolve_only_on_shared_networks_and_follow_connect_and_disconnect() {
    let Some(host) = Host::start() else { return };
    let _upstream = host.upstream_dns();
    host.ok(&["network", "create", "n1"]);
    host.ok(&["network", "create", "n2"]);
    host.container("one", &["--network", "n1"]);
    host.container("two", &["--network", "n2"]);
    assert_eq!(dig(&host, "one", &["two"]), "", "not on a shared network");
    host.ok(&["network", "connect", "--alias", "second", "n2", "one"]);
    assert_eq!(dig(&host, "one", &["two"]), host.ip("two", "n2"));
    assert_eq!(
        dig(&host, "two", &["second"]),
        host.ip("one", "n2"),
        "connect --alias"
    );
    host.ok(&["network", "disconnect", "n2", "one"]);
    assert_eq!(dig(&host, "one", &["two"]), "");
    assert_eq!(dig(&host, "two", &["one"]), "");
}

#[test]
fn names_follow_stop_and_start() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "app"]);
    host.container("svc", &["--network", "app"]);
    host.container("client", &["--network", "app"]);
    let before = host.ip("svc", "app");
    assert_eq!(dig(&host, "client", &["svc"]), before);
    host.ok(&["container", "stop", "svc"]);
    assert_eq!(dig(&host, "client", &["svc"]), "");
    host.container("other", &["--network", "app"]);
    host.ok(&["container", "start", "svc"]);
    let after = host.ip("svc", "app");
    assert_ne!(before, after);
    assert_eq!(dig(&host, "client", &["svc"]), after);
}

#[test]
fn the_default_bridge_resolves_no_container_names_but_outside_names() {
    let Some(host) = Host::start() else { return };
    let _upstream = host.upstream_dns();
    host.container("bbox1", &[]);
    host.container("bbox3", &[]);
    let out = host.exec("bbox1", &["busybox", "ping", "-c", "1", "-W", "1", "bbox3"]);
    assert!(!out.ok() && out.stderr.contains("bad address"), "{out:?}");
    assert_eq!(dig(&host, "bbox1", &["outside.test"]), "10.99.0.77");
    let resolv = host.exec("bbox1", &["cat", "/etc/resolv.conf"]).stdout;
    assert_eq!(resolv, "nameserver 10.99.0.1\n");
}

#[test]
fn garbage_and_floods_do_not_stop_the_server_from_answering() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "app"]);
    host.container("web", &["--network", "app"]);
    host.container("noisy", &["--network", "app"]);
    let web = host.ip("web", "app");
    let flood =
        "for i in $(seq 1 300); do head -c 40 /dev/urandom | socat -u - UDP:127.0.0.11:53; done; \
                 printf '\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00' | socat -u - UDP:127.0.0.11:53";
    assert!(host.exec("noisy", &["sh", "-c", flood]).ok());
    assert_eq!(dig(&host, "noisy", &["web"]), web);
    assert_eq!(dig(&host, "noisy", &["+tcp", "web"]), web, "TCP too");
}
