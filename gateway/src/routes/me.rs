use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{AuthUser, AuthVia};
use crate::db::users;
use crate::error::{AppError, AppResult};

pub async fn get(state: AppState, auth: AuthUser) -> AppResult<axum::Json<Value>> {
    let user = users::find_by_id(&*state.db.conn()?, &auth.user_id).await?.ok_or_else(AppError::unauthenticated)?;
    let via = match auth.via {
        AuthVia::Session { .. } => "session",
        AuthVia::ApiToken { .. } => "api_token",
        AuthVia::Clerk { .. } => "clerk",
    };
    Ok(axum::Json(json!({ "id": user.id, "email": user.email, "created_at": user.created_at, "auth": via })))
}
