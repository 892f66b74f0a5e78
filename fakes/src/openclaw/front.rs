//! A TCP forwarder in front of the agent, so a test can hang its open connections the way a
//! stuck agent does (nothing read or written, so no pongs either) or cut them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Open,
    Stalled,
    Cut,
}

type Links = Arc<Mutex<Vec<watch::Sender<Link>>>>;

pub(super) struct Front {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    links: Links,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Front {
    pub(super) async fn spawn(agent: SocketAddr) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("fake openclaw front: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("fake openclaw front: {e}"));
        let links: Links = Arc::default();
        let accepted = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (tx, rx) = watch::channel(Link::Open);
                {
                    let mut links = lock(&accepted);
                    links.retain(|l| !l.is_closed());
                    links.push(tx);
                }
                tokio::spawn(forward(client, agent, rx));
            }
        });
        Front { addr, accept, links }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(super) fn stall_all(&self) {
        self.set_all(Link::Stalled);
    }

    pub(super) fn cut_all(&self) {
        self.set_all(Link::Cut);
    }

    fn set_all(&self, state: Link) {
        for link in lock(&self.links).iter() {
            let _ = link.send(state);
        }
    }

    pub(super) fn shutdown(&self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn forward(mut client: TcpStream, agent: SocketAddr, mut state: watch::Receiver<Link>) {
    let Ok(mut upstream) = TcpStream::connect(agent).await else { return };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.split();
    let (mut agent_read, mut agent_write) = upstream.split();
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        tokio::select! {
            n = client_read.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if agent_write.write_all(&up[..n]).await.is_err() { return },
            },
            n = agent_read.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if client_write.write_all(&down[..n]).await.is_err() { return },
            },
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                if *state.borrow() == Link::Stalled {
                    // Hold both sockets open, reading nothing, until cut.
                    while state.changed().await.is_ok() {
                        if *state.borrow() == Link::Cut {
                            return;
                        }
                    }
                    return;
                }
                if *state.borrow() == Link::Cut {
                    return;
                }
            }
        }
    }
}
