//! `/api/v1/dashboard/stats`: the clinic's day at a glance, for front-desk screens.

use actix_web::{HttpResponse, web};

use crate::{ApiError, AppState, Authenticated};

/// Registers the dashboard route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/dashboard/stats").route(web::get().to(stats)));
}

async fn stats(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let dashboard = state.services.dashboard.stats(&auth.0).await?;
    // Counts only, no patient data; screens polling it may reuse an answer for a few seconds.
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "private, max-age=5"))
        .json(dashboard))
}
