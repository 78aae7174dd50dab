//! The cluster store: what the daemons of several hosts share through etcd (`--cluster-store`)
//! for overlay networks, as Docker's classic overlay did with its key-value store and flannel
//! and Cilium do with etcd.
//!
//! Each daemon holds one lease ([`Cluster::ensure_lease`], its ID kept in the state directory so
//! that a restarted daemon goes on with it) and writes the endpoints of its own containers on
//! it: a host gone for longer than the lease's TTL (`--cluster-lease-ttl`) loses them, and the
//! other hosts stop sending there. Every daemon follows the store (the daemon's overlay module)
//! and keeps its
//! datapath as the store says; when etcd is away, the datapath keeps what it has, requests that
//! need the store fail with a one-line error, and the watch starts again from a fresh snapshot
//! once etcd is back.
pub mod records;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions, WatchStream,
};
use thiserror::Error;

use records::{EndpointRecord, NetworkRecord, Snapshot};

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("invalid --cluster-store {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cluster store {store} is unreachable: {reason}")]
    Unreachable { store: String, reason: String },
    #[error("cluster store {0}: this host has no lease yet (etcd has not answered since the daemon started)")]
    NoLease(String),
    #[error("cluster store {store}: lease of this host expired")]
    LeaseLost { store: String },
    #[error("cluster store record {key} does not read: {reason}")]
    BadRecord { key: String, reason: String },
    /// The request conflicts with what the cluster has.
    #[error("{0}")]
    Conflict(String),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<records::BadRecord> for ClusterError {
    fn from(b: records::BadRecord) -> Self {
        ClusterError::BadRecord {
            key: b.key,
            reason: b.reason,
        }
    }
}

/// How long one request to etcd may take before the store counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// This daemon's handle on the cluster store. Cheap to clone (one connection, shared).
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    /// `--cluster-store` as given, for messages.
    pub store: String,
    /// This host's underlay address: where other hosts send its overlay traffic.
    pub advertise: Ipv4Addr,
    pub ttl: Duration,
    /// The lease this host's endpoints live on (0 until etcd granted one).
    lease: Arc<AtomicI64>,
    lease_file: PathBuf,
    /// The last view of the cluster this daemon had (see [`Cluster::save_view`]).
    view_file: PathBuf,
}

impl Cluster {
    /// A handle on the store at `store` (`etcd://HOST:PORT[,...]`). Connects lazily: a store
    /// that is down now is not an error until a request needs it.
    pub async fn new(
        store: &str,
        advertise: Ipv4Addr,
        ttl: Duration,
        state_dir: &std::path::Path,
    ) -> Result<Self, ClusterError> {
        let members = records::parse_store(store).map_err(|reason| ClusterError::BadUrl {
            url: store.into(),
            reason,
        })?;
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let client = Client::connect(members, Some(options))
            .await
            .map_err(|e| unreachable(store, e))?;
        Ok(Self {
            client,
            store: store.into(),
            advertise,
            ttl,
            lease: Arc::new(AtomicI64::new(0)),
            lease_file: state_dir.join("cluster-lease"),
            view_file: state_dir.join("cluster-view.json"),
        })
    }

    fn kv(&self) -> Client {
        self.client.clone()
    }

