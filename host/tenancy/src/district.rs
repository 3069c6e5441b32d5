//! The district file: the communities a fresh data directory is seeded with.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// A community id: a short slug such as `nanhu` or `beigong-east`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[a-z][a-z0-9-]{0,39}$")]
pub struct CommunityId(String);

/// Why a community id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "community id {0:?} is not valid: 1 to 40 characters, lowercase letters, digits and '-', starting with a letter"
)]
pub struct InvalidCommunityId(pub String);

impl CommunityId {
    /// Parses a community id.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidCommunityId> {
        let id = id.into();
        let ok = (1..=40).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(id))
        } else {
            Err(InvalidCommunityId(id))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CommunityId {
    type Error = InvalidCommunityId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<CommunityId> for String {
    fn from(id: CommunityId) -> Self {
        id.0
    }
}

impl fmt::Display for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One community of the district file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Community {
    /// Its id.
    pub id: CommunityId,
    /// Its name, for people.
    pub name: String,
    /// The plugins it starts with (its scenario mix), by name.
    #[serde(default)]
    pub plugins: Vec<String>,
}

/// The district: the communities one host serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct District {
    /// The district's name.
    pub name: String,
    /// Its IANA time zone (`Asia/Shanghai`), for schedules.
    pub time_zone: String,
    /// Its communities, in the file's order.
    pub communities: Vec<Community>,
}

/// Why a district file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DistrictError {
    /// Not TOML, or not a district (unknown field, bad id…); the message gives the line.
    #[error("district file: {0}")]
    Parse(String),
    /// The same community id twice.
    #[error("district file: community {0} is listed twice")]
    Duplicate(CommunityId),
    /// No communities.
    #[error("district file: no communities")]
    Empty,
}

/// The reference district file of the repository.
const REFERENCE: &str = include_str!("../../../district.toml");

impl District {
    /// Parses a district file.
    pub fn parse(toml_text: &str) -> Result<Self, DistrictError> {
        let district: District =
            toml::from_str(toml_text).map_err(|e| DistrictError::Parse(e.to_string()))?;
        if district.communities.is_empty() {
            return Err(DistrictError::Empty);
        }
        let mut seen = BTreeSet::new();
        for c in &district.communities {
            if !seen.insert(&c.id) {
                return Err(DistrictError::Duplicate(c.id.clone()));
            }
        }
        Ok(district)
    }

    /// The reference district of the repository (`district.toml`): 68 communities.
    pub fn reference() -> Result<Self, DistrictError> {
        Self::parse(REFERENCE)
    }

    /// The community with this id.
    pub fn community(&self, id: &str) -> Option<&Community> {
        self.communities.iter().find(|c| c.id.as_str() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_district_has_68_communities_starting_with_the_briefs() {
        let d = District::reference().expect("valid");
        assert_eq!(d.communities.len(), 68);
        let first: Vec<_> = d
            .communities
            .iter()
            .take(3)
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(first, ["nanhu", "beigong-east", "sunjia"]);
        assert!(d.community("sunjia").is_some());
        assert!(d.community("atlantis").is_none());
    }

    #[test]
    fn ids_are_checked() {
        assert!(CommunityId::new("beigong-east").is_ok());
        for bad in ["", "Nanhu", "9a", "a b", "a/b", &"a".repeat(41)] {
            assert!(CommunityId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let dup = "name='d'\ntime_zone='UTC'\n[[communities]]\nid='a'\nname='A'\n[[communities]]\nid='a'\nname='A2'\n";
        assert!(matches!(
            District::parse(dup),
            Err(DistrictError::Duplicate(_))
        ));
        let bad_id = "name='d'\ntime_zone='UTC'\n[[communities]]\nid='A'\nname='A'\n";
        let err = District::parse(bad_id).expect_err("bad id").to_string();
        assert!(err.contains("not valid"), "{err}");
        let unknown =
            "name='d'\ntime_zone='UTC'\ncolour='red'\n[[communities]]\nid='a'\nname='A'\n";
        assert!(District::parse(unknown).is_err());
        assert!(matches!(
            District::parse("name='d'\ntime_zone='UTC'\ncommunities=[]\n"),
            Err(DistrictError::Empty)
        ));
    }
}
