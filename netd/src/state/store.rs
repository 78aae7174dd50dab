//! The state on disk: a snapshot of one JSON file per network (`<state-dir>/networks/NAME.json`)
//! and per container (`<state-dir>/containers/NAME.json`), and a journal (`journal.jsonl`) of the
//! commits since the snapshot.
//!
//! A commit appends one line holding the objects it changed (a removed object is `null`), in one
//! `write`, so what a request costs does not grow with the number of containers or published
//! ports, and it never replaces a file (ext4 flushes a file's data when it replaces another one by
//! rename, which costs milliseconds). When the journal grows past [`COMPACT_AT`], and at every
//! open, the changed objects are written to their snapshot files (temporary file, rename) and the
//! journal is emptied. Replaying whole objects is idempotent, so a crash during compaction loses
//! nothing.
//!
//! Nothing is fsynced. A daemon crash loses nothing (the data is in the page cache); a power loss
//! may take back the last seconds (the filesystem's commit interval, 5 s on ext4) and with them
//! the namespaces, veths and pinned maps the state describes, which the next start reconciles in
//! any case. A journal line cut short by a crash is the last one, and is ignored.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use thiserror::Error;

use super::{Container, Network, State};

/// The single file of netd versions before per-object files; read once and converted.
const LEGACY_FILE: &str = "state.json";
const JOURNAL: &str = "journal.jsonl";
/// Journal size that triggers a compaction.
const COMPACT_AT: u64 = 1 << 20;
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
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

/// One journal line: the objects a commit changed, `None` for removed ones.
#[derive(Serialize, Deserialize)]
struct Entry<C, N> {
    containers: BTreeMap<String, Option<C>>,
    networks: BTreeMap<String, Option<N>>,
}

/// The line recording objects `keys` as `state` has them.
fn entry_line(keys: &[Key], state: &State) -> Vec<u8> {
    let mut entry = Entry::<&Container, &Network> {
        containers: BTreeMap::new(),
        networks: BTreeMap::new(),
    };
    for key in keys {
        match key {
            Key::Container(name) => {
                entry
                    .containers
                    .insert(name.clone(), state.containers.get(name));
            }
            Key::Network(name) => {
                entry
                    .networks
                    .insert(name.clone(), state.networks.get(name));
            }
        }
    }
    let mut line = serde_json::to_vec(&entry).expect("state serialises");
    line.push(b'\n');
    line
}

fn replay(state: &mut State, entry: Entry<Container, Network>) {
    fn apply<T>(to: &mut BTreeMap<String, T>, from: BTreeMap<String, Option<T>>) {
        for (name, value) in from {
            match value {
                Some(v) => to.insert(name, v),
                None => to.remove(&name),
            };
        }
    }
    apply(&mut state.containers, entry.containers);
    apply(&mut state.networks, entry.networks);
}

/// The state files under one directory, and the state they hold.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    saved: State,
    journal: fs::File,
    journal_len: u64,
    /// Objects the journal holds newer versions of than their snapshot files.
    dirty: BTreeSet<Key>,
}

