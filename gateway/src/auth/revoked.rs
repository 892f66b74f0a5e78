//! A credential that just stopped being valid. Auth names it; whoever holds something opened
//! with it (the relay's sockets) acts on it, so auth needs to know nothing of them.

use crate::domain::UserId;

#[derive(Debug, Clone)]
pub enum Revoked {
    Session {
        user: UserId,
        token_hash: String,
    },
    ApiToken {
        user: UserId,
        token_id: String,
    },
    /// Clerk names the session only, not its user.
    ClerkSession {
        session_id: String,
    },
    User(UserId),
}
