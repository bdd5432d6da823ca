//! Where a replica's log and its master's part, from their epochs (each term's number and
//! the commit-log offset where it began), and what a master checks of a slave's claim to
//! share its log.
//!
//! A term is an epoch *and* its start offset: two brokers promoted to the same epoch number
//! at different offsets (an operator retrying a promotion on another slave, two restarts
//! from stale configs) wrote different things under one number. Epochs alone cannot tell
//! two masters that each began epoch 1 at offset 0 apart, nor a master that lost its
//! unflushed tail in a crash and wrote other records at the same offsets in the same term:
//! the master also compares the bytes before the point a slave claims (see
//! [`super::handshake`]), and the slave falls back to an earlier point when they differ.

use crate::role::EpochEntry;

/// The bytes before a probed offset that are compared: more than one whole record (a record
/// is at most `maxMessageSize`, 4 MiB by default, plus its header), so the last record's
/// header — its store time, host and offsets — is always inside, unless the file starts
/// first (a file starts with a record).
pub const WINDOW: i64 = 4 * 1024 * 1024 + 64 * 1024;

/// Where the compared window before `offset` begins: `WINDOW` bytes back, but not before
/// the start of the commit-log file holding the byte before `offset` (records never span
/// files).
pub fn window_start(offset: i64, file_size: i64) -> i64 {
    if offset <= 0 || file_size <= 0 {
        return offset.max(0);
    }
    let file_start = (offset - 1) / file_size * file_size;
    (offset - WINDOW).max(file_start)
}

fn same_term(a: &EpochEntry, b: &EpochEntry) -> bool {
    a.epoch == b.epoch && a.start_offset == b.start_offset
}

/// The end of entry `i` of `list` on a log ending at `max`.
fn end_of(list: &[EpochEntry], i: usize, max: i64) -> i64 {
    list.get(i + 1)
        .map(|n| n.start_offset)
        .unwrap_or(max)
        .min(max)
}

/// How much of its log (ending at `my_max`) a replica may keep when it follows a master
/// whose terms are `theirs` and whose log ends at `master_max` (`i64::MAX` when the master
/// does not say, protocol 1): up to the end, on both, of the newest term both have — the
/// same epoch begun at the same offset. Never past the master's end: what lies beyond was
/// written in a term the master does not have, or lost by it.
///
/// `None`: both have terms and share none, and the master's history starts at 0 — not this
/// group's master (a wrong `haMasterAddress`, a forged role change); following it would
/// cut the whole log.
pub fn consistent_point(
    mine: &[EpochEntry],
    theirs: &[EpochEntry],
    my_max: i64,
    master_max: i64,
) -> Option<i64> {
    let ceiling = my_max.min(master_max).max(0);
    if mine.is_empty() || theirs.is_empty() {
        return Some(ceiling);
    }
    for (i, e) in mine.iter().enumerate().rev() {
        // The same number begun elsewhere is another term: look further back.
        if let Some(j) = theirs.iter().position(|t| same_term(t, e)) {
            return Some(end_of(mine, i, my_max).min(end_of(theirs, j, master_max)));
        }
    }
    // Nothing in common: what precedes the master's first term may stay; a master whose
    // history starts at 0 and shares nothing with ours is someone else's.
    match theirs[0].start_offset {
        0 if my_max > 0 => None,
        start => Some(ceiling.min(start)),
    }
}

/// The points below `first` a replica may fall back to when the master does not recognise
/// its bytes at `first`, newest first: where each term both have began, where the master's
/// first term began, and 0.
pub fn fallback_points(mine: &[EpochEntry], theirs: &[EpochEntry], first: i64) -> Vec<i64> {
    let mut points: Vec<i64> = mine
        .iter()
        .filter(|e| theirs.iter().any(|t| same_term(t, e)))
        .map(|e| e.start_offset)
        .collect();
    points.extend(theirs.first().map(|t| t.start_offset));
    points.push(0);
    points.retain(|p| *p < first && *p >= 0);
    points.sort_unstable_by(|a, b| b.cmp(a));
    points.dedup();
    points
}

/// The master's check of a slave's epochs: below `offset`, from where the slave's known
/// history begins, the slave's terms must be the master's — the same epochs, begun at the
/// same offsets. A slave with no epochs has no history to compare (the bytes decide).
pub fn check_terms_below(
    slave: &[EpochEntry],
    master: &[EpochEntry],
    offset: i64,
) -> Result<(), String> {
    let s: Vec<&EpochEntry> = slave.iter().filter(|e| e.start_offset < offset).collect();
    let Some(first) = s.first().map(|e| e.start_offset) else {
        return Ok(());
    };
    let m: Vec<&EpochEntry> = master
        .iter()
        .filter(|e| e.start_offset < offset && e.start_offset >= first)
        .collect();
    let same = s.len() == m.len() && s.iter().zip(&m).all(|(a, b)| same_term(a, b));
    // The slave's oldest term must also be the one the master had at that offset.
    let covering = master
        .iter()
        .rev()
        .find(|e| e.start_offset <= first)
        .is_some_and(|e| e.epoch == s[0].epoch);
    if same && covering {
        Ok(())
    } else {
        Err(format!(
            "below offset {offset} the slave's terms are {} and this master's {}",
            show(&s),
            show(&m)
        ))
    }
}

