//! Legacy links (`--link NAME[:ALIAS]`): checked at create, the environment taken at start and
//! at each exec, and hosts entries that follow the linked container wherever it goes.
use super::{
    error::{conflict, invalid, OpError, OpResult},
    Daemon,
};
use crate::{
    links::{self, Linked},
    state::{Container, Status},
};

impl Daemon {
    /// Parses `--link` specs; the linked containers must exist. Returns them as `NAME:ALIAS`.
    pub(super) fn plan_links(&self, this: &str, specs: &[String]) -> OpResult<Vec<String>> {
        specs
            .iter()
            .map(|spec| {
                let link = links::parse_link(spec).map_err(|e| invalid(e.to_string()))?;
                let target = self.state.find_container(&link.name).ok_or_else(|| {
                    OpError::NotFound(format!(
                        "cannot link to {0}: {1}: {0}",
                        link.name,
                        crate::api::NO_SUCH_CONTAINER
                    ))
                })?;
                if target.name == this {
                    return Err(invalid(format!("container {this} cannot link to itself")));
                }
                Ok(format!("{}:{}", target.name, link.alias))
            })
            .collect()
    }

    /// The linked container of a `NAME:ALIAS` link, running with an address, and the alias.
    fn linked(&self, link: &str) -> Option<(&Container, String)> {
        let (name, alias) = link.split_once(':')?;
        let target = self.state.containers.get(name)?;
        (target.status == Status::Running && !target.endpoints.is_empty())
            .then(|| (target, alias.to_string()))
    }

    /// The link environment of `c`, from where its linked containers are now: taken at start,
    /// and again for each `exec`, as Docker 20.10 does for `docker exec` (refused, as there,
    /// while a linked container is not running).
    pub(super) fn link_env(&self, c: &Container) -> OpResult<Vec<String>> {
        let mut env = vec![];
        for link in &c.links {
            let (target, alias) = self.linked(link).ok_or_else(|| {
                let (name, alias) = link.split_once(':').unwrap_or((link, link));
                conflict(format!(
                    "Cannot link to a non running container: /{name} AS /{}/{alias}",
                    c.name
                ))
            })?;
            let exposed: Vec<(u16, &str)> = target
                .expose
                .iter()
                .map(|e| (e.port, e.proto.as_str()))
                .collect();
            let linked = Linked {
                name: &target.name,
                id: &target.id,
                ip: target.endpoints[0].ip,
                exposed: &exposed,
                env: &target.env,
            };
            env.extend(links::link_env(&c.name, &alias, &linked));
        }
        Ok(env)
    }

    /// The hosts lines of `c`'s links whose container is running now.
    pub(super) fn link_hosts(&self, c: &Container) -> Vec<String> {
        c.links
            .iter()
            .filter_map(|link| {
                let (target, alias) = self.linked(link)?;
                let exposed: Vec<(u16, &str)> = vec![];
                let linked = Linked {
                    name: &target.name,
                    id: &target.id,
                    ip: target.endpoints[0].ip,
                    exposed: &exposed,
                    env: &[],
                };
                Some(links::hosts_line_with_hostname(
                    &alias,
                    &target.hostname,
                    &linked,
                ))
            })
            .collect()
    }

    /// Rewrites the hosts files of running containers with links, so that entries follow linked
    /// containers that started, stopped or moved. Files that would not change are left alone.
    pub fn refresh_link_hosts(&self) {
        let linking = self
            .state
            .containers
            .values()
            .filter(|c| c.status == Status::Running && !c.links.is_empty());
        for c in linking {
            if let Err(e) = self.write_files(&c.name) {
                tracing::warn!(container = %c.name, %e, "cannot update hosts file");
            }
        }
    }
}
