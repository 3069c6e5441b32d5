//! [`Tenancy`]: communities, enablements, tokens and the audit log, in the store.

use crate::district::{CommunityId, District};
use courtyard_registry::{Capability, PluginName};
use courtyard_runtime::{Admission, Admitted, Grants, Origin};
use courtyard_store::{Batch, Namespace, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use utoipa::ToSchema;

/// The namespace of the district's own records. `$` cannot begin a community id, so it
/// never meets a community's namespace.
fn namespace() -> Namespace {
    Namespace::new("$district", "$tenancy")
}

const SEEDED: &str = "meta/seeded";
/// The district's name and time zone, as seeded.
const DISTRICT: &str = "meta/district";
const COMMUNITY: &str = "community/";
const ENABLED: &str = "plugin/";
const TOKEN: &str = "token/";
const AUDIT: &str = "audit/all/";
const AUDIT_OF: &str = "audit/community/";
/// Records read per page when loading.
const PAGE: usize = 1000;

/// Why a tenancy operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record in the store could not be read.
    #[error("unreadable record {key}: {reason}")]
    Corrupt {
        /// Its key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// A community with this id exists already.
    #[error("community {0} exists already")]
    CommunityExists(CommunityId),
    /// No such community.
    #[error("no community {0}")]
    NoCommunity(String),
    /// A community-scoped role without a community, or the other way round.
    #[error("{0}")]
    BadScope(String),
}

/// A role: what a token may do (API.md).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The whole district.
    Operator,
    /// Publishes plugins to the registry.
    Integrator,
    /// The admin of one community.
    Admin,
    /// A device or app of one community.
    Device,
}

impl Role {
    /// Whether tokens of this role belong to one community.
    pub fn is_community_scoped(self) -> bool {
        matches!(self, Self::Admin | Self::Device)
    }

    /// The role's name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Integrator => "integrator",
            Self::Admin => "admin",
            Self::Device => "device",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as the API shows it: never its secret, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// The token's id (`tok_…`), for listing and revoking; not a secret.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its community, for `admin` and `device` tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community: Option<CommunityId>,
    /// What it is for ("gate 3 camera box"), for people.
    pub label: String,
    /// When it was created (ms since the Unix epoch).
    pub created_ms: i64,
    /// The id of the token that created it (none: the host's first start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
}

/// A new token: its description and, this once, its secret.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// What the API shows of it.
    pub info: TokenInfo,
    /// The bearer secret (`cyt_` and 64 hex digits). Only its hash is stored.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    #[serde(flatten)]
    info: TokenInfo,
    /// SHA-256 of the secret, hex.
    hash: String,
}

/// Who made a change, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    /// The token's id (`host` for the host itself).
    pub token: String,
    /// Its role.
    pub role: Role,
    /// Its community, for community-scoped roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community: Option<CommunityId>,
}

impl Actor {
    /// The actor of a token.
    pub fn of(token: &TokenInfo) -> Self {
        Self {
            token: token.id.clone(),
            role: token.role,
            community: token.community.clone(),
        }
    }

    /// The host itself (seeding, the first operator token).
    pub fn host() -> Self {
        Self {
            token: "host".into(),
            role: Role::Operator,
            community: None,
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Its position in the log (increasing).
    pub seq: u64,
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// Who.
    pub actor: Actor,
    /// The community changed, if the change is of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community: Option<CommunityId>,
    /// What was done: `community.create`, `plugin.enable`, `token.revoke`, …
    pub action: String,
    /// What it was done to (`nanhu`, `nanhu/canteen`, `tok_…`).
    pub target: String,
    /// The record before (none: created).
    pub before: Option<Value>,
    /// The record after (none: removed).
    pub after: Option<Value>,
}

/// A community as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommunityRecord {
    /// Its id.
    pub id: CommunityId,
    /// Its name, for people.
    pub name: String,
    /// When it was created.
    pub created_ms: i64,
    /// When it was last changed.
    pub updated_ms: i64,
}

/// A plugin enabled in a community.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Enablement {
    /// The plugin.
    #[schema(value_type = String)]
    pub plugin: PluginName,
    /// The version pinned, if one is: calls are refused while another is loaded. None:
    /// whichever version the host has.
    #[schema(value_type = Option<String>)]
    pub version: Option<semver::Version>,
    /// The community's config: top-level keys set over the manifest's defaults.
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// The capabilities granted, of those the manifest requests.
    #[schema(value_type = Vec<String>)]
    pub grants: BTreeSet<Capability>,
    /// With the `http` capability: the origins (`https://host[:port]`) the plugin may
    /// send requests to. Nowhere else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// When it was last changed.
    pub updated_ms: i64,
}

