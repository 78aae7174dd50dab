//! The little of Docker's Engine API netd reads (HTTP/1 on dockerd's Unix socket, hyper):
//! the event stream, the lists of networks and running containers and one container's networks.
//! The plugin API does not say what a network is called, which container an endpoint is for,
//! nor its name or aliases; these do.
use std::path::{Path, PathBuf};

use http_body_util::{BodyExt as _, Empty};
use hyper::{
    body::{Bytes, Incoming},
    Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::collections::BTreeMap;
use thiserror::Error;
use tokio::net::UnixStream;

/// The API version netd speaks (dockerd 20.10's).
const VERSION: &str = "v1.41";

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot reach dockerd at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("dockerd's API: {0}")]
    Http(#[from] hyper::Error),
    #[error("dockerd's API answered {status} to {path}")]
    Status { path: String, status: StatusCode },
    #[error("dockerd's API sent what netd cannot read: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("--docker-host {0}: netd talks to dockerd on a unix:// socket")]
    Url(String),
}

/// `unix:///PATH` as PATH.
pub fn socket_of(url: &str) -> Result<PathBuf, EngineError> {
    url.strip_prefix("unix://")
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .ok_or_else(|| EngineError::Url(url.into()))
}

/// One container as `GET /containers/ID/json` shows it: the part netd reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    pub id: String,
    /// `/NAME`.
    pub name: String,
    pub network_settings: NetworkSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    #[serde(default)]
    pub sandbox_key: String,
    #[serde(default)]
    pub networks: BTreeMap<String, EndpointSettings>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EndpointSettings {
    #[serde(rename = "NetworkID", default)]
    pub network_id: String,
    #[serde(rename = "Aliases", default)]
    pub aliases: Option<Vec<String>>,
    /// `--link NAME[:ALIAS]` on this network, as `NAME:ALIAS`.
    #[serde(rename = "Links", default)]
    pub links: Option<Vec<String>>,
}

/// An entry of `GET /containers/json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    #[serde(rename = "Id")]
    pub id: String,
}

/// An entry of `GET /networks`.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedNetwork {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
}

/// An event of `GET /events`.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    #[serde(rename = "Type", default)]
    pub kind: String,
    #[serde(rename = "Action", default)]
    pub action: String,
    #[serde(rename = "Actor", default)]
    pub actor: Actor,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

async fn get(socket: &Path, path: &str) -> Result<Response<Incoming>, EngineError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| EngineError::Connect {
            path: socket.into(),
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%e, "dockerd API connection ended");
        }
    });
    let request = Request::get(format!("/{VERSION}{path}"))
        .header("host", "docker")
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        return Err(EngineError::Status {
            path: path.into(),
            status: response.status(),
        });
    }
    Ok(response)
}

async fn get_json<T: serde::de::DeserializeOwned>(
    socket: &Path,
    path: &str,
) -> Result<T, EngineError> {
    let body = get(socket, path).await?.into_body().collect().await?;
    Ok(serde_json::from_slice(&body.to_bytes())?)
}

/// Every container, running or not (one being started when netd connects is not running yet
/// but may have joined already).
pub async fn containers(socket: &Path) -> Result<Vec<Listed>, EngineError> {
    get_json(socket, "/containers/json?all=1").await
}

pub async fn networks(socket: &Path) -> Result<Vec<ListedNetwork>, EngineError> {
    get_json(socket, "/networks").await
}

pub async fn inspect(socket: &Path, id: &str) -> Result<Container, EngineError> {
    get_json(socket, &format!("/containers/{id}/json")).await
}

/// The stream of network events from now on.
pub struct Events {
    body: Incoming,
    buffer: Vec<u8>,
}

pub async fn network_events(socket: &Path) -> Result<Events, EngineError> {
    // filters={"type":["network"]}
    let path = "/events?filters=%7B%22type%22%3A%5B%22network%22%5D%7D";
    let body = get(socket, path).await?.into_body();
    Ok(Events {
        body,
        buffer: vec![],
    })
}

impl Events {
    /// The next event; `None` when dockerd ends the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, EngineError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(serde_json::from_slice(&line)?));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_sockets_are_spoken_to() {
        assert_eq!(
            socket_of("unix:///var/run/docker.sock").unwrap(),
            PathBuf::from("/var/run/docker.sock")
        );
        assert!(socket_of("tcp://127.0.0.1:2375").is_err());
        assert!(socket_of("unix://relative").is_err());
    }

    #[test]
    fn a_containers_networks_and_aliases_are_read_from_its_inspect() {
        let json = r#"{"Id":"41d8","Name":"/web","NetworkSettings":{
            "SandboxKey":"/run/docker/netns/2709f717ce78","Networks":{"front":{
            "NetworkID":"9305","Aliases":["www","41d836499820"],"Links":["db:webdb"],
            "IPAddress":"10.11.0.2"}}}}"#;
        let c: Container = serde_json::from_str(json).unwrap();
        assert_eq!(c.name, "/web");
        let front = &c.network_settings.networks["front"];
        assert_eq!(front.network_id, "9305");
        assert_eq!(
            front.aliases.as_deref(),
            Some(&["www".to_string(), "41d836499820".into()][..])
        );
        assert_eq!(front.links.as_deref(), Some(&["db:webdb".to_string()][..]));
    }
}
