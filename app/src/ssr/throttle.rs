//! Sign-in throttling: every password attempt (signing in, the one-time setup) spends a cell of
//! its client address's allowance and of the account name's allowance before any password is
//! hashed, so a flood is answered `429 Too Many Requests` with `Retry-After` instead of queueing
//! argon2 work. Allowances refill continuously (GCRA, `governor`), so a person who mistypes a
//! few times never notices.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use concord_domain::ErrorKind;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use leptos::prelude::use_context;

use crate::wire::AppError;

/// The address a request came from, as the server decided it (the socket peer, or the
/// forwarded address when a trusted proxy is configured). The server's middleware puts it into
/// every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// An allowance: `burst` attempts at once, then one more every `refill`.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    pub burst: NonZeroU32,
    pub refill: Duration,
}

impl Allowance {
    fn quota(self) -> Quota {
        // A zero refill period has no quota; one nanosecond is "no throttling" in practice.
        Quota::with_period(self.refill.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(self.burst)
    }
}

/// The sign-in allowances.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Per client address (IPv6 addresses by their /64, which one client usually holds whole).
    pub per_address: Allowance,
    /// Per account name, whichever address tries it (names that do not exist too, so the
    /// answer does not tell which exist).
    pub per_account: Allowance,
}

impl Default for LoginLimits {
    /// 30 attempts at once per address, then one every 2 s (an office behind one address signing
    /// in at nine still fits); 10 per account, then one every 6 s.
    fn default() -> Self {
        LoginLimits {
            per_address: Allowance {
                burst: NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN),
                refill: Duration::from_secs(2),
            },
            per_account: Allowance {
                burst: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
                refill: Duration::from_secs(6),
            },
        }
    }
}

/// Keys kept before idle ones are dropped: bounds the memory an attacker spraying names or
/// addresses can make the limiter hold.
const PRUNE_ABOVE_KEYS: usize = 10_000;

/// The longest account key kept (user names are at most 64 bytes).
const MAX_ACCOUNT_KEY: usize = 64;

/// The limiters, shared by every request.
pub struct LoginThrottle {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_account: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

/// An attempt refused: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds for `Retry-After`, rounded up (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

impl From<Throttled> for AppError {
    /// The error a server function answers, with `Retry-After` set on its response.
    fn from(t: Throttled) -> AppError {
        let secs = t.retry_after_secs();
        if let (Some(response), Ok(value)) = (
            use_context::<leptos_axum::ResponseOptions>(),
            http::HeaderValue::from_str(&secs.to_string()),
        ) {
            response.insert_header(http::header::RETRY_AFTER, value);
        }
        AppError::new(
            ErrorKind::TooManyRequests,
            format!("too many sign-in attempts; try again in {secs} s"),
        )
    }
}

/// The key of an address: IPv4 as it is, IPv6 by its /64 prefix.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

fn account_key(name: &str) -> String {
    let name = name.trim();
    let mut end = name.len().min(MAX_ACCOUNT_KEY);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

impl LoginThrottle {
    pub fn new(limits: LoginLimits) -> LoginThrottle {
        LoginThrottle {
            by_address: DefaultKeyedRateLimiter::dashmap(limits.per_address.quota()),
            by_account: DefaultKeyedRateLimiter::dashmap(limits.per_account.quota()),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one attempt of `address` and, when given, of the account `name`; refused when
    /// either allowance is used up. `address` is `None` only when the server could not tell
    /// (no socket address): those requests share one allowance.
    pub fn attempt(&self, address: Option<IpAddr>, name: Option<&str>) -> Result<(), Throttled> {
        let address = address.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), address_key);
        if self.by_address.len() > PRUNE_ABOVE_KEYS {
            self.by_address.retain_recent();
        }
        self.by_address
            .check_key(&address)
            .map_err(|not_until| self.throttled(not_until.wait_time_from(self.clock.now())))?;
        if let Some(name) = name {
            if self.by_account.len() > PRUNE_ABOVE_KEYS {
                self.by_account.retain_recent();
            }
            self.by_account
                .check_key(&account_key(name))
                .map_err(|not_until| self.throttled(not_until.wait_time_from(self.clock.now())))?;
        }
        Ok(())
    }

    fn throttled(&self, retry_after: Duration) -> Throttled {
        tracing::warn!(
            retry_after_ms = retry_after.as_millis() as u64,
            "sign-in attempt throttled"
        );
        Throttled { retry_after }
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(LoginLimits::default())
    }
}

/// The calling request's client address, as the server's middleware recorded it.
pub async fn client_address() -> Option<IpAddr> {
    let parts: http::request::Parts = leptos_axum::extract().await.ok()?;
    parts.extensions.get::<ClientAddress>().map(|a| a.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(burst: u32) -> Allowance {
        Allowance {
            burst: NonZeroU32::new(burst).unwrap(),
            refill: Duration::from_secs(60),
        }
    }

    #[test]
    fn an_address_is_refused_after_its_burst_and_told_when_to_retry() {
        let t = LoginThrottle::new(LoginLimits {
            per_address: small(3),
            per_account: small(100),
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..3 {
            assert_eq!(t.attempt(Some(a), Some(&format!("user{i}"))), Ok(()));
        }
        let refused = t.attempt(Some(a), Some("other")).unwrap_err();
        assert!(refused.retry_after > Duration::from_secs(50), "{refused:?}");
        assert_eq!(
            refused.retry_after_secs(),
            refused.retry_after.as_secs() + 1
        );
        // Another address is not affected.
        assert_eq!(t.attempt(Some(b), Some("user0")), Ok(()));
    }

    #[test]
    fn an_account_is_refused_after_its_burst_from_any_address() {
        let t = LoginThrottle::new(LoginLimits {
            per_address: small(100),
            per_account: small(2),
        });
        for last in 1..=2u8 {
            let from = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, last));
            assert_eq!(t.attempt(Some(from), Some("ada")), Ok(()));
        }
        let from = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9));
        assert!(t.attempt(Some(from), Some(" ada ")).is_err());
        assert_eq!(t.attempt(Some(from), Some("grace")), Ok(()));
    }

    #[test]
    fn ipv6_addresses_share_their_64_prefix() {
        let t = LoginThrottle::new(LoginLimits {
            per_address: small(1),
            per_account: small(100),
        });
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_prefix: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_prefix: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(t.attempt(Some(one), None), Ok(()));
        assert!(t.attempt(Some(same_prefix), None).is_err());
        assert_eq!(t.attempt(Some(other_prefix), None), Ok(()));
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let name = "é".repeat(40);
        let key = account_key(&name);
        assert!(key.len() <= MAX_ACCOUNT_KEY);
        assert!(name.starts_with(&key));
    }
}
