//! Glance v2 HTTP routes under `/image` (placeholder: filled in next).

use crate::app::App;
use axum::Router;
use std::sync::Arc;

pub fn router() -> Router<Arc<App>> {
    Router::new()
}
