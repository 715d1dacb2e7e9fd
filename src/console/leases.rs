//! Query leases: a query shown to one operator is kept from the others for a while, so
//! that operators answering at the same time never get the same query.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::store::{Query, QueryId};

/// The operator holding a query and until when.
#[derive(Clone, Debug)]
struct Lease {
    operator: String,
    until: Instant,
}

/// Leases of open queries, in memory: after a restart of the node every open query is free.
#[derive(Debug)]
pub(crate) struct Leases {
    duration: Duration,
    leases: HashMap<QueryId, Lease>,
}

/// The outcome of [`Leases::next`].
#[derive(Debug, PartialEq)]
pub(crate) enum NextQuery {
    /// The query leased to the operator.
    Leased(Query),
    /// Every open query is leased to another operator.
    AllLeased { open: usize },
    /// No query is open.
    NoneOpen,
}

impl Leases {
    pub(crate) fn new(lease_secs: f64) -> Self {
        Self {
            duration: Duration::from_secs_f64(lease_secs),
            leases: HashMap::new(),
        }
    }

    /// Leases a query of `open` (oldest first) to `operator` and returns it: the query the
    /// operator holds already, else the oldest one nobody holds. The lease runs for the
    /// lease duration from `now`. Leases of queries that are no longer open are dropped.
    pub(crate) fn next(&mut self, operator: &str, open: Vec<Query>, now: Instant) -> NextQuery {
        self.leases
            .retain(|id, lease| lease.until > now && open.iter().any(|query| query.id == *id));
        if open.is_empty() {
            return NextQuery::NoneOpen;
        }
        let count = open.len();
        let held = open.iter().position(|query| {
            self.leases
                .get(&query.id)
                .is_some_and(|lease| lease.operator == operator)
        });
        let free = || {
            open.iter()
                .position(|query| !self.leases.contains_key(&query.id))
        };
        let Some(index) = held.or_else(free) else {
            return NextQuery::AllLeased { open: count };
        };
        let query = open.into_iter().nth(index).expect("index of an open query");
        self.leases.insert(
            query.id,
            Lease {
                operator: operator.to_owned(),
                until: now + self.duration,
            },
        );
        NextQuery::Leased(query)
    }

    /// Returns the operator holding an unexpired lease on `query`, if any.
    pub(crate) fn holder(&self, query: QueryId, now: Instant) -> Option<&str> {
        self.leases
            .get(&query)
            .filter(|lease| lease.until > now)
            .map(|lease| lease.operator.as_str())
    }

    /// Ends the lease on `query`.
    pub(crate) fn release(&mut self, query: QueryId) {
        self.leases.remove(&query);
    }

    /// Leases `query` to `operator` whoever held it, as after an undo returns it to them.
    pub(crate) fn grant(&mut self, query: QueryId, operator: &str, now: Instant) {
        self.leases.insert(
            query,
            Lease {
                operator: operator.to_owned(),
                until: now + self.duration,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EpisodeId, NewQuery, SegmentRef};

    fn query(id: i64) -> Query {
        let segment = SegmentRef {
            episode: EpisodeId(1),
            start: 0,
            length: 1,
        };
        Query {
            id: QueryId(id),
            query: NewQuery {
                left: segment,
                right: segment,
                selector: "random".to_owned(),
                encoder_version: None,
                created_at_unix_secs: 0.0,
                expires_at_unix_secs: None,
            },
        }
    }

    fn leased_id(next: NextQuery) -> Option<i64> {
        match next {
            NextQuery::Leased(query) => Some(query.id.get()),
            _ => None,
        }
    }

    #[test]
    fn operators_get_different_queries() {
        let mut leases = Leases::new(30.0);
        let now = Instant::now();
        let open = || vec![query(1), query(2)];
        assert_eq!(leased_id(leases.next("alice", open(), now)), Some(1));
        assert_eq!(leased_id(leases.next("bob", open(), now)), Some(2));
        assert_eq!(leased_id(leases.next("alice", open(), now)), Some(1));
        assert_eq!(
            leases.next("carol", open(), now),
            NextQuery::AllLeased { open: 2 }
        );
    }

    #[test]
    fn expired_lease_frees_query() {
        let mut leases = Leases::new(1.0);
        let now = Instant::now();
        leases.next("alice", vec![query(1)], now);
        let later = now + Duration::from_secs(2);
        assert_eq!(leases.holder(QueryId(1), later), None);
        assert_eq!(
            leased_id(leases.next("bob", vec![query(1)], later)),
            Some(1)
        );
    }

    #[test]
    fn closed_query_lease_dropped() {
        let mut leases = Leases::new(30.0);
        let now = Instant::now();
        leases.next("alice", vec![query(1), query(2)], now);
        assert_eq!(leases.next("bob", Vec::new(), now), NextQuery::NoneOpen);
        assert_eq!(leases.holder(QueryId(1), now), None);
    }
}
