//! What everyone may see of a user: the payload of the public user events and of the users
//! list. The email address is not here: it goes only to its owner (the private
//! `user_email_changed` event, and the owner's own responses).

use schemars::JsonSchema;
use serde::Serialize;

use crate::db::User;

/// A user's public fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct UserPublic {
    /// Assigned by the database, never reused.
    pub id: i64,
    /// Unique, compared without regard to case.
    pub username: String,
    /// 1 when created, incremented by every update: lets a client drop stale updates.
    pub version: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

impl From<&User> for UserPublic {
    fn from(user: &User) -> Self {
        UserPublic {
            id: user.id,
            username: user.username.clone(),
            version: user.version,
            created_at: user.created_at.clone(),
            updated_at: user.updated_at.clone(),
        }
    }
}

/// A user as a response shows it: the public fields, and the email only to its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserView {
    /// The public fields.
    #[serde(flatten)]
    pub user: UserPublic,
    /// Only in responses to the user itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl UserView {
    /// `user` as `viewer` may see it: with the email if the viewer is the user.
    pub fn of(user: User, viewer: Option<i64>) -> Self {
        let public = UserPublic::from(&user);
        let email = (viewer == Some(user.id)).then_some(user.email);
        UserView {
            user: public,
            email,
        }
    }

    /// `user` as its owner sees it.
    pub fn owned(user: User) -> Self {
        let id = user.id;
        Self::of(user, Some(id))
    }
}

impl From<&UserView> for UserPublic {
    fn from(view: &UserView) -> Self {
        view.user.clone()
    }
}
