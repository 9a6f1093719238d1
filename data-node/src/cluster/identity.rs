//! The node's identity, kept in `--data-dir/node.json`: its id (created once) and the
//! cluster id it joined (recorded when the first snapshot is applied), so a restarted
//! node comes back as itself and refuses snapshots of another cluster.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ember_core::NodeId;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub node_id: NodeId,
    pub cluster_id: Option<Uuid>,
    path: PathBuf,
}

impl Identity {
    /// Loads the identity from `dir`, creating a new node id on first start.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let path = dir.join("node.json");
        match fs::read(&path) {
            Ok(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is corrupt", path.display()))?;
                let node_id = v["node_id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .with_context(|| format!("{} has no valid node_id", path.display()))?;
                let cluster_id = v["cluster_id"].as_str().and_then(|s| s.parse().ok());
                Ok(Self {
                    node_id,
                    cluster_id,
                    path,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let me = Self {
                    node_id: Uuid::new_v4(),
                    cluster_id: None,
                    path,
                };
                me.save()?;
                tracing::info!(node_id = %me.node_id, "created a new node identity");
                Ok(me)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Records the cluster this node belongs to.
    pub fn set_cluster(&mut self, cluster_id: Uuid) -> anyhow::Result<()> {
        if self.cluster_id != Some(cluster_id) {
            self.cluster_id = Some(cluster_id);
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> anyhow::Result<()> {
        let doc = json!({
            "format": 1,
            "node_id": self.node_id.to_string(),
            "cluster_id": self.cluster_id.map(|c| c.to_string()),
        });
        let tmp = self.path.with_extension("json.tmp");
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(&doc)?.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.cluster_id, None);
        a.set_cluster(Uuid::from_u128(9)).unwrap();
        let b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(b, a);
    }
}
