//! The host's agent slots (`--max-agents`): a start takes a slot or waits its turn in a fair
//! (first come, first served) line, and learns its place as the line moves.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use crate::domain::UserId;

/// More waiting than this and a start is refused at once: the host is far over its capacity.
const MAX_WAITING: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// 1 is next.
    InLine(usize),
    Granted,
}

pub struct Slots {
    max: usize,
    inner: Mutex<Inner>,
    /// Woken when someone joins the line: the lifecycle watcher may stop an idle agent for them.
    pub someone_waits: Notify,
}

#[derive(Default)]
struct Inner {
    running: HashSet<UserId>,
    line: VecDeque<(UserId, watch::Sender<Place>)>,
}

/// A place in line (or a granted slot). Leaving the line before being granted frees the place.
pub struct Ticket {
    slots: Arc<Slots>,
    user: UserId,
    place: watch::Receiver<Place>,
}

#[derive(Debug, thiserror::Error)]
#[error("too many agents are waiting to start")]
pub struct LineFull;

impl Slots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max: max.max(1), inner: Mutex::new(Inner::default()), someone_waits: Notify::new() })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A free slot, only if nobody waits for one (prewarm must not jump the line).
    pub fn try_take(&self, user: &UserId) -> bool {
        let mut inner = self.inner.lock().expect("slots lock");
        if inner.running.contains(user) {
            return true;
        }
        if inner.running.len() < self.max && inner.line.is_empty() {
            inner.running.insert(user.clone());
            return true;
        }
        false
    }

    /// The user's slot, now or when their turn comes.
    pub fn take(self: &Arc<Self>, user: &UserId) -> Result<Ticket, LineFull> {
        let mut inner = self.inner.lock().expect("slots lock");
        let ticket = |place| Ticket { slots: self.clone(), user: user.clone(), place };
        if inner.running.contains(user) || (inner.running.len() < self.max && inner.line.is_empty()) {
            inner.running.insert(user.clone());
            return Ok(ticket(watch::channel(Place::Granted).1));
        }
        if let Some((_, tell)) = inner.line.iter().find(|(u, _)| u == user) {
            return Ok(ticket(tell.subscribe()));
        }
        if inner.line.len() >= MAX_WAITING {
            return Err(LineFull);
        }
        let (tell, place) = watch::channel(Place::InLine(inner.line.len() + 1));
        inner.line.push_back((user.clone(), tell));
        drop(inner);
        self.someone_waits.notify_one();
        Ok(ticket(place))
    }

    /// Frees the user's slot (their agent stopped) and gives it to the first in line.
    pub fn release(&self, user: &UserId) {
        let mut inner = self.inner.lock().expect("slots lock");
        if inner.running.remove(user) {
            inner.grant_free(self.max);
        }
    }

    pub fn running(&self) -> Vec<UserId> {
        self.inner.lock().expect("slots lock").running.iter().cloned().collect()
    }

    pub fn holds(&self, user: &UserId) -> bool {
        self.inner.lock().expect("slots lock").running.contains(user)
    }

    pub fn waiting(&self) -> usize {
        self.inner.lock().expect("slots lock").line.len()
    }

    fn leave_line(&self, user: &UserId) {
        let mut inner = self.inner.lock().expect("slots lock");
        let before = inner.line.len();
        inner.line.retain(|(u, tell)| u != user || tell.receiver_count() > 1);
        if inner.line.len() != before {
            inner.renumber();
        }
    }
}

impl Inner {
    fn grant_free(&mut self, max: usize) {
        while self.running.len() < max {
            let Some((user, tell)) = self.line.pop_front() else { break };
            self.running.insert(user);
            let _ = tell.send(Place::Granted);
        }
        self.renumber();
    }

    fn renumber(&mut self) {
        for (i, (_, tell)) in self.line.iter().enumerate() {
            tell.send_if_modified(|place| {
                let changed = *place != Place::InLine(i + 1);
                *place = Place::InLine(i + 1);
                changed
            });
        }
    }
}

impl Ticket {
    pub fn place(&self) -> Place {
        *self.place.borrow()
    }

    /// Waits until the place changes; `Granted` once the slot is ours.
    pub async fn changed(&mut self) -> Place {
        let _ = self.place.changed().await;
        *self.place.borrow_and_update()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if *self.place.borrow() != Place::Granted {
            self.slots.leave_line(&self.user);
        }
    }
}

/// "1st", "2nd", "3rd", "4th"…
pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<UserId> {
        (0..n).map(|_| UserId::generate()).collect()
    }

    #[test]
    fn starts_beyond_the_cap_wait_in_order_and_learn_their_place() {
        let slots = Slots::new(2);
        let u = users(5);
        let a = slots.take(&u[0]).unwrap();
        let b = slots.take(&u[1]).unwrap();
        assert_eq!((a.place(), b.place()), (Place::Granted, Place::Granted));
        let c = slots.take(&u[2]).unwrap();
        let d = slots.take(&u[3]).unwrap();
        assert_eq!((c.place(), d.place()), (Place::InLine(1), Place::InLine(2)));
        assert!(!slots.try_take(&u[4]), "prewarm never takes a slot from someone waiting");
        slots.release(&u[0]);
        assert_eq!((c.place(), d.place()), (Place::Granted, Place::InLine(1)));
        drop(d);
        assert_eq!(slots.waiting(), 0, "leaving the line frees the place");
        slots.release(&u[1]);
        assert!(slots.try_take(&u[4]), "a free slot with nobody waiting");
        assert_eq!(slots.running().len(), 2);
    }

    #[test]
    fn a_user_holds_one_slot_and_one_place() {
        let slots = Slots::new(1);
        let u = users(2);
        let _a = slots.take(&u[0]).unwrap();
        assert_eq!(slots.take(&u[0]).unwrap().place(), Place::Granted);
        let first = slots.take(&u[1]).unwrap();
        let again = slots.take(&u[1]).unwrap();
        assert_eq!((first.place(), again.place()), (Place::InLine(1), Place::InLine(1)));
        drop(again);
        assert_eq!(slots.waiting(), 1, "the other ticket still waits");
        assert_eq!(slots.running().len(), 1);
    }

    #[test]
    fn ordinals_read_naturally() {
        let said: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101].into_iter().map(ordinal).collect();
        assert_eq!(said, ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]);
    }
}