impl Store {
    /// Opens the store under `dir` (created if missing) and reads the state it holds (snapshot,
    /// then journal, then compacts); a state written by an older netd as one `state.json` is
    /// converted.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        for sub in [NETWORKS, CONTAINERS] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|source| StateError::Write { path, source })?;
        }
        let mut snapshot = State::default();
        for (name, network) in read_all(&dir.join(NETWORKS))? {
            snapshot.networks.insert(name, network);
        }
        for (name, container) in read_all(&dir.join(CONTAINERS))? {
            snapshot.containers.insert(name, container);
        }
        let journal_path = dir.join(JOURNAL);
        let mut saved = snapshot.clone();
        let (entries, bad) = read_journal(&journal_path)?;
        for entry in entries {
            replay(&mut saved, entry);
        }
        if !bad.is_empty() {
            let kept = keep_bad_lines(&journal_path, &bad)?;
            tracing::error!(
                "{}: {} line(s) did not parse and were skipped; kept in {}",
                journal_path.display(),
                bad.len(),
                kept.display()
            );
        }
        let journal = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .map_err(|source| StateError::Write {
                path: journal_path.clone(),
                source,
            })?;
        let journal_len = journal.metadata().map(|m| m.len()).unwrap_or(0);
        let mut store = Store {
            dir: dir.to_path_buf(),
            dirty: changed(&snapshot, &saved).into_iter().collect(),
            saved,
            journal,
            journal_len,
        };
        store.convert_legacy()?;
        if let Err(e) = store.compact() {
            // The journal still holds everything (it is emptied only once every file is
            // written): a full disk puts compaction off, it does not keep the daemon down.
            tracing::warn!(%e, "cannot compact the state journal; it is kept as it is");
        }
        Ok(store)
    }

    /// The state as the files hold it: what the last successful commit wrote.
    pub fn saved(&self) -> &State {
        &self.saved
    }

    /// Records `state` on disk: one journal line with the objects that changed.
    pub fn commit(&mut self, state: &State) -> Result<(), StateError> {
        let keys = changed(&self.saved, state);
        self.append(state, keys)
    }

    /// Records objects `keys` as `state` has them, for a caller that knows nothing else changed:
    /// the cost no longer grows with the number of objects (comparing a thousand containers with
    /// their saved copies takes most of a millisecond). Debug builds check the claim.
    pub fn commit_only(&mut self, state: &State, keys: &[Key]) -> Result<(), StateError> {
        debug_assert!(
            changed(&self.saved, state).iter().all(|k| keys.contains(k)),
            "objects changed outside {keys:?}"
        );
        self.append(state, keys.to_vec())
    }

    /// Appends the journal line for `keys` and takes them into `saved`.
    fn append(&mut self, state: &State, keys: Vec<Key>) -> Result<(), StateError> {
        if keys.is_empty() {
            return Ok(());
        }
        let line = entry_line(&keys, state);
        if let Err(source) = self.journal.write_all(&line) {
            // Cut off whatever part of the line got written, so the next one starts clean.
            if let Err(e) = self.journal.set_len(self.journal_len) {
                tracing::error!(%e, "cannot cut a partial journal line");
            }
            return Err(StateError::Write {
                path: self.dir.join(JOURNAL),
                source,
            });
        }
        self.journal_len += line.len() as u64;
        for key in keys {
            record(&mut self.saved, &key, state);
            self.dirty.insert(key);
        }
        if self.journal_len >= COMPACT_AT {
            if let Err(e) = self.compact() {
                // The journal still holds everything: only the compaction is put off.
                tracing::warn!(%e, "cannot compact the state journal");
            }
        }
        Ok(())
    }

    /// Writes every object the journal holds a newer version of to its snapshot file, then
    /// empties the journal.
    fn compact(&mut self) -> Result<(), StateError> {
        for key in &self.dirty {
            self.write(key, &self.saved)?;
        }
        self.dirty.clear();
        if self.journal_len > 0 {
            self.journal
                .set_len(0)
                .map_err(|source| StateError::Write {
                    path: self.dir.join(JOURNAL),
                    source,
                })?;
            self.journal_len = 0;
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
        if let Err(e) = fs::write(&tmp, text) {
            fs::remove_file(&tmp).ok(); // a partial file would only take space
            return Err(err(e));
        }
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

/// A journal line that does not parse: its number (from 1) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BadLine {
    number: usize,
    text: String,
}

/// What [`read_journal`] found: the entries in order and the lines that do not parse.
type JournalRead = (Vec<Entry<Container, Network>>, Vec<BadLine>);

/// The journal's entries in order, and the lines that do not parse (a write a crash cut short,
/// or corruption): those are skipped, and the rest is recovered.
fn read_journal(path: &Path) -> Result<JournalRead, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((vec![], vec![])),
        Err(source) => {
            return Err(StateError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let mut entries = vec![];
    let mut bad = vec![];
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                tracing::error!(
                    "{}:{}: skipping a journal line that does not parse ({e})",
                    path.display(),
                    i + 1
                );
                bad.push(BadLine {
                    number: i + 1,
                    text: String::from_utf8_lossy(line).into_owned(),
                });
            }
        }
    }
    Ok((entries, bad))
}

