//! Who is calling: local sessions, API tokens and Clerk session tokens.

pub mod api_token;
pub mod clerk;
pub mod extract;
pub mod failures;
pub mod hash_pool;
pub mod password;
pub mod rate_limit;
mod revoked;
pub mod session;
mod session_only;
pub mod svix;
pub mod touch;

pub use extract::{AuthUser, AuthVia, RequestUser, bearer_credential};
pub use revoked::Revoked;
pub use session_only::SessionUser;
