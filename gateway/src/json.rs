//! Extractors that reject with [`AppError`] instead of axum's plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::AppError;

/// JSON body. Request types use `#[serde(deny_unknown_fields)]` so typos are errors, not no-ops.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct Json<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);
