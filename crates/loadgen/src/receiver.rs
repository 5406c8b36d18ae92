//! `receiver`: a clinic's webhook receiver for the chaos suite. It answers every POST with
//! 200 and appends one line per message (`id event appointment_id`) to a file, flushed
//! before it answers, so what it acknowledged is on disk when xtask counts. It does not
//! check signatures: the server's tests do; here only delivery counts.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::Value;

/// The file the lines go to, shared by the workers.
type Sink = Arc<Mutex<std::fs::File>>;

/// `POST /…`: records the batch, then answers 200.
async fn deliver(sink: web::Data<Sink>, body: web::Bytes) -> HttpResponse {
    let Ok(Value::Array(messages)) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut lines = String::new();
    for message in &messages {
        let field = |name: &str| message.get(name).and_then(Value::as_str).unwrap_or("-");
        lines.push_str(&format!(
            "{} {} {}\n",
            field("id"),
            field("event"),
            field("appointment_id")
        ));
    }
    let mut file = sink
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match file.write_all(lines.as_bytes()).and_then(|()| file.flush()) {
        Ok(()) => HttpResponse::Ok().finish(),
        // Not acknowledged, so the server keeps the messages and tries again.
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// Serves the receiver on `bind` until killed; `GET /health` answers 200 for readiness.
pub fn serve(bind: &str, out: PathBuf) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .map_err(|e| format!("cannot open {}: {e}", out.display()))?;
    let sink: Sink = Arc::new(Mutex::new(file));
    actix_web::rt::System::new().block_on(async {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(Arc::clone(&sink)))
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .route("/health", web::get().to(HttpResponse::Ok))
                .default_service(web::post().to(deliver))
        })
        .workers(1);
        eprintln!("webhook receiver listening on {bind}");
        server
            .bind(bind)
            .map_err(|e| format!("cannot listen on {bind}: {e}"))?
            .run()
            .await
            .map_err(|e| format!("receiver: {e}"))
    })
}
