//! Sign-in rate limits: per client IP and per account, each a GCRA bucket (`governor`)
//! of `N` attempts per minute. Every attempt takes a cell *before* the password is
//! checked, so a blocked caller learns nothing about the password it tried.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

/// Above this many tracked keys, keys whose bucket has refilled are forgotten.
const MAX_TRACKED_KEYS: usize = 10_000;

/// Which limit refused an attempt, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub limit: &'static str,
    pub retry_after: Duration,
}

/// The two sign-in buckets; `None` where the setting is 0 (no limit).
pub struct LoginLimits {
    by_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    by_account: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl LoginLimits {
    pub fn new(per_ip_per_minute: u32, per_account_per_minute: u32) -> LoginLimits {
        let quota = |n: u32| NonZeroU32::new(n).map(Quota::per_minute);
        LoginLimits {
            by_ip: quota(per_ip_per_minute).map(RateLimiter::keyed),
            by_account: quota(per_account_per_minute).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one attempt from the IP's bucket, then from the account's; the first that is
    /// empty refuses (an IP already refused does not spend the account's attempts).
    pub fn attempt(&self, ip: IpAddr, email: &str) -> Result<(), Refusal> {
        if let Some(limiter) = &self.by_ip {
            self.take(limiter, &ip, "ip")?;
        }
        if let Some(limiter) = &self.by_account {
            self.take(limiter, &email.trim().to_lowercase(), "account")?;
        }
        Ok(())
    }

    fn take<K>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
        limit: &'static str,
    ) -> Result<(), Refusal>
    where
        K: std::hash::Hash + Eq + Clone,
    {
        if limiter.len() > MAX_TRACKED_KEYS {
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|not_until| Refusal {
            limit,
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_attempt_is_refused_and_other_keys_are_not() {
        let limits = LoginLimits::new(5, 5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..5 {
            limits.attempt(a, "x@example.com").unwrap();
        }
        let refused = limits.attempt(a, "y@example.com").unwrap_err();
        assert_eq!(refused.limit, "ip");
        assert!(refused.retry_after > Duration::ZERO);
        assert_eq!(
            limits.attempt(b, "X@Example.com ").unwrap_err().limit,
            "account",
            "the account key ignores case and spaces"
        );
        limits.attempt(b, "z@example.com").unwrap();
    }

    #[test]
    fn zero_means_no_limit() {
        let limits = LoginLimits::new(0, 0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..50 {
            limits.attempt(ip, "x@example.com").unwrap();
        }
    }
}
