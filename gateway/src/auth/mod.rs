//! Who is calling: local sessions, API tokens and Clerk session tokens.

pub mod api_token;
pub mod clerk;
pub mod extract;
pub mod password;
pub mod rate_limit;
pub mod session;
pub mod svix;
pub mod touch;

pub use extract::{AuthUser, AuthVia};