    fn err(&self) -> impl Fn(etcd_client::Error) -> ClusterError + '_ {
        |e| unreachable(&self.store, e)
    }

    /// A client error, as this store's.
    pub fn unreachable(&self, e: etcd_client::Error) -> ClusterError {
        unreachable(&self.store, e)
    }

    /// The lease this host writes its endpoints on.
    pub fn lease(&self) -> Result<i64, ClusterError> {
        match self.lease.load(Ordering::Acquire) {
            0 => Err(ClusterError::NoLease(self.store.clone())),
            id => Ok(id),
        }
    }

    /// Goes on with the lease a previous daemon of this host held if etcd still has it, else
    /// takes a new one (and records its ID for the next daemon). Returns it.
    pub async fn ensure_lease(&self) -> Result<i64, ClusterError> {
        let mut client = self.kv();
        let known = match self.lease.load(Ordering::Acquire) {
            0 => std::fs::read_to_string(&self.lease_file)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0),
            id => id,
        };
        if known != 0 {
            let alive = client
                .lease_time_to_live(known, None)
                .await
                .map_err(self.err())?;
            if alive.ttl() > 0 {
                self.lease.store(known, Ordering::Release);
                return Ok(known);
            }
        }
        let ttl = self.ttl.as_secs().max(1) as i64;
        let id = client
            .lease_grant(ttl, None)
            .await
            .map_err(self.err())?
            .id();
        let tmp = self.lease_file.with_extension("tmp");
        std::fs::write(&tmp, id.to_string())
            .and_then(|()| std::fs::rename(&tmp, &self.lease_file))
            .map_err(|source| ClusterError::Io {
                what: "write",
                path: self.lease_file.clone(),
                source,
            })?;
        self.lease.store(id, Ordering::Release);
        Ok(id)
    }

    /// Keeps `view` in the state dir (written whole, then renamed): a daemon restarted while the
    /// store is away starts from it, so that it still answers the other hosts' names.
    pub fn save_view(&self, view: &Snapshot) -> Result<(), ClusterError> {
        let io = |source| ClusterError::Io {
            what: "write",
            path: self.view_file.clone(),
            source,
        };
        let json = serde_json::to_vec(view).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = self.view_file.with_extension("tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &self.view_file))
            .map_err(io)
    }

    /// The view [`Cluster::save_view`] kept, if there is one that reads.
    pub fn saved_view(&self) -> Option<Snapshot> {
        let bytes = std::fs::read(&self.view_file).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(view) => Some(view),
            Err(e) => {
                tracing::warn!(path = %self.view_file.display(), %e, "ignoring the saved cluster view");
                None
            }
        }
    }

    /// Forgets the lease (etcd said it expired); the next session takes a new one.
    pub fn drop_lease(&self) {
        self.lease.store(0, Ordering::Release);
        let _ = std::fs::remove_file(&self.lease_file);
    }

    /// Keeps the lease alive while the returned stream of answers is read.
    pub async fn keep_alive(
        &self,
        id: i64,
    ) -> Result<(etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream), ClusterError> {
        self.kv().lease_keep_alive(id).await.map_err(self.err())
    }

    /// Everything netd has in the store, and the revision it was read at.
    pub async fn snapshot(&self) -> Result<Snapshot, ClusterError> {
        let resp = self
            .kv()
            .get(records::PREFIX, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(self.err())?;
        let mut snap = Snapshot {
            revision: resp.header().map_or(0, |h| h.revision()),
            ..Snapshot::default()
        };
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            if let Err(bad) = snap.put(&key, kv.value()) {
                tracing::error!(key = %bad.key, reason = %bad.reason, "skipping a record");
            }
        }
        Ok(snap)
    }

    /// Watches everything netd has in the store from `revision` on.
    pub async fn watch(&self, revision: i64) -> Result<WatchStream, ClusterError> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision);
        self.kv()
            .watch(records::PREFIX, Some(options))
            .await
            .map_err(self.err())
    }

    /// The VNIs overlay networks have.
    pub async fn vnis(&self) -> Result<std::collections::BTreeSet<u32>, ClusterError> {
        let resp = self
            .kv()
            .get(
                records::vnis_prefix(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .map_err(self.err())?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                String::from_utf8_lossy(kv.key())
                    .rsplit('/')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect())
    }

    /// The overlay networks the store has.
    pub async fn networks(&self) -> Result<Vec<NetworkRecord>, ClusterError> {
        let resp = self
            .kv()
            .get(
                records::networks_prefix(),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .map_err(self.err())?;
        resp.kvs()
            .iter()
            .map(|kv| {
                serde_json::from_slice(kv.value()).map_err(|e| ClusterError::BadRecord {
                    key: String::from_utf8_lossy(kv.key()).into(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Records a new overlay network with the claims on its name, VNI and subnet, all or
    /// nothing, and returns the store's revision of it. `Ok(None)`: a claim was taken (by a
    /// network made meanwhile); the caller looks again. A name the store has is a conflict.
    pub async fn create_network(&self, net: &NetworkRecord) -> Result<Option<i64>, ClusterError> {
        let value = serde_json::to_vec(net).expect("records serialize");
        let claims = [
            records::name_key(&net.name),
            records::vni_key(net.vni),
            records::subnet_key(net.subnet),
        ];
        let txn = Txn::new()
            .when(
                claims
                    .iter()
                    .map(|k| Compare::create_revision(k.as_str(), CompareOp::Equal, 0))
                    .collect::<Vec<_>>(),
            )
            .and_then(
                claims
                    .iter()
                    .map(|k| TxnOp::put(k.as_str(), net.id.as_str(), None))
                    .chain([TxnOp::put(records::network_key(&net.id), value, None)])
                    .collect::<Vec<_>>(),
            );
        let resp = self.kv().txn(txn).await.map_err(self.err())?;
        if resp.succeeded() {
            return Ok(Some(revision(&resp)));
        }
        let named = self
            .kv()
            .get(records::name_key(&net.name), None)
            .await
            .map_err(self.err())?;
        if !named.kvs().is_empty() {
            return Err(ClusterError::Conflict(format!(
                "network with name {} already exists in the cluster",
                net.name
            )));
        }
        Ok(None)
    }

    /// Removes an overlay network and its claims, unless any host has an endpoint on it (then
    /// a conflict naming them); returns the store's revision of the removal.
    pub async fn delete_network(&self, net: &NetworkRecord) -> Result<i64, ClusterError> {
        let prefix = records::endpoints_prefix(&net.id);
        let txn = Txn::new()
            .when([Compare::create_revision(prefix.as_str(), CompareOp::Equal, 0).with_prefix()])
            .and_then(
                [
                    records::network_key(&net.id),
                    records::name_key(&net.name),
                    records::vni_key(net.vni),
                    records::subnet_key(net.subnet),
                ]
                .map(|k| TxnOp::delete(k, None)),
            );
        let resp = self.kv().txn(txn).await.map_err(self.err())?;
        if resp.succeeded() {
            return Ok(revision(&resp));
        }
        let users: Vec<String> = self
            .endpoints_of(&net.id)
            .await?
            .values()
            .map(|e| format!("{} on {}", e.container, e.host))
            .collect();
        Err(ClusterError::Conflict(format!(
            "network {} has active endpoints: {}",
            net.name,
            users.join(", ")
        )))
    }

    /// The endpoints of network `id`, by address.
    pub async fn endpoints_of(
        &self,
        id: &str,
    ) -> Result<BTreeMap<IpAddr, EndpointRecord>, ClusterError> {
        let resp = self
            .kv()
            .get(
                records::endpoints_prefix(id),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .map_err(self.err())?;
        let mut snap = Snapshot::default();
        for kv in resp.kvs() {
            snap.put(&String::from_utf8_lossy(kv.key()), kv.value())?;
        }
        Ok(snap.endpoints.remove(id).unwrap_or_default())
    }

    /// Takes address `ip` on network `id` for `ep`, on this host's lease, if nobody has it and
    /// the network still exists. `Ok(false)`: it is taken.
    pub async fn claim(
        &self,
        id: &str,
        ip: IpAddr,
        ep: &EndpointRecord,
    ) -> Result<bool, ClusterError> {
        let lease = self.lease()?;
        let key = records::endpoint_key(id, ip);
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                Compare::create_revision(records::network_key(id), CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(
                key.as_str(),
                serde_json::to_vec(ep).expect("records serialize"),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let resp = self.kv().txn(txn).await.map_err(self.err())?;
        Ok(resp.succeeded())
    }

    /// Writes an endpoint this host has (again), on its lease.
    pub async fn publish(
        &self,
        id: &str,
        ip: IpAddr,
        ep: &EndpointRecord,
    ) -> Result<(), ClusterError> {
        let lease = self.lease()?;
        self.kv()
            .put(
                records::endpoint_key(id, ip),
                serde_json::to_vec(ep).expect("records serialize"),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Gives address `ip` on network `id` back, if this host has it.
    pub async fn release(&self, id: &str, ip: IpAddr) -> Result<(), ClusterError> {
        let key = records::endpoint_key(id, ip);
        let resp = self
            .kv()
            .get(key.as_str(), None)
            .await
            .map_err(self.err())?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(());
        };
        let ours = serde_json::from_slice::<EndpointRecord>(kv.value())
            .is_ok_and(|e| e.host == IpAddr::V4(self.advertise));
        if !ours {
            return Ok(());
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                kv.mod_revision(),
            )])
            .and_then([TxnOp::delete(key.as_str(), Some(DeleteOptions::new()))]);
        self.kv().txn(txn).await.map_err(self.err())?;
        Ok(())
    }
}

/// The store's revision after a transaction.
fn revision(resp: &etcd_client::TxnResponse) -> i64 {
    resp.header().map_or(0, |h| h.revision())
}

/// A client error as one line.
fn unreachable(store: &str, e: etcd_client::Error) -> ClusterError {
    let text = e.to_string();
    ClusterError::Unreachable {
        store: store.into(),
        reason: text.lines().next().unwrap_or_default().to_string(),
    }
}