/// Keeps the journal lines that did not parse in `journal.jsonl.corrupt-<seconds>` next to the
/// journal (as `LINE_NUMBER<TAB>TEXT`), before compaction empties the journal; returns its path.
fn keep_bad_lines(journal: &Path, bad: &[BadLine]) -> Result<PathBuf, StateError> {
    let mut name = journal.as_os_str().to_owned();
    name.push(format!(".corrupt-{}", super::now()));
    let path = PathBuf::from(name);
    let text: String = bad
        .iter()
        .map(|b| format!("{}\t{}\n", b.number, b.text))
        .collect();
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| StateError::Write {
            path: path.clone(),
            source,
        })?;
    file.write_all(text.as_bytes())
        .map_err(|source| StateError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
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

    fn journal_lines(dir: &Path) -> usize {
        fs::read_to_string(dir.join(JOURNAL))
            .unwrap()
            .lines()
            .count()
    }

    #[test]
    fn a_commit_is_one_journal_line_and_reopening_compacts_into_one_file_per_object() {
        let tmp = TempDir::new("commit");
        let mut store = Store::open(&tmp.0).unwrap();
        assert_eq!(store.saved(), &State::default());
        let first = state_with(&["a", "b"], &["x"]);
        store.commit(&first).unwrap();
        let second = state_with(&["a"], &["x", "y"]);
        store.commit(&second).unwrap();
        store.commit(&second).unwrap();
        assert_eq!(
            journal_lines(&tmp.0),
            2,
            "an unchanged state writes nothing"
        );
        assert!(files(&tmp.0, CONTAINERS).is_empty());
        drop(store);
        let reopened = Store::open(&tmp.0).unwrap();
        assert_eq!(reopened.saved(), &second);
        assert_eq!(journal_lines(&tmp.0), 0);
        assert_eq!(files(&tmp.0, NETWORKS), ["a.json"]);
        assert_eq!(files(&tmp.0, CONTAINERS), ["x.json", "y.json"]);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &second);
    }

    #[test]
    fn committing_one_named_object_records_it_alone() {
        let tmp = TempDir::new("commitonly");
        let mut store = Store::open(&tmp.0).unwrap();
        let mut state = state_with(&["a"], &["x", "y"]);
        store.commit(&state).unwrap();
        state.containers.get_mut("y").unwrap().hostname = "other".into();
        store
            .commit_only(&state, &[Key::Container("y".into())])
            .unwrap();
        assert_eq!(store.saved(), &state);
        let last = fs::read_to_string(tmp.0.join(JOURNAL)).unwrap();
        let last = last.lines().last().unwrap();
        assert!(
            last.contains("\"other\"") && !last.contains("\"x\""),
            "{last}"
        );
        drop(store);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &state);
    }

    #[test]
    #[should_panic(expected = "objects changed outside")]
    #[cfg(debug_assertions)]
    fn committing_one_object_when_another_changed_is_caught_in_debug_builds() {
        let tmp = TempDir::new("commitonlywrong");
        let mut store = Store::open(&tmp.0).unwrap();
        let state = state_with(&["a"], &["x", "y"]);
        store
            .commit_only(&state, &[Key::Container("y".into())])
            .unwrap();
    }

    #[test]
    fn a_growing_journal_is_compacted() {
        let tmp = TempDir::new("compact");
        let mut store = Store::open(&tmp.0).unwrap();
        let mut state = state_with(&["a"], &["x"]);
        let mut commits = 0;
        while store.journal_len > 0 || commits == 0 {
            state.containers.get_mut("x").unwrap().created += 1;
            store.commit(&state).unwrap();
            commits += 1;
            assert!(commits < 100_000, "never compacted");
        }
        assert!(commits > 1);
        assert_eq!(journal_lines(&tmp.0), 0);
        assert_eq!(files(&tmp.0, CONTAINERS), ["x.json"]);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &state);
    }

    /// The side files that keep the journal lines that did not parse, and their text.
    fn kept_lines(dir: &Path) -> Vec<String> {
        let mut texts = vec![];
        for e in fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.starts_with("journal.jsonl.corrupt-") {
                texts.push(fs::read_to_string(dir.join(name)).unwrap());
            }
        }
        texts
    }

    #[test]
    fn a_journal_line_cut_short_by_a_crash_is_skipped_and_kept_aside() {
        let tmp = TempDir::new("torn");
        let mut store = Store::open(&tmp.0).unwrap();
        let kept = state_with(&["a"], &["x"]);
        store.commit(&kept).unwrap();
        let next = state_with(&["a"], &["x", "y"]);
        let line = entry_line(&changed(&kept, &next), &next);
        let torn = &line[..line.len() / 2];
        store.journal.write_all(torn).unwrap();
        drop(store);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &kept);
        let side = kept_lines(&tmp.0);
        assert_eq!(
            side,
            [format!("2\t{}\n", String::from_utf8_lossy(torn))],
            "the torn line is kept with its number"
        );
    }

    #[test]
    fn a_bad_journal_line_before_the_last_is_skipped_and_the_rest_recovered() {
        let tmp = TempDir::new("badline");
        let mut store = Store::open(&tmp.0).unwrap();
        let first = state_with(&["a"], &["x"]);
        store.commit(&first).unwrap();
        store.journal.write_all(b"{\"containers\":{\"x\n").unwrap();
        store.journal.write_all(b"not json at all\n").unwrap();
        let mut last = state_with(&["a", "b"], &["x", "y"]);
        last.containers.get_mut("x").unwrap().hostname = "later".into();
        store.commit(&last).unwrap();
        drop(store);
        let reopened = Store::open(&tmp.0).unwrap();
        assert_eq!(
            reopened.saved(),
            &last,
            "lines before and after are replayed"
        );
        assert_eq!(
            kept_lines(&tmp.0),
            ["2\t{\"containers\":{\"x\n3\tnot json at all\n"]
        );
        assert_eq!(journal_lines(&tmp.0), 0, "compacted after recovery");
        drop(reopened);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &last);
        assert_eq!(
            kept_lines(&tmp.0).len(),
            1,
            "a clean journal keeps nothing new"
        );
    }

    #[test]
    fn a_store_whose_files_cannot_be_written_opens_with_its_journal_whole() {
        let tmp = TempDir::new("readonly");
        let mut store = Store::open(&tmp.0).unwrap();
        let state = state_with(&["a"], &["x"]);
        store.commit(&state).unwrap();
        drop(store);
        // The object file cannot be written (here its temporary name is taken by a directory;
        // a full disk does the same); the journal can still be read.
        let blocker = tmp.0.join(CONTAINERS).join("x.json.tmp");
        fs::create_dir(&blocker).unwrap();
        let opened = Store::open(&tmp.0);
        fs::remove_dir(&blocker).unwrap();
        let reopened = opened.expect("opens without compacting");
        assert_eq!(reopened.saved(), &state);
        assert_eq!(journal_lines(&tmp.0), 1, "the journal is kept");
        drop(reopened);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &state);
        assert_eq!(journal_lines(&tmp.0), 0, "compacted once it can be");
    }

    #[test]
    fn a_journal_line_that_cannot_be_written_changes_nothing() {
        let tmp = TempDir::new("full");
        let mut store = Store::open(&tmp.0).unwrap();
        let first = state_with(&["a"], &["x"]);
        store.commit(&first).unwrap();
        // A journal that refuses writes, as a full disk does.
        store.journal = fs::File::open(tmp.0.join(JOURNAL)).unwrap();
        let err = store
            .commit(&state_with(&["a"], &["x", "y"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot write ") && err.contains("journal.jsonl"),
            "{err}"
        );
        assert_eq!(store.saved(), &first);
        drop(store);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &first);
    }

    #[test]
    fn replaying_over_a_half_compacted_snapshot_loses_nothing() {
        let tmp = TempDir::new("halfcompacted");
        let mut store = Store::open(&tmp.0).unwrap();
        let old = state_with(&["a"], &["x"]);
        store.commit(&old).unwrap();
        let new = state_with(&["a"], &["y"]);
        store.commit(&new).unwrap();
        // A crash in a compaction: one object file written, the journal still whole.
        store.write(&Key::Container("x".into()), &old).unwrap();
        drop(store);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &new);
        assert_eq!(files(&tmp.0, CONTAINERS), ["y.json"]);
    }

    /// A dual-stack network and an endpoint with an IPv6 address go through the journal (a
    /// killed daemon replays it) and through compaction into the snapshot files whole.
    #[test]
    fn dual_stack_fields_survive_the_journal_and_compaction() {
        let tmp = TempDir::new("dual");
        let mut store = Store::open(&tmp.0).unwrap();
        let mut state = State::default();
        let net = crate::state::testing::dual("v6", "172.28.0.0/16", "fd00:28::/64", 1);
        state.networks.insert("v6".into(), net);
        let mut c = running("c1", &[("v6", "v0", "172.28.0.2", &[])]);
        c.attachments[0].ip6 = Some("fd00:28::9".parse().unwrap());
        c.endpoints[0].ip6 = Some("fd00:28::9".parse().unwrap());
        state.containers.insert("c1".into(), c);
        store.commit(&state).unwrap();
        let journal = fs::read_to_string(tmp.0.join(JOURNAL)).unwrap();
        assert!(
            journal.contains("fd00:28::/64") && journal.contains("fd00:28::9"),
            "{journal}"
        );
        drop(store);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &state, "replayed");
        assert_eq!(journal_lines(&tmp.0), 0);
        assert_eq!(Store::open(&tmp.0).unwrap().saved(), &state, "compacted");
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
