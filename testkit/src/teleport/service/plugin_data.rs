//! Plugin data (`GetPluginData`, `UpdatePluginData`) with Teleport's rules
//! (shared/reference/teleport-wire.md §5, §12.4): kinds `access_request` and
//! `access_list` only, stored apart by (kind, resource); the Expect
//! compare-and-swap (a missing entry or key reads as "", only named keys are
//! checked, "" in Set deletes a key); creating access request data needs the
//! request and expires an hour past its access expiry; access list data is
//! never looked up and expires 14 days after each update.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use tonic::Status;

use super::super::{State, TeleportEmulator};
use crate::pb;

/// Plugin data of access requests.
pub(crate) const KIND_ACCESS_REQUEST: &str = "access_request";
/// Plugin data of access lists.
pub(crate) const KIND_ACCESS_LIST: &str = "access_list";

/// (resource kind, resource name).
pub(crate) type PluginDataKey = (String, String);

/// How long access request plugin data outlives the request's access expiry.
pub(crate) const PLUGIN_DATA_GRACE: Duration = Duration::from_secs(3600);

/// How long access list plugin data lives after each update (`twoWeeks`).
pub(crate) const ACCESS_LIST_PLUGIN_DATA_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

fn check_kind(kind: &str) -> Result<(), Status> {
    if kind == KIND_ACCESS_REQUEST || kind == KIND_ACCESS_LIST {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "unsupported resource kind {kind:?}"
        )))
    }
}

fn key(kind: &str, resource: &str) -> PluginDataKey {
    (kind.to_owned(), resource.to_owned())
}

