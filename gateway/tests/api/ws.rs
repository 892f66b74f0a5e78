//! A WebSocket test client that records every byte it receives.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every text frame received, in order.
    pub received: Vec<String>,
    pub close: Option<(u16, String)>,
    /// How long `next` waits for a frame (real agents need minutes to start on a busy machine).
    pub wait: Duration,
}

pub const WAIT: Duration = Duration::from_secs(20);

impl Client {
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name = axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { socket, received: Vec::new(), close: None, wait: WAIT })
    }

    /// A client whose TCP receive window is tiny, so that a server writing to it while it does
    /// not read backs up at once.
    pub async fn connect_with_small_window(url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            let name = axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let host = request.uri().authority().unwrap().as_str().parse().unwrap();
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.set_recv_buffer_size(4096).unwrap();
        let stream = tcp.connect(host).await.unwrap();
        let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await.unwrap();
        Self { socket, received: Vec::new(), close: None, wait: WAIT }
    }

    /// The next JSON frame, or `None` once the socket closed (see `close`).
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(self.wait, self.socket.next()).await.expect("a frame within the wait");
            match message {
                Some(Ok(Message::Text(text))) => {
                    self.received.push(text.to_string());
                    return Some(serde_json::from_str(text.as_str()).expect("frames are JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return None;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Reads until a frame matches, returning it.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next().await {
                Some(frame) if pred(&frame) => return frame,
                Some(_) => continue,
                None => panic!("socket closed ({:?}) while waiting for {what}", self.close),
            }
        }
    }

    pub async fn until_event(&mut self, event: &str) -> Value {
        self.until(event, |f| f["event"] == event).await
    }

    /// Reads until the socket closes; returns the close code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        while self.next().await.is_some() {}
        self.close.clone().unwrap_or((1006, String::new()))
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket.send(Message::text(frame.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: String) {
        let _ = self.socket.send(Message::text(text)).await;
    }

    pub async fn request(&mut self, id: &str, method: &str, params: Value) {
        self.send(json!({ "type": "req", "id": id, "method": method, "params": params })).await;
    }

    /// Reads up to `roost.ready`, returning the stages of the `roost.status` events on the way.
    pub async fn stages_until_ready(&mut self) -> Vec<String> {
        let mut stages = Vec::new();
        loop {
            let frame = self.next().await.expect("the socket stays open until ready");
            match frame["event"].as_str() {
                Some("roost.status") => stages.push(frame["payload"]["stage"].as_str().unwrap_or_default().to_string()),
                Some("roost.ready") => return stages,
                _ => {}
            }
        }
    }

    pub async fn ready(&mut self) -> Value {
        self.until_event("roost.ready").await
    }

    /// Sends `chat.send` and reads until that run's final event; returns the reply text.
    pub async fn chat(&mut self, session: &str, message: &str) -> String {
        let run = uuid::Uuid::new_v4().to_string();
        self.request(
            &format!("send-{run}"),
            "chat.send",
            json!({ "sessionKey": session, "message": message, "idempotencyKey": run }),
        )
        .await;
        let done = self
            .until("final", |f| {
                f["event"] == "chat" && f["payload"]["runId"] == run.as_str() && f["payload"]["state"] == "final"
            })
            .await;
        done["payload"]["message"]["content"][0]["text"].as_str().unwrap_or_default().to_string()
    }

    pub fn all_bytes(&self) -> String {
        self.received.join("\n")
    }
}
