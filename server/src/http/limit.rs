//! Sign-in rate limits on *failed* attempts: per client address (over all accounts) and
//! per account *from* one address, so guessing from one place never locks the account's
//! owner out elsewhere.
//!
//! An attempt takes its place in both windows before the password is checked, so a
//! blocked caller learns nothing about the password it tried and a burst of parallel
//! guesses cannot slip past the limit; a sign-in that succeeds gives its places back.
//! (`governor`'s buckets cannot give a cell back, hence the small window log here.)

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Above this many tracked keys, keys with no failure left in the window are forgotten.
const MAX_TRACKED_KEYS: usize = 10_000;

/// How far back failures count.
const WINDOW: Duration = Duration::from_secs(60);

/// Which limit refused an attempt, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub limit: Limit,
    pub retry_after: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Failures from one address, whatever the account.
    Address,
    /// Failures for one account from one address.
    AccountFromAddress,
}

/// The two sign-in windows; `None` where the setting is 0 (no limit).
pub struct LoginLimits {
    by_ip: Option<Window<IpAddr>>,
    by_account: Option<Window<(String, IpAddr)>>,
}

/// An attempt under way: counted as a failure unless [`Attempt::succeeded`] is called.
#[must_use]
pub struct Attempt<'a> {
    limits: &'a LoginLimits,
    ip: IpAddr,
    account: (String, IpAddr),
    at: Instant,
}

impl Attempt<'_> {
    /// The password was right: this attempt no longer counts against anyone.
    pub fn succeeded(self) {
        if let Some(w) = &self.limits.by_ip {
            w.give_back(&self.ip, self.at);
        }
        if let Some(w) = &self.limits.by_account {
            w.give_back(&self.account, self.at);
        }
    }
}

impl LoginLimits {
    pub fn new(per_ip_per_minute: u32, per_account_per_minute: u32) -> LoginLimits {
        LoginLimits {
            by_ip: Window::new(per_ip_per_minute),
            by_account: Window::new(per_account_per_minute),
        }
    }

    /// Takes a place for `email` from `ip` in both windows, or says which one is full (a
    /// refused attempt takes no place, so waiting `retry_after` is always enough).
    pub fn attempt(&self, ip: IpAddr, email: &str) -> Result<Attempt<'_>, Refusal> {
        let at = Instant::now();
        let ip = ip.to_canonical();
        let account = (email.trim().to_lowercase(), ip);
        if let Some(w) = &self.by_account {
            w.take(&account, at).map_err(|retry_after| Refusal {
                limit: Limit::AccountFromAddress,
                retry_after,
            })?;
        }
        if let Some(w) = &self.by_ip
            && let Err(retry_after) = w.take(&ip, at)
        {
            if let Some(a) = &self.by_account {
                a.give_back(&account, at);
            }
            return Err(Refusal {
                limit: Limit::Address,
                retry_after,
            });
        }
        Ok(Attempt {
            limits: self,
            ip,
            account,
            at,
        })
    }
}

/// At most `limit` attempts per key in any [`WINDOW`]: each key keeps the instants of
/// its recent attempts (never more than `limit`).
struct Window<K> {
    limit: usize,
    keys: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> Window<K> {
    fn new(limit: u32) -> Option<Window<K>> {
        (limit > 0).then(|| Window {
            limit: limit as usize,
            keys: Mutex::new(HashMap::new()),
        })
    }

    fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() > MAX_TRACKED_KEYS {
            keys.retain(|_, at| at.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let recent = keys.entry(key.clone()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            recent.pop_front();
        }
        if let Some(oldest) = recent.front()
            && recent.len() >= self.limit
        {
            return Err(WINDOW - now.duration_since(*oldest));
        }
        recent.push_back(now);
        Ok(())
    }

    fn give_back(&self, key: &K, at: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(recent) = keys.get_mut(key)
            && let Some(i) = recent.iter().rposition(|t| *t == at)
        {
            recent.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failures_lock_the_account_from_that_address_only() {
        let limits = LoginLimits::new(10, 5);
        for _ in 0..5 {
            drop(limits.attempt(ip("10.0.0.1"), "x@example.com").unwrap());
        }
        let refused = limits
            .attempt(ip("10.0.0.1"), "X@Example.com ")
            .err()
            .unwrap();
        assert_eq!(refused.limit, Limit::AccountFromAddress, "case and spaces");
        assert!(refused.retry_after > Duration::ZERO);
        assert!(limits.attempt(ip("10.0.0.2"), "x@example.com").is_ok());
        assert!(limits.attempt(ip("10.0.0.1"), "y@example.com").is_ok());
    }

    #[test]
    fn the_address_limit_spans_accounts_and_successes_do_not_count() {
        let limits = LoginLimits::new(3, 5);
        for _ in 0..20 {
            limits
                .attempt(ip("10.0.0.1"), "x@example.com")
                .unwrap()
                .succeeded();
        }
        for n in 0..3 {
            drop(
                limits
                    .attempt(ip("10.0.0.1"), &format!("u{n}@example.com"))
                    .unwrap(),
            );
        }
        let refused = limits
            .attempt(ip("10.0.0.1"), "x@example.com")
            .err()
            .unwrap();
        assert_eq!(refused.limit, Limit::Address);
        assert!(
            limits
                .attempt(ip("::ffff:10.0.0.1"), "x@example.com")
                .is_err(),
            "an IPv4-mapped address is the same client"
        );
    }

    #[test]
    fn zero_means_no_limit() {
        let limits = LoginLimits::new(0, 0);
        for _ in 0..50 {
            drop(limits.attempt(ip("10.0.0.1"), "x@example.com").unwrap());
        }
    }
}
