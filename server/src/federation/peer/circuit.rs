//! The circuit breaker of one peer: after `threshold` failures in a row, calls fail at
//! once until a backoff elapses; then one trial call goes through (half-open). Its
//! success closes the circuit; its failure opens it again for twice as long (capped).

use std::time::{Duration, Instant};

/// When a circuit opens and how long it stays open.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub threshold: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            threshold: 3,
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Default)]
pub struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    backoff: Option<Duration>,
    trial: bool,
}

/// What [`Breaker::admit`] let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Closed,
    /// The one call tried while half-open.
    Trial,
}

impl Breaker {
    /// Whether a call may go to the peer now; `Err` is the time until the next attempt.
    pub fn admit(&mut self, now: Instant, policy: &Policy) -> Result<Admission, Duration> {
        let Some(until) = self.open_until else {
            return Ok(Admission::Closed);
        };
        if now < until {
            return Err(until - now);
        }
        if self.trial {
            // Another caller is trying; its outcome decides. The next look is soon.
            return Err(policy.backoff.min(Duration::from_secs(1)));
        }
        self.trial = true;
        Ok(Admission::Trial)
    }

    /// The peer answered: the circuit closes.
    pub fn succeeded(&mut self) {
        *self = Breaker::default();
    }

    /// The peer could not be reached (or did not answer in time).
    pub fn failed(&mut self, now: Instant, policy: &Policy) {
        self.failures = self.failures.saturating_add(1);
        self.trial = false;
        if self.failures < policy.threshold {
            return;
        }
        let backoff = match self.backoff {
            // A failed trial (or a failure while open): twice as long.
            Some(previous) => (previous * 2).min(policy.max_backoff),
            None => policy.backoff,
        };
        self.backoff = Some(backoff);
        self.open_until = Some(now + backoff);
    }

    /// A trial call ended without an outcome (its caller went away): another may try.
    pub fn abandoned(&mut self) {
        self.trial = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_half_opens_after_the_backoff_and_doubles_it() {
        let policy = Policy {
            threshold: 3,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(25),
        };
        let mut b = Breaker::default();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.admit(t0, &policy), Ok(Admission::Closed));
            b.failed(t0, &policy);
        }
        assert_eq!(b.admit(t0, &policy), Ok(Admission::Closed));
        b.failed(t0, &policy);
        assert_eq!(b.admit(t0, &policy), Err(Duration::from_secs(10)));
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.admit(t1, &policy), Ok(Admission::Trial));
        assert!(b.admit(t1, &policy).is_err(), "one trial at a time");
        b.failed(t1, &policy);
        assert_eq!(b.admit(t1, &policy), Err(Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(b.admit(t2, &policy), Ok(Admission::Trial));
        b.failed(t2, &policy);
        assert_eq!(b.admit(t2, &policy), Err(Duration::from_secs(25)), "capped");
        let t3 = t2 + Duration::from_secs(25);
        assert_eq!(b.admit(t3, &policy), Ok(Admission::Trial));
        b.succeeded();
        assert_eq!(b.admit(t3, &policy), Ok(Admission::Closed));
        b.failed(t3, &policy);
        assert_eq!(
            b.admit(t3, &policy),
            Ok(Admission::Closed),
            "count restarts"
        );
    }

    #[test]
    fn an_abandoned_trial_lets_the_next_caller_try() {
        let policy = Policy {
            threshold: 1,
            ..Policy::default()
        };
        let mut b = Breaker::default();
        let t0 = Instant::now();
        b.failed(t0, &policy);
        let later = t0 + policy.backoff;
        assert_eq!(b.admit(later, &policy), Ok(Admission::Trial));
        b.abandoned();
        assert_eq!(b.admit(later, &policy), Ok(Admission::Trial));
    }
}
