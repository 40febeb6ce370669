//! What a comparing scenario runs in each round: no agent, then each daemon under test.
//!
//! Without `DL_BENCH_BASELINE` the variants are "no agent" and the daemon (today's pairs of
//! rounds); with it, "no agent", "baseline" and "current". Each round runs every variant once,
//! in the listed order in even rounds and in the reverse order in odd ones (A B C, C B A, ...):
//! on this VM the machine's speed drifts over minutes, and over every two rounds a linear drift
//! then adds the same to each variant's position. A daemon is compared with the no-agent run of
//! its own round, never with a median of other rounds.
use anyhow::{Context as _, Result};

use super::Context;

/// One thing a round runs the load with.
#[derive(Debug, Clone)]
pub struct Variant {
    /// "no agent", "agent" (the only daemon), or "baseline" / "current".
    pub label: &'static str,
    /// The daemon this variant runs (its binary in `daemon`); none for the no-agent variant.
    pub daemon: Option<Context>,
}

/// The variants of a scenario, no agent first.
#[derive(Debug, Clone)]
pub struct Variants {
    list: Vec<Variant>,
}

impl Variants {
    pub fn new(ctx: &Context) -> Variants {
        let run = |path: &std::path::Path, settings: &Option<serde_json::Value>| {
            Some(Context { daemon: path.to_owned(), settings: settings.clone(), ..Context::default() })
        };
        let mut list = vec![Variant { label: "no agent", daemon: None }];
        match &ctx.baseline {
            Some(b) => {
                list.push(Variant { label: "baseline", daemon: run(b, &ctx.baseline_settings) });
                list.push(Variant { label: "current", daemon: run(&ctx.daemon, &ctx.settings) });
            }
            None => list.push(Variant { label: "agent", daemon: run(&ctx.daemon, &ctx.settings) }),
        }
        Variants { list }
    }

    /// Whether two daemons are compared (`DL_BENCH_BASELINE` is set).
    pub fn compared(&self) -> bool {
        self.list.len() > 2
    }

    /// The daemon variants with their index in the list (0 is the no-agent variant).
    pub fn daemons(&self) -> impl Iterator<Item = (usize, &Variant)> {
        self.list.iter().enumerate().filter(|(_, v)| v.daemon.is_some())
    }

    /// The daemons' binaries, for the tables' notes: "baseline: `path`; current: `path`".
    pub fn binaries(&self) -> String {
        self.daemons()
            .filter_map(|(_, v)| {
                v.daemon.as_ref().map(|c| match &c.settings {
                    Some(s) => format!("{}: `{}` with `{s}`", v.label, c.daemon.display()),
                    None => format!("{}: `{}`", v.label, c.daemon.display()),
                })
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The order of round `round` (from 0), as indices into the list.
    pub fn order(&self, round: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.list.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        order
    }

    /// "no agent → baseline → current, reversed every other round".
    pub fn describe_order(&self) -> String {
        let names: Vec<&str> = self.list.iter().map(|v| v.label).collect();
        format!("{}, reversed every other round", names.join(" → "))
    }

    /// Runs round `round`: `run` once per variant, in the round's order; the results indexed
    /// like the list (no agent first).
    pub fn round<R>(&self, round: usize, mut run: impl FnMut(&Variant) -> Result<R>) -> Result<Vec<R>> {
        let mut out: Vec<Option<R>> = self.list.iter().map(|_| None).collect();
        for i in self.order(round) {
            let v = &self.list[i];
            out[i] = Some(run(v).with_context(|| format!("round {} ({})", round + 1, v.label))?);
        }
        out.into_iter().map(|r| r.context("a variant of the round did not run")).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn alternates_and_indexes() -> Result<()> {
        let ctx =
            Context { daemon: PathBuf::from("/new"), baseline: Some(PathBuf::from("/old")), ..Context::default() };
        let v = Variants::new(&ctx);
        assert!(v.compared());
        assert_eq!(v.order(0), [0, 1, 2]);
        assert_eq!(v.order(1), [2, 1, 0]);
        let mut seen = Vec::new();
        let r = v.round(1, |x| {
            seen.push(x.label);
            Ok(x.label)
        })?;
        assert_eq!(seen, ["current", "baseline", "no agent"]);
        assert_eq!(r, ["no agent", "baseline", "current"]);
        assert_eq!(v.binaries(), "baseline: `/old`; current: `/new`");
        let off = serde_json::json!({"ebpf": {"file_access": false}});
        let family = Variants::new(&Context {
            daemon: PathBuf::from("/new"),
            baseline: Some(PathBuf::from("/new")),
            baseline_settings: Some(off.clone()),
            ..Context::default()
        });
        assert_eq!(
            family.daemons().map(|(_, d)| d.daemon.as_ref().and_then(|c| c.settings.clone())).collect::<Vec<_>>(),
            [Some(off), None]
        );
        assert_eq!(family.binaries(), "baseline: `/new` with `{\"ebpf\":{\"file_access\":false}}`; current: `/new`");

        let single = Variants::new(&Context { daemon: PathBuf::from("/new"), ..Context::default() });
        assert!(!single.compared());
        assert_eq!(single.daemons().map(|(i, d)| (i, d.label)).collect::<Vec<_>>(), [(1, "agent")]);
        Ok(())
    }
}
