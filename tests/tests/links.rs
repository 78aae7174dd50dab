//! Links, checked against the seeds and Docker 20.10: on the default bridge exactly Docker's
//! environment, a hosts line `IP ALIAS ID NAME` before the container's own line, one-way, a
//! hosts entry that follows a restarted linked container (seed 003) and an environment that each
//! `exec` takes anew, as `docker exec` does; on a user-defined network only a name the linking
//! container resolves.
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
fn the_hosts_entry_and_each_execs_environment_follow_a_restarted_linked_container() {
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
    let err = host.fails(&["exec", "web", "--", "env"]);
    assert!(
        err.contains("Cannot link to a non running container: /db AS /web/db"),
        "docker exec refuses while a linked container is down: {err}"
    );
    host.container("filler", &[]);
    host.ok(&["container", "start", "db"]);
    let after = host.ip("db", "bridge");
    assert_ne!(before, after);
    let hosts = host.exec("web", &["cat", "/etc/hosts"]).stdout;
    assert!(
        hosts.contains(&format!("{after}\tdb")) && !hosts.contains(&format!("{before}\tdb")),
        "{hosts}"
    );
    let env_after = env_of(&host, "web");
    assert!(
        env_after.contains(&format!("DB_PORT_5432_TCP_ADDR={after}")),
        "each exec's environment is taken anew, as docker exec's: {env_after:?}"
    );
}

#[test]
fn the_hosts_file_ends_with_the_containers_own_line_as_dockers() {
    let Some(host) = Host::start() else { return };
    host.container("db", &[]);
    host.container("web", &["--link", "db:webdb"]);
    let id = host.inspect("web")["id"].as_str().unwrap()[..12].to_string();
    let hosts = host.exec("web", &["cat", "/etc/hosts"]).stdout;
    let lines: Vec<&str> = hosts.lines().collect();
    assert_eq!(lines[0], "127.0.0.1\tlocalhost", "{hosts}");
    let own = format!("{}\t{id}", host.ip("web", "bridge"));
    assert_eq!(
        lines.last(),
        Some(&own.as_str()),
        "`tail -1` is IP ID: {hosts}"
    );
    assert!(
        lines[lines.len() - 2].contains("\twebdb "),
        "the link line comes before: {hosts}"
    );
}

#[test]
fn a_link_on_a_user_defined_network_is_a_name_for_the_linking_container_alone() {
    let Some(host) = Host::start() else { return };
    let _upstream = host.upstream_dns();
    host.ok(&["network", "create", "app"]);
    host.container("db", &["--network", "app", "--expose", "5432"]);
    host.container("web", &["--network", "app", "--link", "db:webdb"]);
    host.container("other", &["--network", "app"]);
    let db = host.ip("db", "app");
    let dig = |c: &str, name: &str| {
        let out = host.exec(c, &["dig", "+short", "+time=2", "+tries=1", name]);
        out.stdout.trim().to_string()
    };
    assert_eq!(dig("web", "webdb"), db, "the alias resolves for web");
    assert_eq!(dig("other", "webdb"), "", "and for no one else");
    assert!(env_of(&host, "web").is_empty(), "no link environment");
    let hosts = host.exec("web", &["cat", "/etc/hosts"]).stdout;
    assert!(!hosts.contains("webdb") && !hosts.contains(&db), "{hosts}");
    assert!(host.reaches("web", "webdb"));
}

#[test]
fn linking_to_a_missing_or_stopped_container_is_refused() {
    let Some(host) = Host::start() else { return };
    let err = host.fails(&["container", "create", "--link", "nosuch:alias", "xx"]);
    assert!(err.contains("No such container"), "{err}");
    host.ok(&["container", "create", "sleeping"]);
    host.ok(&["container", "create", "--link", "sleeping", "yy"]);
    let err = host.fails(&["container", "start", "yy"]);
    assert!(err.contains("non running container"), "{err}");
    assert_eq!(host.inspect("yy")["status"], "created");
}
