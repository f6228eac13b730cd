//! The eight phases `make demo` plays, one function each, and [`run`], which
//! sets the stage and plays the phases the options select.
//!
//! Every phase starts its own productpage sidecar (its routes differ), sends
//! the user population through it while a [`Recorder`] samples the counters,
//! and writes what it measured into the [`Results`].

mod all_or_nothing;
mod broken_canary;
mod canary_steps;
mod cohorts_first;
mod gated_promotion;
mod judged;
mod verified_identity;

use std::time::{Duration, Instant};

use canary_e2e::traffic::{self, Population, Record};
use canary_e2e::Envoy;

use crate::business;
use crate::mesh::{frontend, Mesh};
use crate::options::Options;
use crate::recorder::Recorder;
use crate::results::Results;

/// What every phase plays on: the options, the running reviews versions and
/// the two user populations.
pub(crate) struct Stage<'a> {
    o: &'a Options,
    mesh: Mesh,
    /// Everyone, with a share of internal and beta users.
    pop: Population,
    /// The same number of users, none internal or beta.
    regular: Population,
}

impl Stage<'_> {
    /// Traffic from `pop` through the frontend for `secs`, recorded by the harness.
    async fn users(&self, envoy: &Envoy, pop: &Population, secs: f64) -> Vec<Record> {
        traffic::steady(
            &frontend(envoy),
            pop,
            self.o.rate,
            Duration::from_secs_f64(secs),
            0,
        )
        .await
    }

    /// A recorder on `envoy`'s counters, printing progress labelled `phase` when live.
    fn record(&self, envoy: &Envoy, phase: &str) -> Recorder {
        Recorder::start(envoy, phase, self.o.live)
    }

    /// [`Stage::users`] while a recorder samples `envoy`; the samples become
    /// the results' timeline `timeline`.
    async fn recorded_users(
        &self,
        envoy: &Envoy,
        (phase, timeline): (&str, &str),
        pop: &Population,
        secs: f64,
        r: &mut Results,
    ) -> Vec<Record> {
        let rec = self.record(envoy, phase);
        let records = self.users(envoy, pop, secs).await;
        r.timelines.push((timeline.to_string(), rec.finish().await));
        records
    }

    /// Prints a line of the live narrative.
    fn say(&self, text: &str) {
        if self.o.live {
            println!("{text}");
        }
    }
}

/// Plays the selected phases and returns what was measured. `Err` names what
/// went wrong when a sidecar refused a rollout step's configuration.
pub async fn run(o: &Options) -> Result<Results, String> {
    let started = Instant::now();
    let stage = Stage {
        o,
        mesh: Mesh::start(o).await,
        pop: Population {
            users: o.users,
            internal_every: 25,
            beta_every: 10,
        },
        regular: Population::regular(o.users),
    };
    let mut r = Results {
        rate: o.rate,
        users: o.users,
        ..Default::default()
    };
    if o.plays(1) {
        all_or_nothing::play(&stage, &mut r).await;
    }
    if o.plays(2) {
        canary_steps::play(&stage, &mut r).await?;
    }
    if o.plays(3) {
        cohorts_first::play(&stage, &mut r).await;
    }
    if o.plays(4) {
        broken_canary::play(&stage, &mut r).await;
    }
    if o.plays(5) {
        gated_promotion::play(&stage, &mut r).await?;
    }
    if o.plays(6) {
        verified_identity::play(&stage, &mut r).await;
    }
    if o.plays(7) {
        judged::subtle_regression(&stage, &mut r).await;
    }
    if o.plays(8) {
        judged::shared_incident(&stage, &mut r).await;
    }
    if let (Some(outlier), Some(gated)) = (&r.outlier_only, &r.gated) {
        r.business = Some(business::view(&o.business, outlier, gated));
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}
