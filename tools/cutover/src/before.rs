//! What a run records of an entity before it first changes it (a [`CutoverEntry::Before`] entry), one type per
//! kind of entity, so that `rollback` reads back exactly what `run` wrote. The JSON layouts are those of the first
//! version (`docs/cutover-formats.md`): a run recorded by it still rolls back.
//!
//! [`CutoverEntry::Before`]: shared::aws::keys::CutoverEntry::Before

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::App;
use shared::domain::cutover::{RoomState, UserState};
use shared::domain::membership::Role;
use shared::identity::{TenantId, UserSlug};

/// A recorded state: whether the entity was absent (so that the run created it).
pub trait Before: Serialize + DeserializeOwned + Send + Sync {
    fn absent(&self) -> bool;
}

impl Before for UserState {
    /// A deactivated user counts as absent: the run brings them back, and its rollback retires them again.
    fn absent(&self) -> bool {
        !self.exists || self.deactivated
    }
}

/// A room before the run (`state: null`: the alias was free).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoomBefore {
    #[serde(default)]
    pub state: Option<RoomState>,
}

impl Before for RoomBefore {
    fn absent(&self) -> bool {
        self.state.is_none()
    }
}

/// A room's members before the run, with the role each one's level read as.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MembersBefore {
    pub exists: bool,
    #[serde(default)]
    pub members: Vec<MemberBefore>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberBefore {
    /// The OpenMeet user slug.
    pub user_id: String,
    pub role: Role,
}

impl MembersBefore {
    /// The room's members as `state` shows them (`None`: no room).
    pub fn of(app: &App, tenant: &TenantId, state: Option<&RoomState>) -> MembersBefore {
        let members = state.map(|room| room.members(app, tenant)).unwrap_or_default();
        MembersBefore {
            exists: state.is_some(),
            members: members.into_iter().map(|(user, role)| MemberBefore { user_id: user.to_string(), role }).collect(),
        }
    }

    /// The members to restore (an entry whose user id no longer parses is left out, as the first version did).
    pub fn wanted(&self) -> Vec<(UserSlug, Role)> {
        self.members.iter().filter_map(|m| Some((UserSlug::parse(&m.user_id).ok()?, m.role))).collect()
    }
}

impl Before for MembersBefore {
    fn absent(&self) -> bool {
        !self.exists
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_the_first_versions() {
        let members = MembersBefore {
            exists: true,
            members: vec![MemberBefore { user_id: "jane".into(), role: Role::Moderator }],
        };
        let text = serde_json::to_string(&members).expect("serialises");
        assert_eq!(text, r#"{"exists":true,"members":[{"userId":"jane","role":"moderator"}]}"#);
        assert_eq!(serde_json::from_str::<MembersBefore>(&text).expect("reads"), members);
        assert_eq!(serde_json::to_string(&RoomBefore::default()).expect("serialises"), r#"{"state":null}"#);
        assert!(RoomBefore::default().absent() && !members.absent());
        let user: UserState =
            serde_json::from_str(r#"{"exists":true,"deactivated":false,"displayName":"Jane","avatarUrl":null}"#)
                .expect("reads");
        assert!(!user.absent());
        // A rollback's retired user is brought back by the next run, and retired again by that run's rollback.
        assert!(UserState { deactivated: true, ..user }.absent());
    }
}
