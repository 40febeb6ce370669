//! Loading ahead, on two threads, the programs whose verification takes long, before
//! [`super::attach`] attaches every program in order.
//!
//! The kernel verifies a program in the thread that loads it, and at start-up the agent waits
//! for little else: no exec or connect is seen until the programs are attached. On 6.18, one at
//! a time, they take 1.44 s with the path walks unrolled (the object kernels before 5.17 get;
//! seven programs take 1.39 s of it) and 0.59 s with the walks as `bpf_loop` callbacks (three
//! take 0.52 s of it). Loaded on two threads, the wait is the longer of two halves. Only
//! loading happens here: a program that fails to load ahead is loaded again by `attach`, which
//! reports the failure as it always has, so what is attached and what the doors say do not
//! depend on this step; one listed here that `attach` then leaves out was merely loaded for
//! nothing.
use std::{collections::HashMap, time::Instant};

use aya::{Btf, Ebpf, programs::Program};

/// A program to load ahead.
#[derive(Debug, Clone, Copy)]
pub struct Ahead {
    pub name: &'static str,
    /// The event of a `tp_btf` program (its BTF id is looked up when it loads).
    pub btf_event: Option<&'static str>,
    /// What verifying it takes, roughly, in ms (measured on 6.18): the two threads get halves
    /// of about equal weight.
    pub weight: u32,
}

/// Loads `wanted` on two threads, when the machine has two CPUs or more and there are two
/// programs or more to share; else leaves them all to `attach`.
pub fn load(ebpf: &mut Ebpf, btf: Option<&Btf>, wanted: &[Ahead]) {
    if wanted.len() < 2 || std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return;
    }
    let mut programs: HashMap<&str, &mut Program> = ebpf.programs_mut().collect();
    let halves = split(wanted)
        .map(|half| half.into_iter().filter_map(|a| programs.remove(a.name).map(|p| (a, p))).collect::<Vec<_>>());
    let started = Instant::now();
    std::thread::scope(|s| {
        for half in halves {
            s.spawn(move || {
                for (a, p) in half {
                    load_one(&a, p, btf);
                }
            });
        }
    });
    tracing::debug!(
        programs = wanted.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "the programs slowest to verify loaded ahead, on two threads"
    );
}

/// Two halves of about equal weight: heaviest first, each to the lighter half.
fn split(wanted: &[Ahead]) -> [Vec<Ahead>; 2] {
    let mut order = wanted.to_vec();
    order.sort_by_key(|a| std::cmp::Reverse(a.weight));
    let mut halves: [(u32, Vec<Ahead>); 2] = [(0, Vec::new()), (0, Vec::new())];
    for a in order {
        let half = if halves[0].0 <= halves[1].0 { 0 } else { 1 };
        halves[half].0 += a.weight;
        halves[half].1.push(a);
    }
    halves.map(|(_, h)| h)
}

fn load_one(a: &Ahead, p: &mut Program, btf: Option<&Btf>) {
    let started = Instant::now();
    let result = match (&mut *p, a.btf_event, btf) {
        (Program::TracePoint(t), None, _) => t.load(),
        (Program::RawTracePoint(t), None, _) => t.load(),
        (Program::BtfTracePoint(t), Some(event), Some(btf)) => t.load(event, btf),
        // Not a kind this loads (or no BTF for it): `attach` does.
        _ => return,
    };
    match result {
        Ok(()) => {
            let verified = p.info().ok().and_then(|i| i.verified_instruction_count());
            super::attach::log_load(a.name, started.elapsed(), verified);
        }
        // `attach` loads it again and reports why it does not load.
        Err(e) => tracing::debug!(program = a.name, error = %e, "a program did not load ahead; it is loaded in order"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ahead(name: &'static str, weight: u32) -> Ahead {
        Ahead { name, btf_event: None, weight }
    }

    #[test]
    fn the_halves_share_the_work_and_hold_each_program_once() {
        // The seven programs as they load on 6.18 with the path walks unrolled.
        let wanted = [
            ahead("sched_process_exec", 180),
            ahead("raw_sys_exit", 173),
            ahead("raw_sys_exit_net", 150),
            ahead("raw_sys_exit_file", 488),
            ahead("raw_sys_exit_handle", 124),
            ahead("io_uring_complete", 143),
            ahead("io_uring_submit_req", 128),
        ];
        let halves = split(&wanted);
        let weight = |h: &[Ahead]| h.iter().map(|a| a.weight).sum::<u32>();
        let (a, b) = (weight(&halves[0]), weight(&halves[1]));
        assert_eq!(a + b, 1386);
        // The longer half: 755 ms of the 1,386 the programs take one after the other (488 +
        // 143 + 124 against 180 + 173 + 150 + 128).
        assert_eq!(a.max(b), 755);
        let mut names: Vec<&str> = halves.iter().flatten().map(|a| a.name).collect();
        names.sort_unstable();
        let mut all: Vec<&str> = wanted.iter().map(|a| a.name).collect();
        all.sort_unstable();
        assert_eq!(names, all);
        // The heaviest alone cannot be split: it is the floor of the longer half.
        let [x, y] = split(&[ahead("big", 900), ahead("a", 100), ahead("b", 100)]);
        assert_eq!((weight(&x), weight(&y)), (900, 200));
    }
}
