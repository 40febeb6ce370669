//! The agent's one-second tick, shared by every stage that keeps time in seconds (the eBPF
//! monitor, the healthcheck stage): one timer wake-up a second for all of them.
//!
//! Each stage had its own `tokio::time::interval` of one second. On an idle host those were
//! most of the agent's wake-ups: each interval woke the thread once for itself, and Tokio's
//! timer wheel woke it once more per interval, ~64 ms before the deadline, to move the timer
//! from the wheel's 64 ms level to its 1 ms level. A wake-up after a second's sleep is dear
//! on a virtual machine (the caches and TLB are cold: 40-300 µs of CPU measured here for a
//! wake-up that did nothing). One kernel timer (`timerfd`, `CLOCK_MONOTONIC`) now wakes the
//! thread once a second, and the stages learn of it through a `watch` channel, polled in the
//! same wake-up. Where no timerfd can be made (a seccomp filter that refuses it), a Tokio
//! interval stands in (the same ticks, with the extra wake-up).
use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use tokio::{io::unix::AsyncFd, sync::watch};
use tokio_util::sync::CancellationToken;

/// The period.
pub const PERIOD: Duration = Duration::from_secs(1);

/// A stage's view of the tick: `changed().await` returns once per second (a stage that was
/// busy for longer sees one change, not a burst: ticks missed are not made up).
pub type Ticks = watch::Receiver<u64>;

/// Starts the tick (a task on the current runtime, ended by `shutdown`); its receivers.
pub fn start(shutdown: CancellationToken) -> Ticks {
    let (tx, rx) = watch::channel(0u64);
    let mut timer = match TimerFd::every(PERIOD) {
        Ok(t) => Timer::Fd(t),
        Err(e) => {
            tracing::debug!(error = %e, "no timerfd: the one-second tick uses a Tokio interval");
            Timer::interval()
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = timer.next() => match r {
                    Ok(()) => tx.send_modify(|n| *n += 1),
                    Err(e) => {
                        tracing::warn!(error = %e, "the one-second timer failed: a Tokio interval takes over");
                        timer = Timer::interval();
                    }
                },
            }
        }
    });
    rx
}

/// What wakes the tick: the timerfd, or a Tokio interval where there is none.
enum Timer {
    Fd(TimerFd),
    Tokio(tokio::time::Interval),
}

impl Timer {
    fn interval() -> Timer {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Timer::Tokio(interval)
    }

    /// Waits for the next tick.
    async fn next(&mut self) -> io::Result<()> {
        match self {
            Timer::Fd(t) => t.wait().await,
            Timer::Tokio(i) => {
                i.tick().await;
                Ok(())
            }
        }
    }
}

/// A periodic `CLOCK_MONOTONIC` timerfd, readable on each expiry.
struct TimerFd(AsyncFd<OwnedFd>);

impl TimerFd {
    fn every(period: Duration) -> io::Result<TimerFd> {
        // SAFETY: plain system calls; the descriptor is owned by the `OwnedFd` at once.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let ts = libc::timespec { tv_sec: period.as_secs() as _, tv_nsec: period.subsec_nanos() as _ };
        let spec = libc::itimerspec { it_interval: ts, it_value: ts };
        // SAFETY: `spec` lives across the call; the old value is not asked for.
        if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the `OwnedFd` is the timerfd's only owner and stays open inside the `AsyncFd`.
        let fd =
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.map_err(io::Error::from)?;
        Ok(TimerFd(fd))
    }

    /// Waits for the next expiry (or returns at once for one that passed unread).
    async fn wait(&self) -> io::Result<()> {
        loop {
            let mut guard = self.0.readable().await?;
            let read = guard.try_io(|fd| {
                let mut expirations = 0u64;
                // SAFETY: reads 8 bytes into a u64 that outlives the call.
                let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut expirations).cast(), 8) };
                if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
            });
            match read {
                Ok(r) => return r,
                // Not readable after all: wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stages each see the tick, about once a second, from the one timer.
    #[tokio::test(flavor = "current_thread")]
    async fn every_stage_sees_each_tick() {
        let shutdown = CancellationToken::new();
        let mut a = start(shutdown.clone());
        let mut b = a.clone();
        let t = std::time::Instant::now();
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(5), a.changed()).await.unwrap().unwrap();
            tokio::time::timeout(Duration::from_secs(5), b.changed()).await.unwrap().unwrap();
        }
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(1900), "two ticks in {took:?}");
        assert!(*a.borrow() >= 2);
        shutdown.cancel();
        // The task ends with the shutdown: the sender goes, and so does every change.
        tokio::time::timeout(Duration::from_secs(5), async { while a.changed().await.is_ok() {} }).await.unwrap();
    }

    /// The stand-in where no timerfd can be made ticks too.
    #[tokio::test(flavor = "current_thread")]
    async fn the_tokio_interval_ticks() {
        let mut t = Timer::interval();
        tokio::time::timeout(Duration::from_secs(5), t.next()).await.unwrap().unwrap();
    }

    #[test]
    fn the_timerfd_is_made_here() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = TimerFd::every(Duration::from_millis(20)).unwrap();
            tokio::time::timeout(Duration::from_secs(5), t.wait()).await.unwrap().unwrap();
        });
    }
}
