//! `canary-soak`'s flags. Durations are written as in the filter's config
//! (`10m`, `90s`, `2m30s`).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub duration: Duration,
    /// Requests per second, fixed for the whole run.
    pub rate: f64,
    /// Distinct `x-user-id` values, cycled through.
    pub users: usize,
    pub update_every: Duration,
    pub sample_every: Duration,
    /// `None`: a fifth of the run, at least 30 s and at most 120 s (Envoy's
    /// RSS settles over the first minutes of traffic and config updates).
    pub warmup: Option<Duration>,
    pub rss_slack_mib: u64,
    pub out: PathBuf,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            duration: Duration::from_secs(600),
            rate: 200.0,
            users: 100_000,
            update_every: Duration::from_secs(5),
            sample_every: Duration::from_secs(5),
            warmup: None,
            rss_slack_mib: 4,
            out: PathBuf::from("out"),
        }
    }
}

pub const USAGE: &str = "canary-soak [--duration 10m] [--rate 200] [--users 100000] \
[--update-every 5s] [--sample-every 5s] [--warmup D] [--rss-slack-mib 4] [--out DIR]";

impl Args {
    /// The warm-up: given, or a fifth of the run within 30-120 s.
    pub fn warmup(&self) -> Duration {
        self.warmup.unwrap_or_else(|| {
            (self.duration / 5).clamp(Duration::from_secs(30), Duration::from_secs(120))
        })
    }

    /// Parses the flags after the program name; `Err` is one line naming the
    /// bad flag, `Ok(None)` asks for the usage.
    pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
        let mut a = Args::default();
        let mut it = argv.into_iter();
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let dur = |v: &str| {
                canary_core::config::duration::parse_ms(v)
                    .map(Duration::from_millis)
                    .map_err(|e| format!("{flag}: {e}"))
            };
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("{flag}: {v:?} is not a whole number"))
            };
            match flag.as_str() {
                "--duration" => a.duration = dur(&value)?,
                "--rate" => {
                    a.rate = value
                        .parse()
                        .ok()
                        .filter(|r: &f64| *r > 0.0 && r.is_finite())
                        .ok_or_else(|| format!("--rate: {value:?} is not a positive number"))?
                }
                "--users" => a.users = num(&value)? as usize,
                "--update-every" => a.update_every = dur(&value)?,
                "--sample-every" => a.sample_every = dur(&value)?,
                "--warmup" => a.warmup = Some(dur(&value)?),
                "--rss-slack-mib" => a.rss_slack_mib = num(&value)?,
                "--out" => a.out = PathBuf::from(value),
                _ => return Err(format!("unknown flag {flag} (usage: {USAGE})")),
            }
        }
        if a.users == 0 {
            return Err("--users: at least 1".into());
        }
        if a.update_every.is_zero() || a.sample_every.is_zero() {
            return Err("--update-every and --sample-every must be above 0".into());
        }
        if a.warmup() * 2 >= a.duration {
            return Err(format!(
                "--duration {:?} leaves no healthy phase after a {:?} warm-up",
                a.duration,
                a.warmup()
            ));
        }
        Ok(Some(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<Args>, String> {
        Args::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn no_flags_mean_ten_minutes_at_200_per_second_over_100k_users() {
        let a = parse("").unwrap().unwrap();
        assert_eq!(a, Args::default());
        assert_eq!(a.duration, Duration::from_secs(600));
        assert_eq!(a.warmup(), Duration::from_secs(120));
    }

    #[test]
    fn a_short_run_keeps_a_thirty_second_warm_up() {
        let a = parse("--duration 2m30s --rate 150 --update-every 3s")
            .unwrap()
            .unwrap();
        assert_eq!(a.duration, Duration::from_secs(150));
        assert_eq!(a.rate, 150.0);
        assert_eq!(a.update_every, Duration::from_secs(3));
        assert_eq!(a.warmup(), Duration::from_secs(30));
    }

    #[test]
    fn bad_flags_are_named_in_one_line() {
        assert_eq!(
            parse("--duration ten").unwrap_err(),
            "--duration: \"ten\" is not a duration like 500ms, 10s, 5m or 1h"
        );
        assert_eq!(
            parse("--rate -3").unwrap_err(),
            "--rate: \"-3\" is not a positive number"
        );
        assert_eq!(parse("--users").unwrap_err(), "--users needs a value");
        assert!(parse("--fast 1")
            .unwrap_err()
            .starts_with("unknown flag --fast"));
        assert!(parse("--duration 20s")
            .unwrap_err()
            .contains("no healthy phase"));
        assert_eq!(parse("--help").unwrap(), None);
    }
}
