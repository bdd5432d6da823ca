//! Events of one pass, published after its status: a master change or why none could
//! happen, second masters told to step down, and a change of readiness.

use super::failover::Outcome;
use super::status::Observed;
use crate::controller::Context;
use crate::crd::BrokerGroup;

pub async fn publish(ctx: &Context, bg: &BrokerGroup, o: &Observed<'_>, stepped_down: &[String]) {
    match o.failover {
        Some(Outcome::Promoted {
            pod,
            epoch,
            switchover,
        }) => {
            let note = if *switchover {
                format!("master switched to {pod} with nothing cut, epoch {epoch}")
            } else {
                format!("master unreachable past the grace period: {pod} promoted, epoch {epoch}")
            };
            ctx.normal(bg, "Promoted", "Failover", note).await
        }
        Some(Outcome::Blocked(reason)) if o.master_ready() => {
            ctx.warn(bg, "SwitchBlocked", "Switchover", reason.clone())
                .await
        }
        Some(Outcome::Blocked(reason)) => {
            ctx.warn(bg, "FailoverBlocked", "Failover", reason.clone())
                .await
        }
        Some(Outcome::Waiting(_)) | None => {}
    }
    for pod in stepped_down {
        ctx.warn(
            bg,
            "SecondMaster",
            "Failover",
            format!(
                "{pod} ran as a master besides {}; told to step down and follow",
                o.leader.pod
            ),
        )
        .await;
    }
    let r = o.rollout;
    ctx.ready_transition(
        bg,
        o.previous,
        o.all_ready(),
        "Ready",
        &format!(
            "{}/{} brokers ready, {} updated",
            r.ready, o.want, r.updated
        ),
    )
    .await;
}