fn show(list: &[&EpochEntry]) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|e| format!("{}@{}", e.epoch, e.start_offset))
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_remoting::role::Epoch;

    fn e(epoch: i32, start: i64) -> EpochEntry {
        EpochEntry {
            epoch: Epoch(epoch),
            start_offset: start,
        }
    }

    const ANY: i64 = i64::MAX;

    #[test]
    fn where_histories_part() {
        // A former master (epoch 1, wrote up to 900) following the new one (epoch 2 from 600).
        assert_eq!(
            consistent_point(&[e(1, 0)], &[e(1, 0), e(2, 600)], 900, 1000),
            Some(600)
        );
        // A slave that never got that far keeps all it has.
        assert_eq!(
            consistent_point(&[e(1, 0)], &[e(1, 0), e(2, 600)], 400, 1000),
            Some(400)
        );
        // Same history: keep everything the master has too.
        assert_eq!(
            consistent_point(&[e(1, 0), e(2, 600)], &[e(1, 0), e(2, 600)], 1000, 1200),
            Some(1000)
        );
        // A fresh replica.
        assert_eq!(consistent_point(&[], &[e(3, 50)], 0, 80), Some(0));
        // Nothing in common: keep what precedes the master's first term.
        assert_eq!(
            consistent_point(&[e(7, 0)], &[e(8, 100)], 500, 900),
            Some(100)
        );
        // Nothing in common from offset 0: another group's master (or a forged one). Not
        // followed: that would cut the whole log.
        assert_eq!(consistent_point(&[e(1, 0)], &[e(99, 0)], 500, 900), None);
        assert_eq!(consistent_point(&[e(1, 0)], &[e(99, 0)], 0, 900), Some(0));
    }

    #[test]
    fn a_term_is_its_number_and_where_it_began() {
        // Two slaves of epoch 1 each promoted to epoch 2, at 500 and at 600: epoch 2 is not
        // shared; epoch 1 is, up to where the first of them left it.
        assert_eq!(
            consistent_point(&[e(1, 0), e(2, 500)], &[e(1, 0), e(2, 600)], 900, 800),
            Some(500)
        );
        assert_eq!(
            consistent_point(&[e(1, 0), e(2, 600)], &[e(1, 0), e(2, 500)], 900, 800),
            Some(500)
        );
        // Protocol 1 compared numbers only and kept all 900.
    }

    #[test]
    fn never_past_the_masters_end() {
        // The same term, but the replica holds more than the master (the master lost an
        // unflushed tail in a crash, or two masters each began epoch 1 at 0).
        assert_eq!(
            consistent_point(&[e(1, 0)], &[e(1, 0)], 900, 700),
            Some(700)
        );
        assert_eq!(consistent_point(&[], &[e(1, 0)], 900, 700), Some(700));
        assert_eq!(consistent_point(&[e(1, 0)], &[], 900, 700), Some(700));
        // Protocol 1: the master's end unknown.
        assert_eq!(
            consistent_point(&[e(1, 0)], &[e(1, 0)], 900, ANY),
            Some(900)
        );
    }

    #[test]
    fn fallbacks_are_shared_term_starts_then_zero() {
        let mine = [e(1, 0), e(2, 500), e(3, 800), e(5, 950)];
        let theirs = [e(1, 0), e(2, 500), e(3, 800), e(4, 900)];
        assert_eq!(fallback_points(&mine, &theirs, 900), vec![800, 500, 0]);
        assert_eq!(fallback_points(&mine, &theirs, 500), vec![0]);
        assert_eq!(fallback_points(&[], &[e(2, 300)], 700), vec![300, 0]);
        assert!(fallback_points(&[], &[], 0).is_empty());
    }

    #[test]
    fn a_master_recognises_only_its_own_terms_below_the_claimed_offset() {
        let master = [e(1, 0), e(2, 600), e(4, 900)];
        // A slave that followed it: its terms below the offset are the master's.
        assert_eq!(
            check_terms_below(&[e(1, 0), e(2, 600)], &master, 800),
            Ok(())
        );
        assert_eq!(check_terms_below(&master, &master, 1000), Ok(()));
        // Terms past the offset do not matter.
        assert_eq!(
            check_terms_below(&[e(1, 0), e(3, 700)], &master, 600),
            Ok(())
        );
        // The former master of epoch 1 claiming its own tail past 600.
        assert!(check_terms_below(&[e(1, 0)], &master, 800).is_err());
        // The same number begun elsewhere.
        assert!(check_terms_below(&[e(1, 0), e(2, 650)], &master, 800).is_err());
        // A history known only from a later term on: compared from there.
        assert_eq!(check_terms_below(&[e(2, 600)], &master, 800), Ok(()));
        assert!(check_terms_below(&[e(3, 600)], &master, 800).is_err());
        // No history: the bytes decide.
        assert_eq!(check_terms_below(&[], &master, 800), Ok(()));
    }

    #[test]
    fn windows_stay_in_one_file() {
        let size = 1 << 20;
        assert_eq!(window_start(0, size), 0);
        assert_eq!(window_start(100, size), 0);
        // At a file's start: the window is the end of the previous file.
        assert_eq!(window_start(size, size), 0);
        assert_eq!(window_start(size + 10, size), size);
        let big = 64 << 20;
        assert_eq!(window_start(big + 5 * WINDOW, big), big + 4 * WINDOW);
    }
}
