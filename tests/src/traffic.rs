//! Traffic like a user population makes it: stable user ids, a share of them
//! internal or beta, requests at a steady rate, every response recorded.

use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;

use crate::client::{Client, Req};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Regular,
    Internal,
    Beta,
}

/// `users` ids; every `internal_every`-th is internal, every `beta_every`-th beta (0 = none).
#[derive(Debug, Clone)]
pub struct Population {
    pub users: usize,
    pub internal_every: usize,
    pub beta_every: usize,
}

impl Population {
    pub fn regular(users: usize) -> Population {
        Population {
            users,
            internal_every: 0,
            beta_every: 0,
        }
    }

    pub fn kind(&self, user: usize) -> Kind {
        if self.internal_every > 0 && user.is_multiple_of(self.internal_every) {
            Kind::Internal
        } else if self.beta_every > 0 && user % self.beta_every == 1 {
            Kind::Beta
        } else {
            Kind::Regular
        }
    }

    pub fn request(&self, user: usize) -> Req {
        let req = Req::get("/reviews").header("x-user-id", format!("user-{user}"));
        match self.kind(user) {
            Kind::Internal => req.header("user-type", "internal"),
            Kind::Beta => req.header("beta-user", "true"),
            Kind::Regular => req,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub user: usize,
    pub kind: Kind,
    /// Wall clock at send, comparable with Envoy's log timestamps.
    pub sent: SystemTime,
    pub latency: Duration,
    /// 0 when the request failed without a response.
    pub status: u16,
    pub upstream: Option<String>,
    pub cohort: Option<String>,
}

/// Sends `rate` requests per second for `duration`, cycling through the
/// population, each request on its own task so a slow upstream does not slow
/// the schedule. Bounded: exactly `rate × duration` requests.
pub async fn steady(
    client: &Client,
    pop: &Population,
    rate: f64,
    duration: Duration,
    first_user: usize,
) -> Vec<Record> {
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut set = JoinSet::new();
    for i in 0..total {
        tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
        let user = (first_user + i) % pop.users;
        let req = pop.request(user);
        let kind = pop.kind(user);
        let c = client.clone();
        set.spawn(async move {
            let sent = SystemTime::now();
            let t = Instant::now();
            let r = c.try_send(&req).await;
            let latency = t.elapsed();
            match r {
                Ok(r) => Record {
                    user,
                    kind,
                    sent,
                    latency,
                    status: r.status,
                    upstream: r.upstream().map(str::to_string),
                    cohort: r.header("x-canary-cohort").map(str::to_string),
                },
                Err(_) => Record {
                    user,
                    kind,
                    sent,
                    latency,
                    status: 0,
                    upstream: None,
                    cohort: None,
                },
            }
        });
    }
    let mut out = Vec::with_capacity(total);
    while let Some(r) = set.join_next().await {
        out.push(r.expect("request task"));
    }
    out.sort_by_key(|r| r.sent);
    out
}

/// Parses the timestamp Envoy puts at the start of a log line
/// (`[2026-11-26 04:02:11.123]`, UTC on these machines).
pub fn log_time(line: &str) -> Option<SystemTime> {
    let ts = line.strip_prefix('[')?.get(..23)?;
    let num = |a: usize, b: usize| ts.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let millis = ((days * 24 + h) * 60 + mi) * 60_000 + s * 1_000 + ms;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_log_timestamps_become_wall_clock_times() {
        let t = log_time("[2026-11-26 04:02:11.123][12][warning][wasm] x").unwrap();
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert_eq!(secs, 1_795_665_731_123);
        assert_eq!(log_time("no timestamp"), None);
    }

    #[test]
    fn a_population_mixes_internal_beta_and_regular_users() {
        let p = Population {
            users: 100,
            internal_every: 20,
            beta_every: 10,
        };
        let kinds: Vec<Kind> = (0..100).map(|u| p.kind(u)).collect();
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Internal).count(), 5);
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Beta).count(), 10);
        assert!(p.request(0).headers.iter().any(|(k, _)| k == "user-type"));
    }
}
