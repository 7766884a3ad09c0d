//! Replication state of one partition: its role, and as leader the followers' log end offsets,
//! the in-sync replica set and the high watermark they define (Kafka's `Partition` +
//! `Replica`). Pure: time comes in as `now_ms`; ISR changes are proposed, and take effect when
//! the controller has committed them.

use std::collections::BTreeMap;

/// What one follower has replicated, as its leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset (the offset it fetched from last).
    pub log_end_offset: u64,
    /// The last time its log end offset reached the leader's.
    pub last_caught_up_ms: i64,
}

/// This replica's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Serves produce and fetch; tracks its followers.
    Leader {
        /// The other replicas, by node id.
        followers: BTreeMap<i32, FollowerState>,
        /// The committed in-sync replica set (this node included).
        isr: Vec<i32>,
        /// Followers proposed into the ISR and not yet committed or refused. They count for
        /// the high watermark from the moment they are proposed (Kafka's "maximal ISR"): once
        /// the controller commits them they may be elected, so nothing beyond their log may
        /// have been called committed.
        joining: Vec<i32>,
        /// Joining followers whose proposal got no answer: the controller may have committed
        /// it, so they still hold the high watermark, and their next fetch proposes them again.
        unanswered: Vec<i32>,
    },
    /// Replicates from `leader`.
    Follower {
        /// The leader's node id (-1: none).
        leader: i32,
    },
}

/// A change of the ISR the leader asks the controller for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The ISR the leader wants.
    pub isr: Vec<i32>,
    /// The follower an expansion adds (none for a shrink): it holds the high watermark until
    /// the controller commits or refuses it.
    pub joining: Option<i32>,
    /// Why (a log line).
    pub reason: String,
}

impl Role {
    /// A leader whose followers start unknown (log end offset 0) and caught up as of `now_ms`.
    pub fn leader(node_id: i32, replicas: &[i32], isr: &[i32], now_ms: i64) -> Self {
        let followers = replicas
            .iter()
            .filter(|r| **r != node_id)
            .map(|r| (*r, FollowerState { log_end_offset: 0, last_caught_up_ms: now_ms }))
            .collect();
        Self::Leader { followers, isr: isr.to_vec(), joining: Vec::new(), unanswered: Vec::new() }
    }

    /// The high watermark a leader with log end offset `leo` can claim: the smallest log end
    /// offset in the ISR and among the followers joining it (its own included); a follower
    /// keeps what its leader told it.
    pub fn high_watermark(&self, node_id: i32, leo: u64) -> Option<u64> {
        let Self::Leader { followers, isr, joining, .. } = self else { return None };
        let lowest = isr
            .iter()
            .chain(joining.iter())
            .filter(|r| **r != node_id)
            .map(|r| followers.get(r).map_or(0, |f| f.log_end_offset))
            .min()
            .unwrap_or(leo);
        Some(lowest.min(leo))
    }

    /// Records a follower's fetch from `fetch_offset`; returns an ISR expansion when the
    /// follower is out of the ISR, not already joining it, and has caught up to the high
    /// watermark.
    pub fn follower_fetched(
        &mut self,
        replica: i32,
        fetch_offset: u64,
        leo: u64,
        high_watermark: u64,
        now_ms: i64,
    ) -> Option<IsrProposal> {
        let Self::Leader { followers, isr, joining, unanswered } = self else { return None };
        let follower = followers.get_mut(&replica)?;
        follower.log_end_offset = fetch_offset.min(leo);
        if fetch_offset >= leo {
            follower.last_caught_up_ms = now_ms;
        }
        let reason = if let Some(at) = unanswered.iter().position(|r| *r == replica) {
            unanswered.remove(at);
            format!("replica {replica} proposed again: the last proposal got no answer")
        } else if !isr.contains(&replica)
            && !joining.contains(&replica)
            && fetch_offset >= high_watermark
        {
            joining.push(replica);
            format!("replica {replica} caught up to {fetch_offset}")
        } else {
            return None;
        };
        let mut expanded = isr.clone();
        expanded.push(replica);
        expanded.sort_unstable();
        Some(IsrProposal { isr: expanded, joining: Some(replica), reason })
    }

    /// An ISR shrink when in-sync followers have not caught up for `lag_max_ms`.
    pub fn lagging(&self, node_id: i32, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        let Self::Leader { followers, isr, .. } = self else { return None };
        let lagging: Vec<i32> = isr
            .iter()
            .copied()
            .filter(|r| *r != node_id)
            .filter(|r| followers.get(r).is_some_and(|f| now_ms - f.last_caught_up_ms > lag_max_ms))
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let shrunk = isr.iter().copied().filter(|r| !lagging.contains(r)).collect();
        Some(IsrProposal {
            isr: shrunk,
            joining: None,
            reason: format!("replicas {lagging:?} lag over {lag_max_ms} ms"),
        })
    }

    /// Applies the ISR the controller committed; the joining followers it holds have joined.
    pub fn set_isr(&mut self, committed: &[i32]) {
        if let Self::Leader { isr, joining, unanswered, .. } = self {
            *isr = committed.to_vec();
            joining.retain(|r| !committed.contains(r));
            unanswered.retain(|r| !committed.contains(r));
        }
    }

