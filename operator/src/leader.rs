//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leader election does it:
//! only the holder of an unexpired lease reconciles, so several operator replicas can run for
//! availability without two of them writing the same objects.
//!
//! Every write carries the `resourceVersion` it read, so of two replicas racing for an expired
//! lease the API server lets exactly one win (the other gets 409 Conflict). Expiry is judged
//! by this replica's own clock: a lease counts as expired when its holder and renew time have
//! not changed for `lease_duration` since this replica first saw them, which no clock skew
//! between nodes can fool.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;
use tokio::time::Instant;

/// Default name of the operator's Lease.
pub const LEASE_NAME: &str = "rocketmq-operator-leader";

#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down (shorter than the lease).
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        // client-go's defaults.
        ElectionConfig {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One replica's view of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    pub config: ElectionConfig,
    /// The (holder, renew time) last read, and when this replica first saw it.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
    /// When this replica last acquired or renewed the lease.
    last_renewal: Option<Instant>,
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, config: ElectionConfig) -> Self {
        LeaderElector {
            api,
            name: name.into(),
            identity: identity.into(),
            config,
            observed: None,
            last_renewal: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this replica still leads: it renewed within the renew deadline.
    pub fn is_leading(&self) -> bool {
        self.last_renewal
            .is_some_and(|t| t.elapsed() < self.config.renew_deadline)
    }

    /// One attempt to acquire or renew. `Ok(true)`: this replica holds the lease now.
    /// A conflict (another replica wrote first) is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = match self.api.get_opt(&self.name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(now, now, 0)),
                };
                return self
                    .won(self.api.create(&PostParams::default(), &lease).await)
                    .inspect(|&won| {
                        if won {
                            tracing::info!(identity = %self.identity, lease = %self.name, "became leader (new lease)");
                        }
                    });
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let seen = (holder.clone(), spec.renew_time.clone());
        let first_seen = match &self.observed {
            Some((h, r, at)) if (h, r) == (&seen.0, &seen.1) => *at,
            _ => Instant::now(),
        };
        self.observed = Some((seen.0, seen.1, first_seen));

        let ours = holder.as_deref() == Some(self.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(s.max(1) as u64))
            .unwrap_or(self.config.lease_duration);
        let expired = holder.is_none() || first_seen.elapsed() >= duration;
        if !ours && !expired {
            self.last_renewal = None;
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let (acquired_at, transitions) = if ours {
            let acquired = spec.acquire_time.map(|t| t.0).unwrap_or(now);
            (acquired, transitions)
        } else {
            (now, transitions + 1)
        };
        let mut next = current;
        next.spec = Some(self.spec(acquired_at, now, transitions));
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        let won = self.won(
            self.api
                .replace(&self.name, &PostParams::default(), &next)
                .await,
        )?;
        if won && !ours {
            tracing::info!(identity = %self.identity, lease = %self.name, previous = ?holder, "became leader");
        }
        Ok(won)
    }

    /// Gives the lease up at shutdown so another replica takes over at once instead of after
    /// the lease duration.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.last_renewal = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(identity = %self.identity, "released the leader lease");
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs().max(1) as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    fn won(&mut self, write: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
        match write {
            Ok(lease) => {
                let spec = lease.spec.unwrap_or_default();
                self.observed = Some((spec.holder_identity, spec.renew_time, Instant::now()));
                self.last_renewal = Some(Instant::now());
                Ok(true)
            }
            // Someone else created or updated the lease between our read and our write.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                self.last_renewal = None;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
