//! Pieces the Fly tests share: a client of the fake Machines API that never sleeps between
//! retries, and a forwarder whose target is known only after the app has started.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fakes::fly::FakeFly;
use provisioner::fly::{ApiToken, FlyClient, FlyConfig, RetryPolicy, Timeouts};

pub fn client_for(fake: &FakeFly) -> FlyClient {
    let retry = RetryPolicy { sleep: Arc::new(|_| Box::pin(async {})), ..RetryPolicy::standard() };
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        call: Duration::from_secs(5),
        create: Duration::from_secs(5),
        wait_slack: Duration::from_secs(2),
    };
    FlyClient::new(FlyConfig { base_url: fake.base_url(), token: ApiToken::new(fake.token()), timeouts, retry })
        .expect("a valid token")
}

/// Accepts on a port known before the app starts and forwards to the address set later: what
/// sits behind it (an agent, a sidecar) needs the user's secrets, known only after signup.
pub async fn late_forwarder() -> (SocketAddr, Arc<Mutex<Option<SocketAddr>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let to = target.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let Some(next) = *to.lock().unwrap() else { continue };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(next).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, target)
}
