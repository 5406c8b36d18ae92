//! One login shared by every request of a run, refreshed before its access token expires.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Refresh this long before the access token expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The current token pair.
#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: String,
    expires: Instant,
}

/// An HTTP client logged in to one server.
#[derive(Debug, Clone)]
pub struct Session {
    /// The client; its connection pool is shared by every request.
    pub client: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    pub base: String,
    tokens: Arc<RwLock<Option<Tokens>>>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl Session {
    /// A session that sends no token (for the bare ceiling server).
    pub fn anonymous(client: reqwest::Client, base: &str) -> Self {
        Self {
            client,
            base: base.to_owned(),
            tokens: Arc::default(),
            refreshing: Arc::default(),
        }
    }

    /// Logs in with `POST /api/v1/auth/login`.
    pub async fn login(
        client: reqwest::Client,
        base: &str,
        email: &str,
        password: &str,
    ) -> Result<Self, String> {
        let session = Self::anonymous(client, base);
        let body = serde_json::json!({"email": email, "password": password});
        let tokens = session.token_request("/api/v1/auth/login", &body).await?;
        session.store(tokens);
        Ok(session)
    }

    /// The same login on another server of one deployment (instances share the JWT secret),
    /// sending through `client`.
    pub fn on(&self, client: reqwest::Client, base: &str) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            tokens: Arc::clone(&self.tokens),
            refreshing: Arc::clone(&self.refreshing),
        }
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the current bearer token, refreshed first when it is about to expire.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        let builder = self.client.request(method, self.url(path));
        match self.bearer().await? {
            Some(token) => Ok(builder.bearer_auth(token)),
            None => Ok(builder),
        }
    }

    /// The access token, if logged in; refreshes it once (not once per caller) when due.
    pub async fn bearer(&self) -> Result<Option<String>, String> {
        let due = |tokens: &Option<Tokens>| {
            tokens
                .as_ref()
                .map(|t| t.expires.saturating_duration_since(Instant::now()) < REFRESH_MARGIN)
        };
        let current = self.read();
        match due(&current) {
            None => return Ok(None),
            Some(false) => return Ok(current.map(|t| t.access)),
            Some(true) => {}
        }
        let _guard = self.refreshing.lock().await;
        let current = self.read();
        if let (Some(true), Some(old)) = (due(&current), current) {
            let body = serde_json::json!({"refresh_token": old.refresh});
            let tokens = self.token_request("/api/v1/auth/refresh", &body).await?;
            self.store(tokens);
        }
        Ok(self.read().map(|t| t.access))
    }

    fn read(&self) -> Option<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn store(&self, tokens: Tokens) {
        *self
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tokens);
    }

    /// Posts `body` to a login or refresh route and reads the token pair it answers.
    async fn token_request(&self, path: &str, body: &Value) -> Result<Tokens, String> {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("POST {path}: {status}: {text}"));
        }
        let json: Value =
            serde_json::from_str(&text).map_err(|e| format!("POST {path}: {e}: {text}"))?;
        let field = |name: &str| {
            json.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("POST {path}: no `{name}` in {text}"))
        };
        let expires_in = json
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(900);
        Ok(Tokens {
            access: field("access_token")?,
            refresh: field("refresh_token")?,
            expires: Instant::now() + Duration::from_secs(expires_in),
        })
    }
}
