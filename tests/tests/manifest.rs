//! The Kubernetes manifest (`deploy/kubernetes/netd.yaml`) cannot run here (no kubelet), but
//! what it asks of netd can be checked: every `netd` command in it, with the ConfigMap's values
//! put in, is one this netd's command line accepts, and the daemon gets the host paths that
//! must outlive it.
use clap::Parser as _;
use netd::cli::Cli;
use serde_yaml::Value;

const MANIFEST: &str = include_str!("../../deploy/kubernetes/netd.yaml");

fn documents() -> Vec<Value> {
    serde_yaml::Deserializer::from_str(MANIFEST)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .collect()
}

fn of_kind(kind: &str) -> Value {
    documents()
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn container(name: &str) -> Value {
    let set = of_kind("DaemonSet");
    let containers = set["spec"]["template"]["spec"]["containers"].clone();
    containers
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// `$VAR` and `"$VAR"` replaced by the ConfigMap value the container's env maps them to.
fn with_env(script: &str, container: &Value) -> String {
    let config = of_kind("ConfigMap");
    let mut script = script.to_string();
    for var in container["env"].as_sequence().into_iter().flatten() {
        let name = var["name"].as_str().expect("env name");
        let key = &var["valueFrom"]["configMapKeyRef"]["key"];
        let value = config["data"][key].as_str().unwrap_or("192.0.2.1");
        script = script.replace(&format!("${name}"), value);
    }
    script
}

fn parses(args: &[String]) {
    if let Err(e) = Cli::try_parse_from(args) {
        panic!("{args:?} is not a netd command line: {e}");
    }
}

#[test]
fn the_daemon_container_runs_a_netd_daemon_command_with_its_dirs_on_host_paths() {
    let daemon = container("daemon");
    let mut args = strings(&daemon["command"]);
    args.extend(strings(&daemon["args"]));
    assert_eq!(args[..2], ["/usr/local/bin/netd", "daemon"]);
    parses(&args);
    let mounts: Vec<(String, String)> = daemon["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|m| {
            let path = m["mountPath"].as_str().unwrap_or("").to_string();
            let propagation = m["mountPropagation"].as_str().unwrap_or("None").to_string();
            (path, propagation)
        })
        .collect();
    // Pins and container namespaces are mounted from inside: they must reach the host.
    for (path, propagation) in [
        ("/sys/fs/bpf", "Bidirectional"),
        ("/run/netd", "Bidirectional"),
        ("/run/netns", "HostToContainer"),
    ] {
        assert!(
            mounts.contains(&(path.into(), propagation.into())),
            "{path} with {propagation} propagation: {mounts:?}"
        );
    }
    let spec = &of_kind("DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
}

#[test]
fn every_netd_command_of_the_install_container_is_a_valid_command_line() {
    let install = container("install-cni");
    let script = strings(&install["args"]).join("\n");
    let script = with_env(&script, &install);
    let mut seen = 0;
    for line in script.lines() {
        for command in line.split("||").map(str::trim) {
            let Some(words) = shlex::split(command) else {
                panic!("cannot split {command:?}");
            };
            let words: Vec<String> = words
                .into_iter()
                .skip_while(|w| w != "netd")
                .take_while(|w| !w.starts_with('>') && w != ";")
                .collect();
            if !words.is_empty() {
                parses(&words);
                seen += 1;
            }
        }
    }
    assert!(seen >= 4, "only {seen} netd commands in {script}");
}
