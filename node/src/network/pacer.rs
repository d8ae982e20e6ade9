//! Client-side pacing of sync requests: this node never sends a peer requests faster than
//! that peer's sync server admits them.
//!
//! Every sync server limits each peer with a token bucket (`[sync] serve_requests_per_sec`,
//! burst `serve_burst`; [`crate::sync_server::RequestLimiter`]) and counts a peer that goes
//! over it against the peer's score ([`crate::network::PeerFault::AbusiveRequests`]), so a
//! flooder is banned. An honest node must therefore stay under the servers' rate however
//! busy it is: under load, a full node that fetched the missing transactions of every
//! compact block from the one validator that built them went over it and was penalized.
//!
//! [`RequestPacer`] keeps the mirror image of the server's bucket per peer, with a lower
//! rate and a smaller burst (`[sync] send_requests_per_sec`, `send_burst`: by default 40
//! and 40 against the servers' 50 and 100), charged with the same cost of each request
//! ([`crate::sync::request_cost`]). A request that finds the bucket short waits until its
//! tokens have accrued (the tokens are reserved at once, so later requests queue behind
//! it); a request that would wait longer than the caller's bound is refused at once
//! ([`Pace::Refuse`]) and the caller asks another peer or retries later. The wait is
//! computed from the clock the caller passes in: the pacer is pure state.
//!
//! Why the margins suffice: after idling, the client sends at most `send_burst + t ×
//! send_requests_per_sec` tokens in any `t` seconds, and the server admits `serve_burst + t ×
//! serve_requests_per_sec`; with 40 + 40t ≤ 100 + 50t the server never runs short, and the
//! 60-token gap absorbs requests that arrive bunched after network delays.

use std::collections::HashMap;

use libp2p::PeerId;

/// Most peers the pacer remembers; when full, a peer whose bucket has refilled (it is idle)
/// is forgotten, else the one least recently used.
pub const PACED_PEERS_MAX: usize = 4096;

/// Rate and burst of the requests this node sends each peer (from `[sync]` in the node
/// config). Keep both below the peers' `serve_requests_per_sec` and `serve_burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestPacing {
    /// Request tokens per second per peer (refill rate), ≥ 1.
    pub requests_per_sec: u32,
    /// Tokens a peer's bucket holds after idling, ≥ 1 and at least the costliest request
    /// ([`crate::sync::REQUEST_COST_MAX`]), or that request could never be sent.
    pub burst: u32,
}

impl Default for RequestPacing {
    /// 40 tokens a second, burst 40: below the sync server's default 50 and 100.
    fn default() -> Self {
        RequestPacing {
            requests_per_sec: 40,
            burst: 40,
        }
    }
}

impl RequestPacing {
    /// Checks the bounds above; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.requests_per_sec == 0 {
            return Err("send_requests_per_sec: must be at least 1".into());
        }
        if self.burst < crate::sync::REQUEST_COST_MAX {
            return Err(format!(
                "send_burst: must be at least {} (the cost of the costliest sync request)",
                crate::sync::REQUEST_COST_MAX
            ));
        }
        Ok(())
    }
}

/// What the pacer says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Send after waiting this many ms (0: at once); the tokens are reserved.
    SendAfterMs(u64),
    /// The wait would exceed the caller's bound: do not send (nothing reserved).
    Refuse {
        /// How long the request would have had to wait, ms.
        wait_ms: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens now (negative: reserved by requests still waiting to be sent).
    tokens: f64,
    last_ms: u64,
}

/// Per-peer token buckets of the requests this node sends. Pure state: the caller passes
/// the clock (ms, monotonic).
#[derive(Debug)]
pub struct RequestPacer {
    pacing: RequestPacing,
    peers: HashMap<PeerId, Bucket>,
}

impl RequestPacer {
    /// A pacer with every peer's bucket full.
    ///
    /// Panics if `pacing` is invalid ([`RequestPacing::validate`]): configs are validated
    /// before the network starts.
    pub fn new(pacing: RequestPacing) -> Self {
        assert!(pacing.validate().is_ok(), "invalid pacing {pacing:?}");
        RequestPacer {
            pacing,
            peers: HashMap::new(),
        }
    }

