//! The district as data: its communities, which plugins each community runs (with which
//! version, config and capability grants), the API tokens and their roles, and the audit
//! log of every change. No HTTP, no wasmtime.
//!
//! [`Tenancy`] keeps all of it in the store (the `$district` namespace), and a copy in
//! memory for the hot paths (authenticating a token, admitting a plugin call). A fresh
//! data directory is seeded from a [`District`] file (`district.toml`).
//!
//! Tokens are 256-bit random strings, shown once when created and stored only as their
//! SHA-256 hash.

mod directory;
mod district;

pub use directory::{
    Actor, AuditEntry, CommunityRecord, Enablement, NewToken, Role, SeedPlugin, Tenancy,
    TenancyError, TokenInfo,
};
pub use district::{Community, CommunityId, District, DistrictError, InvalidCommunityId};
