//! Real podman (Debian's 4.3, CNI backend) beside a test [`Host`], with everything it keeps
//! in the test's own dirs: storage (vfs), run root, OCI runtime state, its containers.conf and
//! the CNI config and plugin dirs that `netd cni install` fills. Each podman command runs in the
//! host's network namespace and in a mount namespace of its own, where a test dir is bound over
//! `/var/lib` (podman's blob cache and libcni's result cache live there and have no setting):
//! `/run/netns` stays shared with the machine, so the namespaces podman makes there are the
//! ones the daemon opens. Containers get a cgroup parent of the test's, removed on drop with
//! whatever is left in it.
use std::path::PathBuf;

use crate::{
    run,
    runtime::{busybox_tarball, CgroupParent},
    Host, Out,
};

/// The image every podman test runs: busybox-static with a web root whose CGI script answers
/// with the client's address.
pub const IMAGE: &str = "localhost/netd-busybox:latest";

/// A podman installation private to one test.
pub struct Podman {
    dir: PathBuf,
    host_ns: String,
    cgroup_parent: CgroupParent,
}

impl Podman {
    /// podman beside `host`, with the netd plugin installed for `networks` and the image
    /// imported.
    pub fn new(host: &Host, networks: &[&str]) -> Podman {
        assert!(
            std::process::Command::new("podman")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "podman is not installed: run `cargo xtask prereqs`"
        );
        let dir = host.dir.join("podman");
        let podman = Podman {
            host_ns: host.host_ns(),
            cgroup_parent: CgroupParent(format!("netd-test-{}-podman", host.name)),
            dir,
        };
        for sub in ["bin", "net.d", "root", "runroot", "tmp", "var-lib", "runc"] {
            std::fs::create_dir_all(podman.dir.join(sub)).expect("podman dir");
        }
        podman.write_config();
        for network in networks {
            podman.install(host, network);
        }
        podman.import_image();
        podman
    }

    /// `netd cni install` of the plugin and `network`'s conflist into this podman's dirs.
    pub fn install(&self, host: &Host, network: &str) {
        let (bin, conf) = (self.path("bin"), self.path("net.d"));
        host.ok(&[
            "cni",
            "install",
            "--network",
            network,
            "--bin-dir",
            &bin,
            "--conf-dir",
            &conf,
        ]);
    }

    fn path(&self, sub: &str) -> String {
        self.dir.join(sub).display().to_string()
    }

    fn write_config(&self) {
        // No CAP_SYS_RESOURCE here: the limits a container asks for must stay under ours.
        let containers = format!(
            "[containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [engine]\n\
             runtime = \"netd-test-runc\"\n\
             runtime_supports_json = [\"netd-test-runc\"]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             events_logfile_path = \"{}\"\n\
             tmp_dir = \"{}\"\n\
             [network]\n\
             network_backend = \"cni\"\n\
             cni_plugin_dirs = [\"{}\"]\n\
             network_config_dir = \"{}\"\n\
             [engine.runtimes]\n\
             netd-test-runc = [\"{}\"]\n",
            self.path("events.log"),
            self.path("tmp"),
            self.path("bin"),
            self.path("net.d"),
            self.path("runc.sh"),
        );
        // runc keeps its state under /run/runc unless told otherwise, also when conmon runs it.
        let runc = format!(
            "#!/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin exec runc --root {} \"$@\"\n",
            self.path("runc")
        );
        std::fs::write(self.dir.join("runc.sh"), runc).expect("runc.sh");
        run("chmod", &["+x", &self.path("runc.sh")]);
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            self.path("root"),
            self.path("runroot"),
        );
        std::fs::write(self.dir.join("containers.conf"), containers).expect("containers.conf");
        std::fs::write(self.dir.join("storage.conf"), storage).expect("storage.conf");
    }

    /// `podman import` of a rootfs tarball made from the machine's busybox-static.
    fn import_image(&self) {
        let tar = busybox_tarball(&self.dir, "hello from podman");
        self.ok(&["import", &tar, IMAGE]);
    }

    /// Runs `podman ARGS` in the host's namespaces; `run` gets the test's cgroup parent.
    pub fn podman(&self, args: &[&str]) -> Out {
        let mut all: Vec<&str> = Vec::with_capacity(args.len() + 2);
        let parent = self.cgroup_parent.path();
        match args.split_first() {
            Some((&"run", rest)) => {
                all.extend(["run", "--cgroup-parent", &parent]);
                all.extend(rest);
            }
            _ => all.extend(args),
        }
        let net = format!("--net=/run/netns/{}", self.host_ns);
        let script = "mount --bind \"$0\" /var/lib && exec podman \"$@\"";
        let mut cmd = std::process::Command::new("nsenter");
        cmd.args([&net, "unshare", "--mount", "--propagation", "unchanged"])
            .args(["sh", "-c", script, &self.path("var-lib")])
            .args(&all)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .stdin(std::process::Stdio::null());
        cmd.output().expect("run podman").into()
    }

    /// Runs `podman ARGS` and insists that it succeeds; returns its output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.ok(),
            "podman {args:?} failed ({}): {}{}",
            out.status,
            out.stderr,
            out.stdout
        );
        out.stdout
    }

    /// Runs `sh -c SCRIPT` in podman container `name`.
    pub fn exec(&self, name: &str, script: &str) -> Out {
        self.podman(&["exec", name, "sh", "-c", script])
    }

    /// The pid of container `name`'s first process.
    pub fn pid(&self, name: &str) -> String {
        self.ok(&["inspect", name, "--format", "{{.State.Pid}}"])
            .trim()
            .to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let out = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        if !out.ok() {
            eprintln!("podman rm --all: {}", out.stderr);
        }
        self.cgroup_parent.remove();
    }
}