/// The district's own record.
#[derive(Debug, Serialize, Deserialize)]
struct DistrictMeta {
    name: String,
    time_zone: String,
}

/// A plugin the seed may enable: what its manifest requests.
#[derive(Debug, Clone)]
pub struct SeedPlugin {
    /// The capabilities its manifest requests (all granted by the seed).
    pub capabilities: BTreeSet<Capability>,
}

impl SeedPlugin {
    /// Every plugin loaded in `runtime`, by name.
    pub fn all_of(runtime: &courtyard_runtime::Runtime) -> BTreeMap<String, SeedPlugin> {
        runtime
            .plugins()
            .into_iter()
            .filter_map(|name| {
                let manifest = runtime.manifest(&name)?;
                let capabilities = manifest.manifest().capabilities.iter().copied().collect();
                Some((name, SeedPlugin { capabilities }))
            })
            .collect()
    }
}

#[derive(Debug, Default)]
struct Memory {
    communities: BTreeMap<CommunityId, CommunityRecord>,
    /// By community, then plugin.
    enabled: HashMap<String, BTreeMap<String, Enabled>>,
    /// By hash.
    tokens: HashMap<String, TokenRecord>,
}

/// An enablement, and the runtime's view of it, made once.
#[derive(Debug, Clone)]
struct Enabled {
    record: Arc<Enablement>,
    admitted: Admitted,
}

impl Enabled {
    fn new(record: Enablement) -> Self {
        let admitted = Admitted {
            version: record.version.as_ref().map(ToString::to_string),
            config: (!record.config.is_empty()).then(|| Arc::new(record.config.clone())),
            grants: Grants {
                state: record.grants.contains(&Capability::State),
                events: record.grants.contains(&Capability::Events),
            },
            http_origins: if record.grants.contains(&Capability::Http) {
                record
                    .allowed_hosts
                    .iter()
                    .filter_map(|h| Origin::parse(h).ok())
                    .collect()
            } else {
                Arc::from([])
            },
        };
        Self {
            record: Arc::new(record),
            admitted,
        }
    }
}

/// The district's records: see the crate's documentation. Cheap to share (`Arc`).
pub struct Tenancy {
    store: Arc<dyn Store>,
    name: String,
    time_zone: String,
    memory: RwLock<Memory>,
    /// Changes are made one at a time, so that memory follows the store.
    writer: Mutex<()>,
    audit_seq: AtomicU64,
}

impl fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenancy")
            .field("name", &self.name)
            .field("time_zone", &self.time_zone)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain records cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, TenancyError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| {
        TenancyError::Store(StoreError::Backend(format!(
            "no randomness from the system: {e}"
        )))
    })?;
    Ok(hex::encode(buf))
}

