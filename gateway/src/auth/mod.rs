//! Who is calling: local sessions, API tokens and Clerk session tokens.

pub mod admin;
pub mod api_token;
pub mod clerk;
pub mod extract;
pub mod failures;
pub mod hash_pool;
pub mod invite;
pub mod password;
pub mod rate_limit;
pub mod reset;
mod revoked;
pub mod session;
mod session_only;
pub mod svix;
pub mod touch;

pub use admin::AdminUser;
pub use extract::{AuthUser, AuthVia, RequestUser, bearer_credential};
pub use revoked::Revoked;
pub use session_only::SessionUser;

/// Why the sign-up policy kept a new account out, in a sentence.
pub fn signup_refusal(refusal: crate::db::users::Refusal) -> crate::error::AppError {
    use crate::db::users::Refusal;
    use crate::error::AppError;
    match refusal {
        Refusal::Closed => AppError::forbidden(
            "signups_closed",
            "This server is not taking new accounts. Ask its operator if you should have one.",
        ),
        Refusal::InviteRequired => AppError::forbidden(
            "invite_required",
            "This server takes new accounts by invitation only. Enter the invite code you were given.",
        ),
        Refusal::InviteInvalid => AppError::forbidden(
            "invite_invalid",
            "That invite code is not valid: it may be mistyped, used up or expired. Ask for a new one.",
        ),
    }
}
