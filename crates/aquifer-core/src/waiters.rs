//! The FIFO queue of callers waiting for a connection.
//!
//! A doubly linked list threaded through a [`Slab`], so that pushing, handing off to the front and cancelling
//! from the middle are all O(1), and no allocation happens once the slab has grown to the peak number of
//! waiters. A node stays in the slab after it is unlinked (fulfilled) until its owner — the waiting future —
//! takes the outcome or is dropped; only the owner ever removes it, so keys are never reused behind its back.

use std::task::Waker;
use tokio::time::Instant;

use slab::Slab;

const NIL: usize = usize::MAX;

struct Node<T> {
    prev: usize,
    next: usize,
    linked: bool,
    /// Set for waiters whose deadline the pool's deadline watcher enforces; such deadlines never decrease
    /// along the list.
    deadline: Option<Instant>,
    waker: Option<Waker>,
    outcome: Option<T>,
}

/// Waiters in arrival order. `T` is what a waiter is handed: a connection or a failure.
pub(crate) struct Waiters<T> {
    nodes: Slab<Node<T>>,
    head: usize,
    tail: usize,
    linked: usize,
}

impl<T> Waiters<T> {
    pub(crate) fn new() -> Self {
        Waiters { nodes: Slab::new(), head: NIL, tail: NIL, linked: 0 }
    }

    /// Waiters still waiting for an outcome.
    pub(crate) fn len(&self) -> usize {
        self.linked
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.linked == 0
    }

    /// Queues a new waiter at the back and returns its key. A `deadline` must not be earlier than any other
    /// queued waiter's.
    /// The waker is registered at once, so the waiter need not poll (and lock) again before it is woken.
    pub(crate) fn push_back(&mut self, deadline: Option<Instant>, waker: Option<&Waker>) -> usize {
        let node = Node { prev: self.tail, next: NIL, linked: true, deadline, waker: waker.cloned(), outcome: None };
        let key = self.nodes.insert(node);
        if self.tail == NIL {
            self.head = key;
        } else {
            self.nodes[self.tail].next = key;
        }
        self.tail = key;
        self.linked += 1;
        key
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = {
            let n = &mut self.nodes[key];
            debug_assert!(n.linked);
            n.linked = false;
            (std::mem::replace(&mut n.prev, NIL), std::mem::replace(&mut n.next, NIL))
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        self.linked -= 1;
    }

    /// Hands `outcome` to the longest-waiting waiter and returns its waker (to be woken after the lock is
    /// released). Gives the outcome back when nobody waits.
    pub(crate) fn fulfill_front(&mut self, outcome: T) -> Result<Option<Waker>, T> {
        let key = self.head;
        if key == NIL {
            return Err(outcome);
        }
        self.unlink(key);
        let node = &mut self.nodes[key];
        node.outcome = Some(outcome);
        Ok(node.waker.take())
    }

    /// Takes the outcome if one was handed over (removing the node), or records the waker to be woken when one
    /// is.
    pub(crate) fn poll(&mut self, key: usize, waker: &Waker) -> Option<T> {
        let node = &mut self.nodes[key];
        if node.outcome.is_some() {
            return self.nodes.remove(key).outcome;
        }
        match &node.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => node.waker = Some(waker.clone()),
        }
        None
    }

    /// Removes a waiter that gives up, returning an outcome that was handed to it but not yet taken, so the
    /// caller can pass it on.
    pub(crate) fn cancel(&mut self, key: usize) -> Option<T> {
        if self.nodes[key].linked {
            self.unlink(key);
        }
        self.nodes.remove(key).outcome
    }

    /// Hands `make()` to every waiter whose deadline passed by `now`, and returns their wakers and the next
    /// deadline still ahead. Stops at the first deadline not yet reached: deadlines never decrease.
    pub(crate) fn expire(&mut self, now: Instant, mut make: impl FnMut() -> T) -> (Vec<Waker>, Option<Instant>) {
        let mut wakers = Vec::new();
        let mut key = self.head;
        while key != NIL {
            let next = self.nodes[key].next;
            match self.nodes[key].deadline {
                Some(d) if d <= now => {
                    self.unlink(key);
                    let node = &mut self.nodes[key];
                    node.outcome = Some(make());
                    wakers.extend(node.waker.take());
                }
                Some(d) => return (wakers, Some(d)),
                None => {}
            }
            key = next;
        }
        (wakers, None)
    }

    /// Hands an outcome made by `make` to every waiter, front first, and returns their wakers.
    pub(crate) fn fulfill_all(&mut self, mut make: impl FnMut() -> T) -> Vec<Waker> {
        let mut wakers = Vec::with_capacity(self.linked);
        while self.head != NIL {
            match self.fulfill_front(make()) {
                Ok(Some(w)) => wakers.push(w),
                Ok(None) => {}
                Err(_) => break,
            }
        }
        wakers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fulfills_in_arrival_order() {
        let mut w = Waiters::new();
        let a = w.push_back(None, None);
        let b = w.push_back(None, None);
        let c = w.push_back(None, None);
        assert!(w.fulfill_front(1).is_ok());
        assert!(w.fulfill_front(2).is_ok());
        assert_eq!(w.len(), 1);
        let waker = std::task::Waker::noop();
        assert_eq!(w.poll(b, waker), Some(2));
        assert_eq!(w.poll(a, waker), Some(1));
        assert_eq!(w.poll(c, waker), None);
    }

    #[test]
    fn cancel_from_the_middle_keeps_order() {
        let mut w = Waiters::new();
        let a = w.push_back(None, None);
        let b = w.push_back(None, None);
        let c = w.push_back(None, None);
        assert_eq!(w.cancel(b), None);
        assert!(w.fulfill_front('x').is_ok());
        assert!(w.fulfill_front('y').is_ok());
        assert!(matches!(w.fulfill_front('z'), Err('z')));
        let waker = std::task::Waker::noop();
        assert_eq!(w.poll(a, waker), Some('x'));
        assert_eq!(w.poll(c, waker), Some('y'));
        assert!(w.is_empty());
    }

    #[test]
    fn expire_fails_only_waiters_past_their_deadline() {
        let mut w = Waiters::new();
        let t0 = Instant::now();
        let ms = std::time::Duration::from_millis;
        let a = w.push_back(Some(t0 + ms(10)), None);
        let b = w.push_back(None, None);
        let c = w.push_back(Some(t0 + ms(20)), None);
        let d = w.push_back(Some(t0 + ms(30)), None);
        let (_, next) = w.expire(t0 + ms(20), || 'x');
        assert_eq!(next, Some(t0 + ms(30)));
        let waker = std::task::Waker::noop();
        assert_eq!(w.poll(a, waker), Some('x'));
        assert_eq!(w.poll(c, waker), Some('x'));
        assert_eq!(w.poll(b, waker), None);
        assert_eq!(w.poll(d, waker), None);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn cancel_after_fulfilment_returns_the_outcome() {
        let mut w = Waiters::new();
        let a = w.push_back(None, None);
        assert!(w.fulfill_front(7).is_ok());
        assert_eq!(w.cancel(a), Some(7));
        let b = w.push_back(None, None);
        assert_eq!(w.cancel(b), None);
        assert!(matches!(w.fulfill_front(8), Err(8)));
    }
}