impl Tenancy {
    /// Opens the district's records in `store`. On a store that was never seeded, the
    /// district file's communities are written first, each with the plugins of its
    /// `plugins` list that `plugins` knows (others are skipped with a warning),
    /// unpinned, with the default config and every capability requested.
    ///
    /// The district's name and time zone are the seed's on the first start, and the
    /// stored ones after that: a changed district file does not move the schedules of an
    /// existing district.
    pub fn open(
        store: Arc<dyn Store>,
        seed: &District,
        plugins: &BTreeMap<String, SeedPlugin>,
    ) -> Result<Self, TenancyError> {
        let ns = namespace();
        let (name, time_zone) = match store.get(&ns, DISTRICT)? {
            Some(bytes) => {
                let stored: DistrictMeta =
                    serde_json::from_slice(&bytes).map_err(|e| TenancyError::Corrupt {
                        key: DISTRICT.into(),
                        reason: e.to_string(),
                    })?;
                if stored.name != seed.name || stored.time_zone != seed.time_zone {
                    tracing::warn!(
                        stored_time_zone = %stored.time_zone,
                        file_time_zone = %seed.time_zone,
                        "the district file differs from the district in the store; the store's name and time zone apply"
                    );
                }
                (stored.name, stored.time_zone)
            }
            None => {
                let meta = DistrictMeta {
                    name: seed.name.clone(),
                    time_zone: seed.time_zone.clone(),
                };
                let mut batch = Batch::default();
                batch
                    .writes
                    .entry(ns.clone())
                    .or_default()
                    .insert(DISTRICT.to_owned(), Some(to_bytes(&meta)));
                store.commit(batch)?;
                (meta.name, meta.time_zone)
            }
        };
        let tenancy = Self {
            store,
            name,
            time_zone,
            memory: RwLock::default(),
            writer: Mutex::new(()),
            audit_seq: AtomicU64::new(0),
        };
        if let Some((key, _)) = tenancy.store.scan_back(&ns, AUDIT, None, 1)?.pop() {
            let seq = key[AUDIT.len()..].parse::<u64>().unwrap_or(0);
            tenancy.audit_seq.store(seq, Ordering::SeqCst);
        }
        if tenancy.store.get(&ns, SEEDED)?.is_none() {
            tenancy.seed(seed, plugins)?;
        }
        tenancy.load()?;
        Ok(tenancy)
    }

    fn seed(
        &self,
        district: &District,
        plugins: &BTreeMap<String, SeedPlugin>,
    ) -> Result<(), TenancyError> {
        let now = now_ms();
        let mut writes = BTreeMap::new();
        for c in &district.communities {
            let record = CommunityRecord {
                id: c.id.clone(),
                name: c.name.clone(),
                created_ms: now,
                updated_ms: now,
            };
            writes.insert(format!("{COMMUNITY}{}", c.id), Some(to_bytes(&record)));
            for plugin in &c.plugins {
                let (Some(seed), Ok(name)) = (plugins.get(plugin), PluginName::new(plugin.clone()))
                else {
                    tracing::warn!(community = %c.id, plugin, "the district file names a plugin the host does not have; not enabled");
                    continue;
                };
                let enablement = Enablement {
                    plugin: name,
                    version: None,
                    config: Map::new(),
                    grants: seed.capabilities.clone(),
                    allowed_hosts: Vec::new(),
                    updated_ms: now,
                };
                writes.insert(
                    format!("{ENABLED}{}/{plugin}", c.id),
                    Some(to_bytes(&enablement)),
                );
            }
        }
        writes.insert(SEEDED.to_owned(), Some(now.to_string().into_bytes()));
        let mut batch = Batch::default();
        batch.writes.insert(namespace(), writes);
        self.store.commit(batch)?;
        self.store.sync()?;
        tracing::info!(
            communities = district.communities.len(),
            "seeded the district from its file"
        );
        Ok(())
    }