    /// Reserves `cost` tokens (clamped to 1..=burst) of `peer`'s bucket at `now_ms`, and says
    /// how long to wait before sending; refuses without reserving if that wait would exceed
    /// `wait_max_ms`.
    pub fn reserve(&mut self, peer: PeerId, now_ms: u64, cost: u32, wait_max_ms: u64) -> Pace {
        let rate_per_ms = f64::from(self.pacing.requests_per_sec) / 1000.0;
        let burst = f64::from(self.pacing.burst);
        let cost = f64::from(cost.clamp(1, self.pacing.burst));
        if !self.peers.contains_key(&peer) && self.peers.len() >= PACED_PEERS_MAX {
            self.forget_one(now_ms);
        }
        let bucket = self.peers.entry(peer).or_insert(Bucket {
            tokens: burst,
            last_ms: now_ms,
        });
        let elapsed_ms = now_ms.saturating_sub(bucket.last_ms);
        bucket.tokens = (bucket.tokens + elapsed_ms as f64 * rate_per_ms).min(burst);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        let short = cost - bucket.tokens;
        let wait_ms = if short <= 0.0 {
            0
        } else {
            (short / rate_per_ms).ceil() as u64
        };
        if wait_ms > wait_max_ms {
            return Pace::Refuse { wait_ms };
        }
        bucket.tokens -= cost;
        Pace::SendAfterMs(wait_ms)
    }

