//! The HTTP ceiling: actix-web answering a constant JSON object, with nothing behind it.
//! Measured with the same client on the same machine, it bounds what any route can reach.

use actix_web::{App, HttpResponse, HttpServer, web};

/// `GET /json`: a small JSON object, serialized per request like a real handler's answer.
async fn json() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"message": "Hello, World!"}))
}

/// Serves `GET /json` on `bind` until killed.
pub fn serve(bind: &str, workers: Option<usize>) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async {
        let mut server = HttpServer::new(|| App::new().route("/json", web::get().to(json)));
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        eprintln!("ceiling server listening on {bind}");
        server
            .bind(bind)
            .map_err(|e| format!("cannot listen on {bind}: {e}"))?
            .run()
            .await
            .map_err(|e| format!("ceiling server: {e}"))
    })
}