    fn scan_all<T: for<'de> Deserialize<'de>>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, TenancyError> {
        let ns = namespace();
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.scan(&ns, prefix, after.as_deref(), PAGE)?;
            let done = page.len() < PAGE;
            for (key, value) in page {
                let record = serde_json::from_slice(&value).map_err(|e| TenancyError::Corrupt {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
                after = Some(key.clone());
                out.push((key, record));
            }
            if done {
                return Ok(out);
            }
        }
    }

    fn load(&self) -> Result<(), TenancyError> {
        let mut memory = Memory::default();
        for (_, c) in self.scan_all::<CommunityRecord>(COMMUNITY)? {
            memory.communities.insert(c.id.clone(), c);
        }
        for (key, e) in self.scan_all::<Enablement>(ENABLED)? {
            let community = key[ENABLED.len()..]
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            memory
                .enabled
                .entry(community)
                .or_default()
                .insert(e.plugin.to_string(), Enabled::new(e));
        }
        for (_, t) in self.scan_all::<TokenRecord>(TOKEN)? {
            memory.tokens.insert(t.hash.clone(), t);
        }
        *self.memory.write().unwrap_or_else(PoisonError::into_inner) = memory;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Memory> {
        self.memory.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Memory> {
        self.memory.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The district's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The district's IANA time zone.
    pub fn time_zone(&self) -> &str {
        &self.time_zone
    }

    // ----- communities -----

    /// Every community, by id.
    pub fn communities(&self) -> Vec<CommunityRecord> {
        self.read().communities.values().cloned().collect()
    }

    /// The ids of every community.
    pub fn community_ids(&self) -> Vec<String> {
        self.read()
            .communities
            .keys()
            .map(|c| c.as_str().to_owned())
            .collect()
    }

    /// How many communities there are.
    pub fn community_count(&self) -> usize {
        self.read().communities.len()
    }

    /// One community.
    pub fn community(&self, id: &str) -> Option<CommunityRecord> {
        let id = CommunityId::new(id).ok()?;
        self.read().communities.get(&id).cloned()
    }

    /// Whether the community exists.
    pub fn has_community(&self, id: &str) -> bool {
        CommunityId::new(id).is_ok_and(|id| self.read().communities.contains_key(&id))
    }

    /// Commits `writes` and the audit entry of a change, durably, as one batch.
    fn commit_change(
        &self,
        mut writes: BTreeMap<String, Option<Vec<u8>>>,
        mut entry: AuditEntry,
    ) -> Result<AuditEntry, TenancyError> {
        writes.extend(self.entry_writes(&mut entry));
        let mut batch = Batch::default();
        batch.writes.insert(namespace(), writes);
        self.store.commit(batch)?;
        self.store.sync()?;
        tracing::info!(
            actor = %entry.actor.token,
            action = %entry.action,
            target = %entry.target,
            "audit"
        );
        Ok(entry)
    }

    fn entry(
        actor: &Actor,
        community: Option<&CommunityId>,
        action: &str,
        target: String,
        before: Option<Value>,
        after: Option<Value>,
    ) -> AuditEntry {
        AuditEntry {
            seq: 0,
            at_ms: now_ms(),
            actor: actor.clone(),
            community: community.cloned(),
            action: action.to_owned(),
            target,
            before,
            after,
        }
    }

    /// Creates a community (with no plugins).
    pub fn create_community(
        &self,
        actor: &Actor,
        id: CommunityId,
        name: String,
    ) -> Result<CommunityRecord, TenancyError> {
        let _one = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if self.read().communities.contains_key(&id) {
            return Err(TenancyError::CommunityExists(id));
        }
        let now = now_ms();
        let record = CommunityRecord {
            id: id.clone(),
            name,
            created_ms: now,
            updated_ms: now,
        };
        let writes = BTreeMap::from([(format!("{COMMUNITY}{id}"), Some(to_bytes(&record)))]);
        let entry = Self::entry(
            actor,
            Some(&id),
            "community.create",
            id.to_string(),
            None,
            Some(to_json(&record)),
        );
        self.commit_change(writes, entry)?;
        self.write().communities.insert(id, record.clone());
        Ok(record)
    }

    /// Renames a community.
    pub fn update_community(
        &self,
        actor: &Actor,
        id: &str,
        name: String,
    ) -> Result<CommunityRecord, TenancyError> {
        let _one = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self
            .community(id)
            .ok_or_else(|| TenancyError::NoCommunity(id.to_owned()))?;
        let mut record = before.clone();
        record.name = name;
        record.updated_ms = now_ms();
        let writes =
            BTreeMap::from([(format!("{COMMUNITY}{}", record.id), Some(to_bytes(&record)))]);
        let entry = Self::entry(
            actor,
            Some(&record.id),
            "community.update",
            record.id.to_string(),
            Some(to_json(&before)),
            Some(to_json(&record)),
        );
        self.commit_change(writes, entry)?;
        self.write()
            .communities
            .insert(record.id.clone(), record.clone());
        Ok(record)
    }

    // ----- plugins enabled -----

    /// The plugins enabled in a community, by name.
    pub fn enabled(&self, community: &str) -> Vec<Arc<Enablement>> {
        self.read()
            .enabled
            .get(community)
            .map(|m| m.values().map(|e| e.record.clone()).collect())
            .unwrap_or_default()
    }

    /// One plugin's enablement in a community, if it is enabled.
    pub fn enablement(&self, community: &str, plugin: &str) -> Option<Arc<Enablement>> {
        self.read()
            .enabled
            .get(community)?
            .get(plugin)
            .map(|e| e.record.clone())
    }

    /// Enables a plugin in a community, or changes its version, config or grants. The
    /// caller has checked them against the plugin's manifest. Returns whether the
    /// plugin was newly enabled.
    pub fn enable(
        &self,
        actor: &Actor,
        community: &str,
        mut enablement: Enablement,
    ) -> Result<bool, TenancyError> {
        let _one = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let id = self
            .community(community)
            .ok_or_else(|| TenancyError::NoCommunity(community.to_owned()))?
            .id;
        let plugin = enablement.plugin.to_string();
        enablement.updated_ms = now_ms();
        let before = self.enablement(community, &plugin);
        let writes = BTreeMap::from([(
            format!("{ENABLED}{community}/{plugin}"),
            Some(to_bytes(&enablement)),
        )]);
        let entry = Self::entry(
            actor,
            Some(&id),
            if before.is_some() {
                "plugin.configure"
            } else {
                "plugin.enable"
            },
            format!("{community}/{plugin}"),
            before.as_deref().map(to_json),
            Some(to_json(&enablement)),
        );
        self.commit_change(writes, entry)?;
        self.write()
            .enabled
            .entry(community.to_owned())
            .or_default()
            .insert(plugin, Enabled::new(enablement));
        Ok(before.is_none())
    }

    /// Disables a plugin in a community (its state is kept). Returns whether it was
    /// enabled.
    pub fn disable(
        &self,
        actor: &Actor,
        community: &str,
        plugin: &str,
    ) -> Result<bool, TenancyError> {
        let _one = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(before) = self.enablement(community, plugin) else {
            return Ok(false);
        };
        let id = CommunityId::new(community)
            .map_err(|_| TenancyError::NoCommunity(community.to_owned()))?;
        let writes = BTreeMap::from([(format!("{ENABLED}{community}/{plugin}"), None)]);
        let entry = Self::entry(
            actor,
            Some(&id),
            "plugin.disable",
            format!("{community}/{plugin}"),
            Some(to_json(&*before)),
            None,
        );
        self.commit_change(writes, entry)?;
        if let Some(m) = self.write().enabled.get_mut(community) {
            m.remove(plugin);
        }
        Ok(true)
    }

    // ----- tokens -----

    /// The token whose secret this is, if it exists and is not revoked.
    pub fn authenticate(&self, secret: &str) -> Option<TokenInfo> {
        let hash = hash_secret(secret);
        let memory = self.read();
        let record = memory.tokens.get(&hash)?;
        if record.info.revoked_ms.is_some() {
            return None;
        }
        // A token of a community that no longer exists is worth nothing.
        if let Some(c) = &record.info.community
            && !memory.communities.contains_key(c)
        {
            return None;
        }
        Some(record.info.clone())
    }

    /// Creates a token. `community` must be given exactly for `admin` and `device`.
    pub fn create_token(
        &self,
        actor: &Actor,
        role: Role,
        community: Option<CommunityId>,
        label: String,
    ) -> Result<NewToken, TenancyError> {
        if role.is_community_scoped() != community.is_some() {
            return Err(TenancyError::BadScope(if role.is_community_scoped() {
                format!("a {role} token belongs to one community: give `community`")
            } else {
                format!("a {role} token belongs to no community: leave `community` out")
            }));
        }
        let _one = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = &community
            && !self.read().communities.contains_key(c)
        {
            return Err(TenancyError::NoCommunity(c.to_string()));
        }
        let secret = format!("cyt_{}", random_hex(32)?);
        let info = TokenInfo {
            id: format!("tok_{}", random_hex(8)?),
            role,
            community: community.clone(),
            label,
            created_ms: now_ms(),
            created_by: (actor.token != "host").then(|| actor.token.clone()),
            revoked_ms: None,
        };
        let record = TokenRecord {
            info: info.clone(),
            hash: hash_secret(&secret),
        };
        let writes = BTreeMap::from([(format!("{TOKEN}{}", info.id), Some(to_bytes(&record)))]);
        let entry = Self::entry(
            actor,
            community.as_ref(),
            "token.create",
            info.id.clone(),
            None,
            Some(to_json(&info)),
        );
        self.commit_change(writes, entry)?;
        self.write().tokens.insert(record.hash.clone(), record);
        Ok(NewToken { info, secret })
    }

    /// The tokens, revoked ones included, oldest first; those of one community only
    /// when `community` is given.
    pub fn tokens(&self, community: Option<&str>) -> Vec<TokenInfo> {
        let mut tokens: Vec<TokenInfo> = self
            .read()
            .tokens
            .values()
            .filter(|t| {
                community
                    .is_none_or(|c| t.info.community.as_ref().is_some_and(|tc| tc.as_str() == c))
            })
            .map(|t| t.info.clone())
            .collect();
        tokens.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        tokens
    }

    /// One token by id.
    pub fn token(&self, id: &str) -> Option<TokenInfo> {
        self.read()
            .tokens
            .values()
            .find(|t| t.info.id == id)
            .map(|t| t.info.clone())
    }

    /// Revokes a token. Returns it as revoked, or `None` if there is no such token;
    /// revoking a revoked token changes nothing.
    pub fn revoke_token(&self, actor: &Actor, id: &str) -> Result<Option<TokenInfo>, TenancyError> {
        let _one = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(mut record) = self
            .read()
            .tokens
            .values()
            .find(|t| t.info.id == id)
            .cloned()
        else {
            return Ok(None);
        };
        if record.info.revoked_ms.is_some() {
            return Ok(Some(record.info));
        }
        let before = to_json(&record.info);
        record.info.revoked_ms = Some(now_ms());
        let writes = BTreeMap::from([(format!("{TOKEN}{id}"), Some(to_bytes(&record)))]);
        let entry = Self::entry(
            actor,
            record.info.community.as_ref(),
            "token.revoke",
            id.to_owned(),
            Some(before),
            Some(to_json(&record.info)),
        );
        self.commit_change(writes, entry)?;
        let info = record.info.clone();
        self.write().tokens.insert(record.hash.clone(), record);
        Ok(Some(info))
    }

    // ----- audit -----

    /// Records a change made elsewhere (a plugin published) as a write of its own, with
    /// the same durability as the tenancy's own changes. A change that is itself a store
    /// batch takes [`Tenancy::audit_batch`] instead, to commit both together.
    pub fn record(
        &self,
        actor: &Actor,
        community: Option<&CommunityId>,
        action: &str,
        target: String,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<AuditEntry, TenancyError> {
        let _one = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = Self::entry(actor, community, action, target, before, after);
        self.commit_change(BTreeMap::new(), entry)
    }

    /// The store writes of an audit entry, for a caller that commits them in its own
    /// batch together with the change they record (the workflow engine), so that the
    /// change and its entry are durable together or not at all. The entry's sequence
    /// number is taken now; a batch that is never committed leaves a gap.
    pub fn audit_batch(
        &self,
        actor: &Actor,
        community: Option<&CommunityId>,
        action: &str,
        target: String,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Batch {
        let mut entry = Self::entry(actor, community, action, target, before, after);
        let mut batch = Batch::default();
        batch
            .writes
            .insert(namespace(), self.entry_writes(&mut entry));
        batch
    }

    /// Gives `entry` the next sequence number; its keys in the whole log and in its
    /// community's.
    fn entry_writes(&self, entry: &mut AuditEntry) -> BTreeMap<String, Option<Vec<u8>>> {
        let seq = self.audit_seq.fetch_add(1, Ordering::SeqCst) + 1;
        entry.seq = seq;
        let bytes = to_bytes(&*entry);
        let mut writes = BTreeMap::new();
        if let Some(c) = &entry.community {
            writes.insert(format!("{AUDIT_OF}{c}/{seq:020}"), Some(bytes.clone()));
        }
        writes.insert(format!("{AUDIT}{seq:020}"), Some(bytes));
        writes
    }

    /// Audit entries, newest first, with `seq` below `before` when given: those of one
    /// community when `community` is given, all otherwise.
    pub fn audit(
        &self,
        community: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, TenancyError> {
        let prefix = match community {
            Some(c) => format!("{AUDIT_OF}{c}/"),
            None => AUDIT.to_owned(),
        };
        let start = before.map(|b| format!("{prefix}{b:020}"));
        self.store
            .scan_back(&namespace(), &prefix, start.as_deref(), limit)?
            .into_iter()
            .map(|(key, value)| {
                serde_json::from_slice(&value).map_err(|e| TenancyError::Corrupt {
                    key,
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}

impl Admission for Tenancy {
    fn admit(&self, community: &str, plugin: &str) -> Option<Admitted> {
        let memory = self.read();
        Some(memory.enabled.get(community)?.get(plugin)?.admitted.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courtyard_store::SledStore;

    fn seeds() -> BTreeMap<String, SeedPlugin> {
        ["alert-rules", "visitor-access", "canteen"]
            .into_iter()
            .map(|p| {
                (
                    p.to_owned(),
                    SeedPlugin {
                        capabilities: [Capability::State, Capability::Events].into(),
                    },
                )
            })
            .collect()
    }

    fn open(dir: &std::path::Path) -> Tenancy {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("store")).expect("store"));
        Tenancy::open(store, &District::reference().expect("district"), &seeds()).expect("tenancy")
    }

    #[test]
    fn the_seed_is_written_once_and_everything_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (secret, revoked_secret) = {
            let t = open(dir.path());
            assert_eq!(t.community_count(), 68);
            // Plugins the host does not have (taxi-dispatch…) are skipped.
            let nanhu: Vec<String> = t
                .enabled("nanhu")
                .iter()
                .map(|e| e.plugin.to_string())
                .collect();
            assert_eq!(nanhu, ["alert-rules", "canteen", "visitor-access"]);
            let actor = Actor::host();
            t.update_community(&actor, "nanhu", "Nanhu Garden".into())
                .expect("rename");
            t.disable(&actor, "nanhu", "canteen").expect("disable");
            let token = t
                .create_token(
                    &actor,
                    Role::Admin,
                    Some(CommunityId::new("nanhu").expect("id")),
                    "office".into(),
                )
                .expect("token");
            let gone = t
                .create_token(&actor, Role::Operator, None, "old".into())
                .expect("token");
            t.revoke_token(&actor, &gone.info.id).expect("revoke");
            (token.secret, gone.secret)
        };
        let t = open(dir.path());
        assert_eq!(t.community("nanhu").expect("nanhu").name, "Nanhu Garden");
        assert!(t.enablement("nanhu", "canteen").is_none(), "not re-seeded");
        let info = t.authenticate(&secret).expect("valid");
        assert_eq!(info.role, Role::Admin);
        assert_eq!(
            info.community.as_ref().map(CommunityId::as_str),
            Some("nanhu")
        );
        assert!(t.authenticate(&revoked_secret).is_none());
        assert!(t.authenticate("cyt_0000").is_none());
        let log = t.audit(None, None, 10).expect("audit");
        let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [5, 4, 3, 2, 1]);
        // New entries continue the sequence after a reopen.
        let entry = t
            .record(&Actor::host(), None, "test", "x".into(), None, None)
            .expect("record");
        assert_eq!(entry.seq, 6);
        assert_eq!(t.audit(Some("nanhu"), None, 10).expect("audit").len(), 3);
    }

    #[test]
    fn secrets_are_stored_only_as_hashes_and_scopes_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = open(dir.path());
        let actor = Actor::host();
        let token = t
            .create_token(
                &actor,
                Role::Device,
                Some(CommunityId::new("sunjia").expect("id")),
                "gate".into(),
            )
            .expect("token");
        assert!(token.secret.starts_with("cyt_") && token.secret.len() == 68);
        let stored = t.store.scan(&namespace(), TOKEN, None, 100).expect("scan");
        for (_, value) in stored {
            let text = String::from_utf8_lossy(&value);
            assert!(!text.contains(&token.secret[4..]), "{text}");
        }
        assert!(matches!(
            t.create_token(&actor, Role::Device, None, String::new()),
            Err(TenancyError::BadScope(_))
        ));
        assert!(matches!(
            t.create_token(
                &actor,
                Role::Operator,
                Some(CommunityId::new("sunjia").expect("id")),
                String::new()
            ),
            Err(TenancyError::BadScope(_))
        ));
        assert!(matches!(
            t.create_token(
                &actor,
                Role::Device,
                Some(CommunityId::new("atlantis").expect("id")),
                String::new()
            ),
            Err(TenancyError::NoCommunity(_))
        ));
        assert!(matches!(
            t.create_community(
                &actor,
                CommunityId::new("sunjia").expect("id"),
                "again".into()
            ),
            Err(TenancyError::CommunityExists(_))
        ));
    }
}