    /// The controller refused to let `replica` join the ISR: it no longer holds the high
    /// watermark back, and may be proposed again.
    pub fn join_refused(&mut self, replica: i32) {
        if let Self::Leader { joining, unanswered, .. } = self {
            joining.retain(|r| *r != replica);
            unanswered.retain(|r| *r != replica);
        }
    }

    /// The proposal to let `replica` join got no answer (the controller may or may not have
    /// committed it, as Kafka's AlterPartition retries on a lost reply): it keeps holding the
    /// high watermark, and is proposed again at its next fetch.
    pub fn join_unanswered(&mut self, replica: i32) {
        if let Self::Leader { joining, unanswered, .. } = self
            && joining.contains(&replica)
            && !unanswered.contains(&replica)
        {
            unanswered.push(replica);
        }
    }

    /// The committed ISR, for a leader.
    pub fn isr(&self) -> Option<&[i32]> {
        match self {
            Self::Leader { isr, .. } => Some(isr),
            Self::Follower { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_the_slowest_in_sync_replica() {
        let mut role = Role::leader(1, &[1, 2, 3], &[1, 2, 3], 0);
        assert_eq!(role.high_watermark(1, 10), Some(0));
        role.follower_fetched(2, 10, 10, 0, 5);
        role.follower_fetched(3, 7, 10, 0, 5);
        assert_eq!(role.high_watermark(1, 10), Some(7));
        role.set_isr(&[1, 2]);
        assert_eq!(
            role.high_watermark(1, 10),
            Some(10),
            "an out-of-sync replica no longer holds it back"
        );
        assert_eq!(Role::Follower { leader: 1 }.high_watermark(2, 10), None);
    }

    #[test]
    fn a_lagging_follower_is_proposed_out_and_a_caught_up_one_back_in() {
        let mut role = Role::leader(1, &[1, 2, 3], &[1, 2, 3], 0);
        role.follower_fetched(2, 10, 10, 0, 100);
        role.follower_fetched(3, 4, 10, 0, 100);
        assert_eq!(role.lagging(1, 20_000, 30_000), None);
        let shrink = role.lagging(1, 30_050, 30_000).unwrap();
        assert_eq!(shrink.isr, vec![1, 2], "{}", shrink.reason);
        role.set_isr(&shrink.isr);
        assert_eq!(role.follower_fetched(3, 9, 12, 10, 30_100), None, "below the high watermark");
        let expand = role.follower_fetched(3, 10, 12, 10, 30_200).unwrap();
        assert_eq!(expand.isr, vec![1, 2, 3]);
        assert_eq!(role.follower_fetched(3, 11, 12, 10, 30_300), None, "proposed once");
    }

    #[test]
    fn a_joining_follower_holds_the_high_watermark_until_its_fate_is_known() {
        let mut role = Role::leader(1, &[1, 2, 3], &[1, 2], 0);
        role.follower_fetched(2, 20, 20, 0, 10);
        assert_eq!(role.high_watermark(1, 20), Some(20));
        // Replica 3 reaches the high watermark and is proposed; the leader then takes more
        // records and replica 2 replicates them. Were 3 ignored until the controller commits
        // it, the high watermark would pass 3's log end, and 3 could be elected without them.
        assert!(role.follower_fetched(3, 20, 20, 20, 20).is_some());
        role.follower_fetched(2, 30, 30, 20, 30);
        assert_eq!(role.high_watermark(1, 30), Some(20), "held at the joining replica's end");
        role.follower_fetched(3, 25, 30, 20, 40);
        assert_eq!(role.high_watermark(1, 30), Some(25));
        role.join_refused(3);
        assert_eq!(role.high_watermark(1, 30), Some(30), "refused: no longer counted");
        assert!(role.follower_fetched(3, 30, 30, 30, 50).is_some(), "and proposed again");
        role.set_isr(&[1, 2, 3]);
        assert_eq!(role.follower_fetched(3, 30, 30, 30, 60), None, "joined");
    }

    #[test]
    fn an_unanswered_proposal_keeps_holding_the_high_watermark_and_is_sent_again() {
        let mut role = Role::leader(1, &[1, 2, 3], &[1, 2], 0);
        role.follower_fetched(2, 20, 20, 0, 10);
        assert!(role.follower_fetched(3, 20, 20, 20, 20).is_some());
        // The reply was lost: the controller may have committed 3, so it still counts.
        role.join_unanswered(3);
        role.follower_fetched(2, 30, 30, 20, 30);
        assert_eq!(role.high_watermark(1, 30), Some(20), "held at the unanswered replica's end");
        let again = role.follower_fetched(3, 24, 30, 20, 40).expect("proposed again");
        assert_eq!((again.isr, again.joining), (vec![1, 2, 3], Some(3)));
        assert_eq!(role.high_watermark(1, 30), Some(24));
        assert_eq!(role.follower_fetched(3, 26, 30, 20, 50), None, "sent once per lost reply");
        role.set_isr(&[1, 2, 3]);
        role.join_unanswered(3);
        assert_eq!(role.follower_fetched(3, 30, 30, 30, 60), None, "joined: nothing to resend");
    }
}
