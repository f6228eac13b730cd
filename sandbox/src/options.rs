//! What the sandbox plays and how hard: the scenario's knobs, with the two
//! presets `make demo` and `make test` use, and Exercise 8's business inputs.

/// The gate tick of every gated phase: the workshop module's one second,
/// scaled down so a phase fits in seconds.
pub const TICK_MS: u64 = 200;

/// The workshop module's Exercise 8 business inputs.
#[derive(Debug, Clone, Copy)]
pub struct Business {
    /// Customer impact of one bad deployment before (all users, 2 h rollback).
    pub outage_cost: f64,
    pub rollback_before_s: f64,
    /// "Average rollback time: 30 seconds" once a human acts on mesh metrics.
    pub rollback_manual_s: f64,
    pub bad_deploys_before: f64,
    pub bad_deploys_after: f64,
}

impl Default for Business {
    fn default() -> Self {
        Business {
            outage_cost: 50_000.0,
            rollback_before_s: 7_200.0,
            rollback_manual_s: 30.0,
            bad_deploys_before: 2.0,
            bad_deploys_after: 1.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Which phases to play, 1-8.
    pub steps: Vec<u8>,
    /// Requests per second of the user population.
    pub rate: f64,
    pub users: usize,
    /// Seconds per (sub-)phase.
    pub phase_secs: f64,
    /// Print progress every second.
    pub live: bool,
    pub v2_delay_ms: u64,
    /// v3's failing share, per mille (1000 = broken, as in Exercise 6).
    pub v3_error_permille: u32,
    pub business: Business,
}

impl Options {
    /// `make demo`: about a minute and a half.
    pub fn demo() -> Options {
        Options {
            steps: vec![1, 2, 3, 4, 5, 6, 7, 8],
            rate: 150.0,
            users: 300,
            phase_secs: 6.0,
            live: true,
            v2_delay_ms: 2,
            v3_error_permille: 1000,
            business: Business::default(),
        }
    }

    /// The same scenario, shortened for `make test`.
    pub fn short() -> Options {
        Options {
            rate: 120.0,
            users: 120,
            phase_secs: 3.0,
            live: false,
            ..Options::demo()
        }
    }

    /// Whether phase `n` (1-8) is to be played.
    pub fn plays(&self, n: u8) -> bool {
        self.steps.contains(&n)
    }
}
