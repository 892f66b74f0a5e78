//! Who holds a connection. HTTP connections and established WebSockets have separate budgets,
//! so clients that never finish a request cannot take the room chat sockets need, nor the
//! process's file descriptors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

pub struct Connections {
    max_http: usize,
    max_websockets: usize,
    /// Connections still speaking HTTP, by id.
    http: Mutex<HashMap<u64, Arc<Slot>>>,
    websockets: AtomicUsize,
    next_id: AtomicU64,
    epoch: Instant,
}

/// One accepted connection, shared by its socket, its requests and the table above.
pub struct Slot {
    id: u64,
    in_flight: AtomicUsize,
    /// Milliseconds since `Connections::epoch` when the last request ended (or it was accepted).
    idle_since_ms: AtomicU64,
    upgraded: AtomicBool,
    evicted: Notify,
    connections: Arc<Connections>,
}

/// Lives as long as the socket (inside the upgraded stream, for a WebSocket) and frees its place.
pub struct SlotGuard(Arc<Slot>);

/// A request in progress on a connection; its connection is not evicted meanwhile.
pub struct Busy(Arc<Slot>);

/// A place among the WebSockets, held while an upgrade is answered.
pub struct WebSocketReservation(Arc<Connections>);

impl Connections {
    pub fn new(max_http: usize, max_websockets: usize) -> Arc<Self> {
        Arc::new(Self {
            max_http,
            max_websockets,
            http: Mutex::new(HashMap::new()),
            websockets: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// A place for a new connection. When every place is taken, the connection idle longest
    /// (no request in progress: still sending headers, or kept alive) is closed to make room;
    /// `None` when every connection is busy.
    pub fn admit(self: &Arc<Self>) -> Option<(Arc<Slot>, SlotGuard)> {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        if http.len() >= self.max_http {
            let idlest = http
                .values()
                .filter(|slot| slot.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|slot| slot.idle_since_ms.load(Ordering::Acquire))
                .map(|slot| slot.id)?;
            if let Some(evicted) = http.remove(&idlest) {
                evicted.evicted.notify_one();
                metrics::counter!("http_connections_evicted_total").increment(1);
            }
        }
        let slot = Arc::new(Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            upgraded: AtomicBool::new(false),
            evicted: Notify::new(),
            connections: self.clone(),
        });
        http.insert(slot.id, slot.clone());
        Some((slot.clone(), SlotGuard(slot)))
    }

    pub fn reserve_websocket(self: &Arc<Self>) -> Option<WebSocketReservation> {
        self.websockets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_websockets).then_some(n + 1))
            .ok()
            .map(|_| WebSocketReservation(self.clone()))
    }

    #[cfg(test)]
    pub fn http_count(&self) -> usize {
        self.http.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    #[cfg(test)]
    pub fn websocket_count(&self) -> usize {
        self.websockets.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

impl Slot {
    pub fn begin_request(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// The upgrade was answered 101: from now on the socket counts as a WebSocket.
    pub fn became_websocket(&self, reservation: WebSocketReservation) {
        std::mem::forget(reservation);
        self.upgraded.store(true, Ordering::Release);
        self.connections.http.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }

    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// Resolves once this connection was closed to make room for another.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let slot = &self.0;
        if slot.upgraded.load(Ordering::Acquire) {
            slot.connections.websockets.fetch_sub(1, Ordering::AcqRel);
        } else {
            slot.connections.http.lock().unwrap_or_else(|e| e.into_inner()).remove(&slot.id);
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let slot = &self.0;
        slot.idle_since_ms.store(slot.connections.now_ms(), Ordering::Release);
        slot.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for WebSocketReservation {
    fn drop(&mut self) {
        self.0.websockets.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_the_idlest_connection_and_spares_busy_ones() {
        let connections = Connections::new(2, 1);
        let (busy_slot, _busy_guard) = connections.admit().unwrap();
        let _request = busy_slot.begin_request();
        let (_idle_slot, _idle_guard) = connections.admit().unwrap();
        let (_third, _third_guard) = connections.admit().expect("the idle connection makes room");
        assert_eq!(connections.http_count(), 2);
        assert!(connections.http.lock().unwrap().contains_key(&busy_slot.id), "a busy connection stays");
        let _fourth_request = _third.begin_request();
        assert!(connections.admit().is_none(), "every connection is busy");
    }

    #[test]
    fn websockets_have_their_own_budget_until_their_socket_closes() {
        let connections = Connections::new(1, 1);
        let (slot, guard) = connections.admit().unwrap();
        slot.became_websocket(connections.reserve_websocket().unwrap());
        assert_eq!((connections.http_count(), connections.websocket_count()), (0, 1));
        assert!(connections.reserve_websocket().is_none());
        let (_other, _other_guard) = connections.admit().expect("the WebSocket does not count as HTTP");
        drop(guard);
        assert_eq!(connections.websocket_count(), 0);
        drop(connections.reserve_websocket().unwrap());
        assert_eq!(connections.websocket_count(), 0, "an unused reservation is given back");
    }
}
