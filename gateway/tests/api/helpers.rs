use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use gateway::app::AppState;
use gateway::config::{Cli, Command};
use gateway::startup::Server;
use reqwest::{Client, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub origin: String,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    extra: Vec<String>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the real server with extra `roost serve` flags.
    pub async fn spawn_with(extra: &[&str]) -> Self {
        Self::spawn_in(tempfile::tempdir().expect("temp dir"), extra).await
    }

    /// Stops the server, waits until it has stopped, and starts a new one on the same data.
    pub async fn restart(mut self) -> Self {
        self.shut_down();
        if let Some(server) = self.server.take() {
            let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), server).await;
            assert!(stopped.is_ok(), "the server stopped");
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let extra: Vec<String> = std::mem::take(&mut self.extra);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Self::spawn_in(dir, &extra).await
    }

    async fn spawn_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let data_dir = dir.path().to_str().unwrap().to_string();
        let mut argv = vec!["roost", "serve", "--listen", "127.0.0.1:0", "--data-dir", &data_dir];
        if !extra.contains(&"--agent-provider") {
            argv.extend_from_slice(&["--agent-provider", "fake"]);
        }
        argv.extend_from_slice(extra);
        let Command::Serve(args) = Cli::try_parse_from(argv).expect("valid flags").command else { unreachable!() };
        let server = Server::build(&args).await.expect("server starts");
        let addr = server.local_addr();
        let metrics_addr = server.metrics_addr();
        let state = server.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            metrics_addr,
            origin: state.site.public_origin.clone(),
            state,
            dir,
            shutdown: Some(tx),
            server: Some(server),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("roost.db")
    }

    /// A browser-like client: keeps cookies.
    pub fn browser(&self) -> Client {
        Client::builder().cookie_store(true).build().unwrap()
    }

    /// POST JSON as a same-origin browser page would (with `Origin`).
    pub async fn post(&self, client: &Client, path: &str, body: &Value) -> Response {
        client.post(self.url(path)).header("Origin", &self.origin).json(body).send().await.unwrap()
    }

    pub async fn get(&self, client: &Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn signup(&self, client: &Client, email: &str) -> Response {
        self.post(client, "/api/auth/signup", &json!({ "email": email, "password": PASSWORD })).await
    }

    /// A signed-up browser client and its user id.
    pub async fn signed_up_user(&self, email: &str) -> (Client, String) {
        let client = self.browser();
        let res = self.signup(&client, email).await;
        assert_eq!(res.status(), 201, "signup of {email}");
        let body: Value = res.json().await.unwrap();
        (client, body["user"]["id"].as_str().unwrap().to_string())
    }

    pub async fn create_token(&self, client: &Client, name: &str) -> Value {
        let res = self.post(client, "/api/tokens", &json!({ "name": name })).await;
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    }

    /// GET as the browser holding this session cookie, as JSON.
    pub async fn json_as(&self, cookie: &str, path: &str) -> Value {
        reqwest::Client::new().get(self.url(path)).header("cookie", cookie).send().await.unwrap().json().await.unwrap()
    }

    /// A write from the same-origin page of the browser holding this session cookie.
    pub async fn send_as(&self, cookie: &str, method: reqwest::Method, path: &str, body: Option<&Value>) -> Response {
        let request = reqwest::Client::new()
            .request(method, self.url(path))
            .header("Origin", &self.origin)
            .header("cookie", cookie);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        request.send().await.unwrap()
    }

    /// GET with `Authorization: Bearer <token>`, as JSON.
    pub async fn json_bearer(&self, token: &str, path: &str) -> Value {
        reqwest::Client::new().get(self.url(path)).bearer_auth(token).send().await.unwrap().json().await.unwrap()
    }

    /// Signs up through the API and returns the session cookie (`name=value`) and the user id.
    pub async fn signed_up_cookie(&self, email: &str) -> (String, String) {
        let res = self.signup(&reqwest::Client::new(), email).await;
        assert_eq!(res.status(), 201);
        let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let body: Value = res.json().await.unwrap();
        (cookie, body["user"]["id"].as_str().unwrap().to_string())
    }

    /// Opens `/ws` as a same-origin browser page with this cookie.
    pub async fn ws(&self, cookie: &str, query: &str) -> crate::ws::Client {
        crate::ws::Client::connect(
            &format!("ws://{}/ws{query}", self.addr),
            &[("cookie", cookie), ("origin", &self.origin)],
        )
        .await
        .expect("websocket opens")
    }

    /// A WebSocket upgrade of `/ws{query}` as plain HTTP, to read a refusal's status and body.
    pub async fn ws_upgrade_refusal(&self, cookie: &str, query: &str) -> Response {
        reqwest::Client::new()
            .get(self.url(&format!("/ws{query}")))
            .header("cookie", cookie)
            .header("origin", &self.origin)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .unwrap()
    }

    /// Runs one SQL statement against the test database and returns the first column of each row.
    pub async fn sql(&self, sql: &str) -> Vec<libsql::Value> {
        let conn = self.state.db.conn().unwrap();
        let mut rows = conn.query(sql, ()).await.unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            out.push(row.get_value(0).unwrap());
        }
        out
    }

    pub async fn count(&self, table: &str) -> i64 {
        match self.sql(&format!("SELECT count(*) FROM {table}")).await[0] {
            libsql::Value::Integer(n) => n,
            ref other => panic!("count returned {other:?}"),
        }
    }

    /// Every byte of the database files, for "no secret at rest" checks.
    pub fn db_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal"] {
            let path = format!("{}{suffix}", self.db_path().display());
            if Path::new(&path).exists() {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
        bytes
    }
}

impl TestApp {
    /// Stops the server as SIGTERM would.
    pub fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn error_code(res: Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("error responses are JSON");
    let code = body["error"]["code"].as_str().expect("error.code is present").to_string();
    let message = body["error"]["message"].as_str().expect("error.message is present");
    assert_sentence(message);
    (status, code)
}

/// Roost's errors are shown to people as they are: a full sentence, capital first, stop at the end.
pub fn assert_sentence(message: &str) {
    let first = message.chars().next().expect("error.message is not empty");
    let starts = first.is_uppercase() || first.is_ascii_digit() || matches!(first, '`' | '"' | '“');
    let ends = message.trim_end_matches(['"', '”', ')']).ends_with(['.', '?', '!']);
    assert!(starts && ends, "error messages are sentences: {message:?}");
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Waits until `condition` holds, checking every 20 ms; panics after `WAIT`.
pub async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_until_within(what, crate::ws::WAIT, condition).await
}

/// [`wait_until`] with a deadline of its own (real agents are slow).
pub async fn wait_until_within<F, Fut>(what: &str, within: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A `--plans` file in `dir`: a free plan of `free_credits` a month, and `model` at 1 credit per
/// prompt token and 2 per reply token.
pub fn plans_file(dir: &std::path::Path, free_credits: u64, model: &str) -> String {
    let path = dir.join("plans.toml");
    let text = format!(
        "[free]\nname = \"Free\"\nmonthly_credits = {free_credits}\n\
         [models.\"{model}\"]\ninput_per_million = 1_000_000\noutput_per_million = 2_000_000\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}