    /// Peers remembered now (at most [`PACED_PEERS_MAX`]).
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Forgets one peer to make room: one whose bucket has refilled by `now_ms` (forgetting it
    /// changes nothing), else the least recently used.
    fn forget_one(&mut self, now_ms: u64) {
        let rate_per_ms = f64::from(self.pacing.requests_per_sec) / 1000.0;
        let burst = f64::from(self.pacing.burst);
        let full = self.peers.iter().find(|(_, b)| {
            b.tokens + now_ms.saturating_sub(b.last_ms) as f64 * rate_per_ms >= burst
        });
        let victim = match full {
            Some((p, _)) => Some(*p),
            None => self
                .peers
                .iter()
                .min_by_key(|(_, b)| b.last_ms)
                .map(|(p, _)| *p),
        };
        if let Some(p) = victim {
            self.peers.remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync_server::{Admission, RequestLimiter, SyncServerLimits};

    fn peer(i: u8) -> PeerId {
        crate::keys::libp2p_keypair([i; 32]).public().to_peer_id()
    }

    #[test]
    fn a_burst_goes_at_once_then_requests_are_spaced_at_the_rate() {
        let mut p = RequestPacer::new(RequestPacing {
            requests_per_sec: 10,
            burst: 20,
        });
        for _ in 0..20 {
            assert_eq!(p.reserve(peer(1), 0, 1, 10_000), Pace::SendAfterMs(0));
        }
        // The 21st waits for one token (100 ms at 10/s), the 22nd for two.
        assert_eq!(p.reserve(peer(1), 0, 1, 10_000), Pace::SendAfterMs(100));
        assert_eq!(p.reserve(peer(1), 0, 1, 10_000), Pace::SendAfterMs(200));
        // Another peer has its own bucket.
        assert_eq!(p.reserve(peer(2), 0, 1, 10_000), Pace::SendAfterMs(0));
        // A costly request waits for all its tokens.
        assert_eq!(p.reserve(peer(1), 0, 5, 10_000), Pace::SendAfterMs(700));
    }

    #[test]
    fn a_wait_beyond_the_bound_is_refused_and_reserves_nothing() {
        let mut p = RequestPacer::new(RequestPacing {
            requests_per_sec: 10,
            burst: 20,
        });
        for _ in 0..20 {
            assert_eq!(p.reserve(peer(1), 0, 1, 0), Pace::SendAfterMs(0));
        }
        assert_eq!(p.reserve(peer(1), 0, 1, 50), Pace::Refuse { wait_ms: 100 });
        // Nothing was reserved by the refusal: 100 ms later one token is there.
        assert_eq!(p.reserve(peer(1), 100, 1, 0), Pace::SendAfterMs(0));
        assert_eq!(p.reserve(peer(1), 100, 1, 0), Pace::Refuse { wait_ms: 100 });
    }

    #[test]
    fn an_idle_bucket_refills_only_to_the_burst() {
        let mut p = RequestPacer::new(RequestPacing {
            requests_per_sec: 100,
            burst: 20,
        });
        assert_eq!(p.reserve(peer(1), 0, 20, 0), Pace::SendAfterMs(0));
        // An hour idle: 20 tokens, not 360,000.
        for _ in 0..20 {
            assert_eq!(p.reserve(peer(1), 3_600_000, 1, 0), Pace::SendAfterMs(0));
        }
        assert_eq!(
            p.reserve(peer(1), 3_600_000, 1, 0),
            Pace::Refuse { wait_ms: 10 }
        );
    }

    #[test]
    fn the_pacer_remembers_a_bounded_number_of_peers() {
        let mut p = RequestPacer::new(RequestPacing::default());
        for i in 0..PACED_PEERS_MAX + 10 {
            let id = PeerId::random();
            assert!(matches!(
                p.reserve(id, i as u64, 1, 0),
                Pace::SendAfterMs(0)
            ));
        }
        assert_eq!(p.peers(), PACED_PEERS_MAX);
    }

    #[test]
    fn invalid_pacing_is_refused() {
        assert!(
            RequestPacing {
                requests_per_sec: 0,
                burst: 40
            }
            .validate()
            .is_err()
        );
        assert!(
            RequestPacing {
                requests_per_sec: 40,
                burst: 1
            }
            .validate()
            .unwrap_err()
            .contains("send_burst")
        );
        assert!(RequestPacing::default().validate().is_ok());
    }

    /// The property the pacer exists for: a client that sends every request as soon as its
    /// pacer allows, with the default pacing, is never over the rate of a sync server with
    /// the default limits, whatever mix of costs it sends, even when a whole burst of its
    /// requests arrives at the server at once after a network delay.
    #[test]
    fn a_paced_client_is_never_over_a_default_servers_rate() {
        let server_limits = SyncServerLimits {
            requests_per_sec: 50,
            burst: 100,
            in_flight_per_peer_max: u32::MAX,
            in_flight_max: u32::MAX,
        };
        let client = peer(7);
        // A deterministic mix of costs (1, 2 and 17, as status/range/chunk requests cost).
        let costs = [1u32, 1, 2, 1, 17, 1, 2, 2, 1, 1];
        for delay_pattern in 0..3u64 {
            let mut pacer = RequestPacer::new(RequestPacing::default());
            let mut server = RequestLimiter::new(server_limits);
            let mut now_ms = 0u64;
            let mut sends = Vec::new();
            for i in 0..2000usize {
                let cost = costs[i % costs.len()];
                // Requests are issued as fast as possible; some idle gaps in between.
                if i % 500 == 0 {
                    now_ms += 5_000;
                }
                match pacer.reserve(client, now_ms, cost, u64::MAX) {
                    Pace::SendAfterMs(w) => sends.push((now_ms + w, cost)),
                    Pace::Refuse { .. } => unreachable!("no bound on the wait"),
                }
                // The issuer waits for its own request's turn before issuing the next.
                now_ms = sends.last().unwrap().0;
            }
            // Delivery: pattern 0 on time; 1 every request 30 ms late except every 10th, which
            // is on time (reordering); 2 requests held back and delivered in bunches every
            // 500 ms.
            let mut arrivals: Vec<(u64, u32)> = sends
                .iter()
                .enumerate()
                .map(|(i, &(t, c))| match delay_pattern {
                    0 => (t, c),
                    1 => (if i % 10 == 0 { t } else { t + 30 }, c),
                    _ => (t.div_ceil(500) * 500, c),
                })
                .collect();
            arrivals.sort_by_key(|&(t, _)| t);
            for (i, &(t, c)) in arrivals.iter().enumerate() {
                let verdict = server.admit(client, t, c);
                assert_eq!(
                    verdict,
                    Admission::Serve,
                    "pattern {delay_pattern}: request {i} (cost {c}) at {t} ms refused"
                );
                server.done(client);
            }
        }
    }
}
