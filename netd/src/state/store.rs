//! The state on disk: one JSON file per network (`<state-dir>/networks/NAME.json`) and per
//! container (`<state-dir>/containers/NAME.json`).
//!
//! A commit rewrites only the objects that changed since the last one, each atomically (a
//! temporary file renamed over the old one), so what a request costs does not grow with the
//! number of containers or published ports. A commit is all or nothing as far as the filesystem
//! lets it be: when one write fails, the objects already written are put back.
//!
//! Files are not fsynced. A daemon crash loses nothing (a renamed file is in the page cache); a
//! power loss may take back the last few seconds (the filesystem's commit interval, 5 s on ext4)
//! and takes with it the namespaces, veths and pinned maps the files describe, which the next
//! start reconciles in any case.
use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

use super::State;

/// The single file of netd versions before per-object files; read once and converted.
const LEGACY_FILE: &str = "state.json";
const NETWORKS: &str = "networks";
const CONTAINERS: &str = "containers";

/// Errors reading or writing the state files.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is corrupt: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// One object of the state, by kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Container(String),
    Network(String),
}

/// The objects that differ between `old` and `new` (added, changed or removed): containers
/// first, then networks, so a crash between two writes never leaves a container on a network
/// whose file says nothing of it.
pub fn changed(old: &State, new: &State) -> Vec<Key> {
    fn diff<T: PartialEq>(
        old: &BTreeMap<String, T>,
        new: &BTreeMap<String, T>,
        key: fn(String) -> Key,
    ) -> Vec<Key> {
        let added_or_changed = new
            .iter()
            .filter(|(name, v)| old.get(*name) != Some(v))
            .map(|(name, _)| name);
        let removed = old.keys().filter(|name| !new.contains_key(*name));
        added_or_changed.chain(removed).cloned().map(key).collect()
    }
    let mut keys = diff(&old.containers, &new.containers, Key::Container);
    keys.extend(diff(&old.networks, &new.networks, Key::Network));
    keys
}

/// The state files under one directory, and the state they hold.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    saved: State,
}

impl Store {
    /// Opens the store under `dir` (created if missing) and reads the state it holds; a state
    /// written by an older netd as one `state.json` is converted.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        for sub in [NETWORKS, CONTAINERS] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|source| StateError::Write { path, source })?;
        }
        let mut store = Store {
            dir: dir.to_path_buf(),
            saved: State::default(),
        };
        for (name, network) in read_all(&dir.join(NETWORKS))? {
            store.saved.networks.insert(name, network);
        }
        for (name, container) in read_all(&dir.join(CONTAINERS))? {
            store.saved.containers.insert(name, container);
        }
        store.convert_legacy()?;
        Ok(store)
    }

    /// The state as the files hold it: what the last successful commit wrote.
    pub fn saved(&self) -> &State {
        &self.saved
    }

    /// Makes the files hold `state`, writing only what changed.
    pub fn commit(&mut self, state: &State) -> Result<(), StateError> {
        let keys = changed(&self.saved, state);
        for (i, key) in keys.iter().enumerate() {
            if let Err(e) = self.write(key, state) {
                let saved = std::mem::take(&mut self.saved);
                for done in &keys[..i] {
                    if let Err(undo) = self.write(done, &saved) {
                        tracing::error!(%undo, "putting back the state files");
                    }
                }
                self.saved = saved;
                return Err(e);
            }
        }
        for key in keys {
            record(&mut self.saved, &key, state);
        }
        Ok(())
    }

    /// Writes object `key` as `state` has it, or removes its file if `state` has no such object.
    fn write(&self, key: &Key, state: &State) -> Result<(), StateError> {
        match key {
            Key::Container(name) => self.put(CONTAINERS, name, state.containers.get(name)),
            Key::Network(name) => self.put(NETWORKS, name, state.networks.get(name)),
        }
    }

    fn put<T: Serialize>(
        &self,
        kind: &str,
        name: &str,
        value: Option<&T>,
    ) -> Result<(), StateError> {
        let path = self.dir.join(kind).join(format!("{name}.json"));
        let err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let Some(value) = value else {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err(e)),
                _ => Ok(()),
            };
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(value).expect("state serialises");
        fs::write(&tmp, text).map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)
    }

    /// Reads `state.json` of an older netd into per-object files, then removes it.
    fn convert_legacy(&mut self) -> Result<(), StateError> {
        let path = self.dir.join(LEGACY_FILE);
        let Some(legacy) = read::<State>(&path)? else {
            return Ok(());
        };
        let mut merged = self.saved.clone();
        merged.networks.extend(legacy.networks);
        merged.containers.extend(legacy.containers);
        self.commit(&merged)?;
        fs::remove_file(&path).map_err(|source| StateError::Write { path, source })?;
        tracing::info!("converted {LEGACY_FILE} into per-object state files");
        Ok(())
    }
}