impl State {
    /// Drops plugin data whose expiry has passed (Teleport's backend expires it).
    pub(crate) fn expire_plugin_data(&mut self, now: SystemTime) {
        let gone: Vec<PluginDataKey> = self
            .plugin_data_expires
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.plugin_data_expires.remove(&k);
            self.plugin_data.remove(&k);
        }
    }

    /// `GetPluginData`: with a resource, 0 or 1 item; without, every resource
    /// of the kind; entries filtered by plugin.
    pub(crate) fn get_plugin_data(
        &mut self,
        f: &pb::types::PluginDataFilter,
        now: SystemTime,
    ) -> Result<Vec<pb::types::PluginDataV3>, Status> {
        check_kind(&f.kind)?;
        self.expire_plugin_data(now);
        Ok(self
            .plugin_data
            .iter()
            .filter(|((kind, res), _)| {
                *kind == f.kind && (f.resource.is_empty() || *res == f.resource)
            })
            .filter_map(|((_, res), entries)| {
                let entries: HashMap<_, _> = entries
                    .iter()
                    .filter(|(p, _)| f.plugin.is_empty() || **p == f.plugin)
                    .map(|(p, d)| {
                        (
                            p.clone(),
                            pb::types::PluginDataEntry {
                                data: d.clone().into_iter().collect(),
                            },
                        )
                    })
                    .collect();
                (!entries.is_empty()).then(|| pb::types::PluginDataV3 {
                    kind: "plugin_data".into(),
                    sub_kind: f.kind.clone(),
                    version: "v3".into(),
                    metadata: Some(pb::types::Metadata {
                        name: res.clone(),
                        namespace: "default".into(),
                        expires: self
                            .plugin_data_expires
                            .get(&key(&f.kind, res))
                            .map(|t| crate::util::timestamp(*t)),
                        ..Default::default()
                    }),
                    spec: Some(pb::types::PluginDataSpecV3 { entries }),
                })
            })
            .collect())
    }

    /// `UpdatePluginData`: kind, permission, creation rules, Expect, Set.
    pub(crate) fn update_plugin_data(
        &mut self,
        p: pb::types::PluginDataUpdateParams,
        now: SystemTime,
    ) -> Result<(), Status> {
        check_kind(&p.kind)?;
        self.expire_plugin_data(now);
        if !self.permissions().write_plugin_data {
            return Err(Status::permission_denied(
                "access denied to perform action \"update\" on \"access_plugin_data\"",
            ));
        }
        let k = key(&p.kind, &p.resource);
        let exists = self.plugin_data.contains_key(&k);
        if p.kind == KIND_ACCESS_REQUEST && !exists {
            let Some(req) = self.requests.get(&p.resource) else {
                return Err(Status::not_found(format!(
                    "access_request \"{}\" not found",
                    p.resource
                )));
            };
            let access_expiry = req
                .spec
                .as_ref()
                .and_then(|s| s.expires.as_ref())
                .and_then(|t| u64::try_from(t.seconds).ok())
                .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
            if let Some(at) = access_expiry {
                self.plugin_data_expires
                    .insert(k.clone(), at + PLUGIN_DATA_GRACE);
            }
        }
        let current = self
            .plugin_data
            .get(&k)
            .and_then(|e| e.get(&p.plugin))
            .cloned();
        // Expect: missing entry or key reads as ""; only named keys are checked.
        let mut expect: Vec<_> = p.expect.iter().collect();
        expect.sort();
        for (field, v) in expect {
            let have = current
                .as_ref()
                .and_then(|d| d.get(field))
                .map_or("", String::as_str);
            if have != v {
                if !exists {
                    self.plugin_data_expires.remove(&k);
                }
                return Err(Status::failed_precondition(format!(
                    "expectations not met for field {field:?}"
                )));
            }
        }
        let entries = self.plugin_data.entry(k.clone()).or_default();
        let data = entries.entry(p.plugin.clone()).or_default();
        for (field, v) in p.set {
            if v.is_empty() {
                data.remove(&field);
            } else {
                data.insert(field, v);
            }
        }
        if data.is_empty() {
            entries.remove(&p.plugin);
        }
        if entries.is_empty() {
            self.plugin_data.remove(&k);
            self.plugin_data_expires.remove(&k);
        } else if p.kind == KIND_ACCESS_LIST {
            self.plugin_data_expires
                .insert(k, now + ACCESS_LIST_PLUGIN_DATA_TTL);
        }
        Ok(())
    }

    /// Writes one plugin's data directly (no rules, no expiry).
    pub(crate) fn put_plugin_data(
        &mut self,
        kind: &str,
        resource: &str,
        plugin: &str,
        data: &[(&str, &str)],
    ) {
        self.plugin_data
            .entry(key(kind, resource))
            .or_default()
            .insert(
                plugin.to_owned(),
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
    }

    /// One plugin's stored data (expired data dropped first).
    pub(crate) fn stored_plugin_data(
        &mut self,
        kind: &str,
        resource: &str,
        plugin: &str,
    ) -> Option<BTreeMap<String, String>> {
        self.expire_plugin_data(SystemTime::now());
        self.plugin_data
            .get(&key(kind, resource))
            .and_then(|p| p.get(plugin))
            .cloned()
    }
}

impl TeleportEmulator {
    /// Writes plugin data of an access list directly, as another plugin
    /// version left it (no expiry).
    pub fn put_access_list_plugin_data(&self, name: &str, plugin: &str, data: &[(&str, &str)]) {
        self.shared
            .lock()
            .put_plugin_data(KIND_ACCESS_LIST, name, plugin, data);
    }

    /// Plugin data of one access list for one plugin.
    pub fn access_list_plugin_data(
        &self,
        name: &str,
        plugin: &str,
    ) -> Option<BTreeMap<String, String>> {
        self.shared
            .lock()
            .stored_plugin_data(KIND_ACCESS_LIST, name, plugin)
    }

    /// When the plugin data of a resource (`"access_request"` or
    /// `"access_list"`) expires, if it has an expiry.
    pub fn plugin_data_expiry(&self, kind: &str, resource: &str) -> Option<SystemTime> {
        self.shared
            .lock()
            .plugin_data_expires
            .get(&key(kind, resource))
            .copied()
    }
}
