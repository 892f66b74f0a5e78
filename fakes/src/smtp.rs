//! A stateful fake SMTP server (RFC 5321, plain TCP): EHLO/HELO, MAIL, RCPT, DATA with dot
//! unstuffing, RSET, NOOP, QUIT. Every accepted message is kept for the test to read. Replies
//! can be injected: the next `MAIL FROM` answered with a 4xx/5xx, or a connection that never
//! answers (a timeout).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent, dot-unstuffed, with CRLF line ends.
    pub data: String,
}

#[derive(Default)]
struct State {
    mails: Vec<Mail>,
    /// Replies the next `MAIL FROM` commands get instead of 250, in order.
    mail_from_replies: Vec<String>,
    /// The next connections get no greeting at all.
    silent_connections: usize,
    connections: usize,
}

#[derive(Clone)]
pub struct FakeSmtp {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
}

/// A message body may hold at most this many bytes, as a real server's SIZE limit would.
const MAX_DATA: usize = 1024 * 1024;

impl FakeSmtp {
    pub async fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake SMTP server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        Self { addr, state }
    }

    /// `smtp://127.0.0.1:<port>`: plain SMTP, as `--smtp-url` takes it.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.state.lock().unwrap().mails.clone()
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// The next `MAIL FROM` is answered with this reply (e.g. `451 4.3.0 try again later`).
    pub fn reject_next_mail(&self, reply: &str) {
        self.state.lock().unwrap().mail_from_replies.push(reply.to_string());
    }

    /// The next `n` connections are accepted and never answered.
    pub fn stall_next_connections(&self, n: usize) {
        self.state.lock().unwrap().silent_connections += n;
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let silent = {
        let mut s = state.lock().unwrap();
        s.connections += 1;
        let silent = s.silent_connections > 0;
        s.silent_connections = s.silent_connections.saturating_sub(1);
        silent
    };
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if silent {
        let mut sink = String::new();
        while lines.read_line(&mut sink).await? > 0 {
            sink.clear();
        }
        return Ok(());
    }
    write.write_all(b"220 fake-smtp ESMTP ready\r\n").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-fake-smtp\r\n250-8BITMIME\r\n250 SIZE 1048576".into(),
            "HELO" => "250 fake-smtp".into(),
            "MAIL" => {
                let injected = {
                    let mut s = state.lock().unwrap();
                    (!s.mail_from_replies.is_empty()).then(|| s.mail_from_replies.remove(0))
                };
                match (injected, address_of(&command, "FROM:")) {
                    (Some(reply), _) => reply,
                    (None, Some(address)) => {
                        from = Some(address);
                        to.clear();
                        "250 2.1.0 OK".into()
                    }
                    (None, None) => "501 5.5.4 MAIL FROM:<address> expected".into(),
                }
            }
            "RCPT" => match (&from, address_of(&command, "TO:")) {
                (None, _) => "503 5.5.1 MAIL first".into(),
                (Some(_), Some(address)) if to.len() < 100 => {
                    to.push(address);
                    "250 2.1.5 OK".into()
                }
                (Some(_), Some(_)) => "452 4.5.3 too many recipients".into(),
                (Some(_), None) => "501 5.5.4 RCPT TO:<address> expected".into(),
            },
            "DATA" if from.is_none() || to.is_empty() => "503 5.5.1 MAIL and RCPT first".into(),
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                let mut too_big = false;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    if data.len() + unstuffed.len() > MAX_DATA {
                        too_big = true;
                    } else {
                        data.push_str(unstuffed);
                    }
                }
                let (Some(sender), false) = (from.take(), too_big) else {
                    to.clear();
                    write.write_all(b"552 5.3.4 message too big\r\n").await?;
                    continue;
                };
                state.lock().unwrap().mails.push(Mail { from: sender, to: std::mem::take(&mut to), data });
                "250 2.0.0 queued".into()
            }
            "RSET" => {
                from = None;
                to.clear();
                "250 OK".into()
            }
            "NOOP" => "250 OK".into(),
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not implemented".into(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// The address in `MAIL FROM:<a>` / `RCPT TO:<a>` (parameters after it ignored).
fn address_of(command: &str, prefix: &str) -> Option<String> {
    let rest = command.get(5..)?.trim_start();
    let rest = rest.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(prefix)).map(|_| &rest[prefix.len()..])?;
    let rest = rest.trim_start().strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_string())
}