/// Makes `saved`'s object `key` what `state` has (or removes it).
fn record(saved: &mut State, key: &Key, state: &State) {
    fn copy<T: Clone>(to: &mut BTreeMap<String, T>, from: &BTreeMap<String, T>, name: &str) {
        match from.get(name) {
            Some(v) => {
                to.insert(name.to_string(), v.clone());
            }
            None => {
                to.remove(name);
            }
        }
    }
    match key {
        Key::Container(name) => copy(&mut saved.containers, &state.containers, name),
        Key::Network(name) => copy(&mut saved.networks, &state.networks, name),
    }
}

/// Every `NAME.json` under `dir`, by name; temporary files a crash left are removed.
fn read_all<T: DeserializeOwned>(dir: &Path) -> Result<Vec<(String, T)>, StateError> {
    let read_err = |source| StateError::Read {
        path: dir.into(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        if file.ends_with(".json.tmp") {
            fs::remove_file(&path).ok();
        } else if let Some(name) = file.strip_suffix(".json") {
            if let Some(value) = read(&path)? {
                out.push((name.to_string(), value));
            }
        }
    }
    Ok(out)
}

/// The JSON value in `path`; `None` if there is no such file.
fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.into(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| StateError::Parse {
            path: path.into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{network, running};

    /// A fresh directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("netd-store-{tag}-{}", std::process::id()));
            fs::remove_dir_all(&dir).ok();
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            fs::remove_dir_all(&self.0).ok();
        }
    }

    fn state_with(networks: &[&str], containers: &[&str]) -> State {
        let mut state = State::default();
        for (i, n) in networks.iter().enumerate() {
            let subnet = format!("10.{i}.0.0/24");
            state
                .networks
                .insert(n.to_string(), network(n, &subnet, i as u32 + 1));
        }
        for c in containers {
            state.containers.insert(c.to_string(), running(c, &[]));
        }
        state
    }

    fn files(dir: &Path, kind: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join(kind))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn only_changed_objects_are_listed_containers_first() {
        let old = state_with(&["a", "b"], &["x", "y"]);
        let mut new = state_with(&["a", "c"], &["x", "z"]);
        new.containers.get_mut("x").unwrap().hostname = "other".into();
        assert_eq!(
            changed(&old, &new),
            vec![
                Key::Container("x".into()),
                Key::Container("z".into()),
                Key::Container("y".into()),
                Key::Network("c".into()),
                Key::Network("b".into()),
            ]
        );
        assert!(changed(&new, &new).is_empty());
    }

    #[test]
    fn commits_write_and_remove_one_file_per_object_and_read_back() {
        let tmp = TempDir::new("commit");
        let mut store = Store::open(&tmp.0).unwrap();
        assert_eq!(store.saved(), &State::default());
        let first = state_with(&["a", "b"], &["x"]);
        store.commit(&first).unwrap();
        assert_eq!(files(&tmp.0, NETWORKS), ["a.json", "b.json"]);
        assert_eq!(files(&tmp.0, CONTAINERS), ["x.json"]);
        let second = state_with(&["a"], &["x", "y"]);
        store.commit(&second).unwrap();
        assert_eq!(files(&tmp.0, NETWORKS), ["a.json"]);
        assert_eq!(files(&tmp.0, CONTAINERS), ["x.json", "y.json"]);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &second);
    }

    #[test]
    fn a_failed_write_puts_back_what_the_commit_had_written() {
        let tmp = TempDir::new("undo");
        let mut store = Store::open(&tmp.0).unwrap();
        let before = state_with(&["a"], &["x"]);
        store.commit(&before).unwrap();
        let mut after = state_with(&["a"], &["x"]);
        after.containers.get_mut("x").unwrap().hostname = "changed".into();
        after.networks.get_mut("a").unwrap().internal = true;
        // The network's file cannot be replaced: its path is now a non-empty directory.
        let blocker = tmp.0.join(NETWORKS).join("a.json");
        fs::remove_file(&blocker).unwrap();
        fs::create_dir_all(blocker.join("in-the-way")).unwrap();
        assert!(store.commit(&after).is_err());
        assert_eq!(store.saved(), &before);
        fs::remove_dir_all(&blocker).unwrap();
        let reread = Store::open(&tmp.0).unwrap();
        assert_eq!(reread.saved().containers, before.containers);
    }

    #[test]
    fn an_old_single_state_file_is_converted() {
        let tmp = TempDir::new("legacy");
        let old = state_with(&["a"], &["x"]);
        fs::write(tmp.0.join(LEGACY_FILE), serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &old);
        assert!(!tmp.0.join(LEGACY_FILE).exists());
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &old);
    }

    #[test]
    fn a_corrupt_file_is_named_in_the_error() {
        let tmp = TempDir::new("corrupt");
        Store::open(&tmp.0).unwrap();
        fs::write(tmp.0.join(CONTAINERS).join("x.json"), "{").unwrap();
        let err = Store::open(&tmp.0).unwrap_err().to_string();
        assert!(err.contains("x.json is corrupt"), "{err}");
    }

    #[test]
    fn leftover_temporary_files_are_removed() {
        let tmp = TempDir::new("tmpfiles");
        Store::open(&tmp.0).unwrap();
        let stray = tmp.0.join(CONTAINERS).join("x.json.tmp");
        fs::write(&stray, "{").unwrap();
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &State::default());
        assert!(!stray.exists());
    }
}
