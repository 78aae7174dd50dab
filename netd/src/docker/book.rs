//! Docker's endpoints between `CreateEndpoint` and `DeleteEndpoint`: the address and MAC Docker
//! gave each, and the sandbox it joined. `Join` does not repeat the address, so the book is
//! kept on disk (`STATE_DIR/docker-endpoints.json`, written whole and renamed into place) and a
//! daemon killed between the two loses nothing.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::PluginError;

const FILE: &str = "docker-endpoints.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    /// From Docker's IPAM, with the network's prefix length.
    pub address: Ipv4Net,
    /// Its IPv6 address, on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<ipnet::Ipv6Net>,
    pub mac: String,
    /// The netd container of the sandbox it joined, while joined.
    #[serde(default)]
    pub sandbox: Option<String>,
}

pub struct Book {
    path: PathBuf,
    endpoints: BTreeMap<String, Endpoint>,
}

impl Book {
    /// The book in `state_dir`, empty if there is none yet.
    pub fn open(state_dir: &Path) -> Result<Book, PluginError> {
        let path = state_dir.join(FILE);
        let endpoints = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| PluginError::Book(format!("cannot read {}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(PluginError::Book(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        Ok(Book { path, endpoints })
    }

    pub fn get(&self, id: &str) -> Result<&Endpoint, PluginError> {
        self.endpoints
            .get(id)
            .ok_or_else(|| PluginError::NotFound(format!("endpoint {id} not found")))
    }

    /// Records (or replaces) endpoint `id`, on disk before this returns.
    pub fn put(&mut self, id: &str, endpoint: Endpoint) -> Result<(), PluginError> {
        let old = self.endpoints.insert(id.to_string(), endpoint);
        self.save().inspect_err(|_| match old {
            Some(old) => {
                self.endpoints.insert(id.to_string(), old);
            }
            None => {
                self.endpoints.remove(id);
            }
        })
    }

    /// Forgets endpoint `id` (nothing if it is unknown).
    pub fn remove(&mut self, id: &str) -> Result<(), PluginError> {
        if self.endpoints.remove(id).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<(), PluginError> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.endpoints).expect("serializable");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| PluginError::Book(format!("cannot write {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_outlive_the_book_that_recorded_them() {
        let dir = std::env::temp_dir().join(format!("netd-book-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ep = Endpoint {
            network_id: "n".into(),
            address: "10.11.0.2/24".parse().unwrap(),
            address6: Some("fd00:11::2/64".parse().unwrap()),
            mac: "02:42:0a:0b:00:02".into(),
            sandbox: None,
        };
        let mut book = Book::open(&dir).unwrap();
        book.put("e1", ep.clone()).unwrap();
        book.put("e2", ep.clone()).unwrap();
        book.remove("e2").unwrap();
        let again = Book::open(&dir).unwrap();
        assert_eq!(again.get("e1").unwrap(), &ep);
        assert!(matches!(again.get("e2"), Err(PluginError::NotFound(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
