//! Request rates: per API key, per client address, and failed authentications
//! per client address (stricter: each unknown key costs a database lookup).
//!
//! Each node counts on its own (GCRA buckets from `governor`, kept in memory): a
//! limit is per node, so N nodes behind a balancer admit up to N times it. That
//! is what rate limits are for here — keeping one client from taking a node —
//! while what must agree across nodes (verification attempts, idempotency) is in
//! the database. Behind a proxy every client has the proxy's address: raise or
//! turn off the per-address limits there (0 turns a limit off).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use crate::config::Limits;
use crate::error::ApiError;

pub struct RateLimits {
    per_key: Option<DefaultKeyedRateLimiter<Uuid>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses past their failed authentications, until when: their unknown
    /// keys are refused without a lookup.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

/// `rate` a second, in bursts of twice as many; `None` for 0 (no limit).
fn per_second(rate: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2 is not 0"));
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimits {
    pub fn new(limits: &Limits) -> RateLimits {
        let failures = NonZeroU32::new(limits.auth_failures_per_minute).map(|n| {
            // Bursts of at most 10: a client that mistyped its key learns so at once,
            // one that guesses keys gets one try every 60/n seconds.
            let burst = n.min(NonZeroU32::new(10).expect("10 is not 0"));
            DefaultKeyedRateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
        });
        RateLimits {
            per_key: per_second(limits.rate_limit_per_key).map(DefaultKeyedRateLimiter::keyed),
            per_address: per_second(limits.rate_limit_per_address).map(DefaultKeyedRateLimiter::keyed),
            failures,
            blocked: Mutex::default(),
        }
    }

    /// Counts a request from `addr`.
    pub fn address(&self, addr: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_address else { return Ok(()) };
        limiter.check_key(&addr).map_err(|not_until| {
            metrics::counter!("clientele_rate_limited_total", "limit" => "address").increment(1);
            limited("Too many requests from this address; slow down.", wait(&not_until))
        })
    }

    /// Counts a request made with the API key `key`.
    pub fn key(&self, key: Uuid) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_key else { return Ok(()) };
        limiter.check_key(&key).map_err(|not_until| {
            metrics::counter!("clientele_rate_limited_total", "limit" => "key").increment(1);
            limited("Too many requests with this API key; slow down.", wait(&not_until))
        })
    }

    /// Refuses a key not yet known to be good from an address that failed to
    /// authenticate too often.
    pub fn check_blocked(&self, addr: IpAddr) -> Result<(), ApiError> {
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(&addr) {
            Some(until) if *until > Instant::now() => Err(failed_too_often(*until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `addr`: the client's answer is the
    /// 401 it earned, or a 429 once the address has failed too often.
    pub fn failed(&self, addr: IpAddr, unauthorized: ApiError) -> ApiError {
        let Some(limiter) = &self.failures else { return unauthorized };
        match limiter.check_key(&addr) {
            Ok(()) => unauthorized,
            Err(not_until) => {
                let wait = wait(&not_until);
                self.blocked.lock().unwrap_or_else(|e| e.into_inner()).insert(addr, Instant::now() + wait);
                failed_too_often(wait)
            }
        }
    }

    /// Forgets what no limit needs any more (run every minute or so): a client
    /// that came once is not remembered for ever.
    pub fn forget_idle(&self) {
        for limiter in [&self.per_address, &self.failures].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_key {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        self.blocked.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, until| *until > now);
    }
}

fn wait(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

fn limited(details: &str, wait: Duration) -> ApiError {
    let mut e =
        ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "rate_limited", "TooManyRequestsException", details);
    e.set_retry_after(wait.as_secs_f64().ceil().max(1.0) as u64);
    e
}

fn failed_too_often(wait: Duration) -> ApiError {
    metrics::counter!("clientele_rate_limited_total", "limit" => "failed_authentication").increment(1);
    let mut e = ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "too_many_failed_authentications",
        "TooManyRequestsException",
        "Too many requests with unknown API keys from this address; wait before trying again.",
    );
    e.set_retry_after(wait.as_secs_f64().ceil().max(1.0) as u64);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_key: u32, per_address: u32, failures: u32) -> Limits {
        Limits {
            rate_limit_per_key: per_key,
            rate_limit_per_address: per_address,
            auth_failures_per_minute: failures,
            ..Limits::default()
        }
    }

    #[test]
    fn a_key_gets_bursts_of_twice_its_rate_then_waits() {
        let r = RateLimits::new(&limits(5, 0, 0));
        let key = Uuid::now_v7();
        for _ in 0..10 {
            r.key(key).unwrap();
        }
        let e = r.key(key).unwrap_err();
        assert_eq!(e.status().as_u16(), 429);
        r.key(Uuid::now_v7()).unwrap();
        // 0: no limit.
        let free = RateLimits::new(&limits(0, 0, 0));
        for _ in 0..10_000 {
            free.key(key).unwrap();
            free.address("127.0.0.1".parse().unwrap()).unwrap();
        }
    }

    #[test]
    fn failures_from_an_address_block_its_unknown_keys() {
        let r = RateLimits::new(&limits(0, 0, 60));
        let (bad, good): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..10 {
            assert_eq!(r.failed(bad, ApiError::unauthorized("no")).status().as_u16(), 401);
            r.check_blocked(bad).unwrap();
        }
        assert_eq!(r.failed(bad, ApiError::unauthorized("no")).status().as_u16(), 429);
        assert_eq!(r.check_blocked(bad).unwrap_err().status().as_u16(), 429);
        r.check_blocked(good).unwrap();
        r.forget_idle();
        assert!(r.check_blocked(bad).is_err(), "still blocked until its wait is over");
    }
}
