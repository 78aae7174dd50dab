//! Legacy links on the default bridge, checked against the seeds: exactly Docker's environment,
//! a hosts line `IP ALIAS ID NAME`, one-way, and a hosts entry that follows a restarted linked
//! container while the environment does not (seed 003).
use netd_tests::Host;

fn env_of(host: &Host, container: &str) -> Vec<String> {
    let out = host.exec(container, &["env"]).stdout;
    let mut vars: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("DB_") || l.starts_with("WEBDB_"))
        .map(str::to_string)
        .collect();
    vars.sort();
    vars
}

#[test]
fn a_link_gives_dockers_environment_and_hosts_line() {
    let Some(host) = Host::start() else { return };
    host.container(
        "db",
        &["--expose", "5432", "-e", "POSTGRES_PASSWORD=secret"],
    );
    host.container("web", &["--link", "db:webdb"]);
    let ip = host.ip("db", "bridge");
    let id = host.inspect("db")["id"].as_str().unwrap()[..12].to_string();
    let expected = [
        "WEBDB_ENV_POSTGRES_PASSWORD=secret".to_string(),
        "WEBDB_NAME=/web/webdb".to_string(),
        format!("WEBDB_PORT=tcp://{ip}:5432"),
        format!("WEBDB_PORT_5432_TCP=tcp://{ip}:5432"),
        format!("WEBDB_PORT_5432_TCP_ADDR={ip}"),
        "WEBDB_PORT_5432_TCP_PORT=5432".to_string(),
        "WEBDB_PORT_5432_TCP_PROTO=tcp".to_string(),
    ];
    assert_eq!(env_of(&host, "web"), expected);
    let hosts = host.exec("web", &["cat", "/etc/hosts"]).stdout;
    assert!(
        hosts.lines().any(|l| l == format!("{ip}\twebdb {id} db")),
        "{hosts}"
    );
    assert!(
        host.reaches("web", "webdb"),
        "the alias resolves through /etc/hosts"
    );
    let reverse = host.exec("db", &["cat", "/etc/hosts"]).stdout;
    assert!(
        !reverse.contains("webdb") && !reverse.contains("web"),
        "links are one-way: {reverse}"
    );
}

#[test]
fn the_hosts_entry_follows_a_restarted_linked_container_and_the_environment_does_not() {
    let Some(host) = Host::start() else { return };
    host.container("db", &["--expose", "5432"]);
    host.container("web", &["--link", "db"]);
    let before = host.ip("db", "bridge");
    let env_before = env_of(&host, "web");
    assert!(
        env_before.contains(&format!("DB_PORT_5432_TCP_ADDR={before}")),
        "{env_before:?}"
    );
    host.ok(&["container", "stop", "db"]);
    host.container("filler", &[]);
    host.ok(&["container", "start", "db"]);
    let after = host.ip("db", "bridge");
    assert_ne!(before, after);
    let hosts = host.exec("web", &["cat", "/etc/hosts"]).stdout;
    assert!(
        hosts.contains(&format!("{after}\tdb")) && !hosts.contains(&format!("{before}\tdb")),
        "{hosts}"
    );
    assert_eq!(
        env_of(&host, "web"),
        env_before,
        "the environment is what it was at start"
    );
}

#[test]
fn linking_to_a_missing_or_stopped_container_is_refused() {
    let Some(host) = Host::start() else { return };
    let err = host.fails(&["container", "create", "--link", "nosuch:alias", "x"]);
    assert!(err.contains("no such container"), "{err}");
    host.ok(&["container", "create", "sleeping"]);
    host.ok(&["container", "create", "--link", "sleeping", "y"]);
    let err = host.fails(&["container", "start", "y"]);
    assert!(err.contains("non running container"), "{err}");
    assert_eq!(host.inspect("y")["status"], "created");
}
