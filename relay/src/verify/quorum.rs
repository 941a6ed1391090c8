//! The quorum rule: accept a result once at least `redundancy` workers agree on it and they
//! outnumber every group agreeing on another answer; otherwise ask one more worker, up to a cap,
//! then fail the task loudly rather than guess. Wrong answers that disagree with each other (noise,
//! stale results) are no group: three of them do not outvote two workers that agree, while two
//! colluders agreeing on one wrong answer tie two honest workers and call for another.

/// What to do with a task whose outstanding replicas have all answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `agreeing` (indices into the results) match `canonical`, which becomes the task's result.
    Accept { canonical: usize, agreeing: Vec<usize> },
    /// No quorum yet: give the task to one more distinct worker.
    OneMore,
    /// The cap is reached without a quorum.
    Fail { reason: String },
}

/// The quorum parameters of a job.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Distinct workers that must agree.
    pub redundancy: u32,
    /// Most replicas ever run for one task.
    pub max_replicas: u32,
}

impl Rule {
    /// Enough room for every honest replica to outvote one liar per needed agreement.
    pub fn for_redundancy(redundancy: u32) -> Rule {
        Rule { redundancy, max_replicas: 2 * redundancy + 1 }
    }
}

/// Decides on `n` results, given `matches(i, j)` telling whether results `i` and `j` agree.
/// `matches` need not be transitive (float tolerance is not), so each result is taken in turn as
/// the candidate and the one most others agree with wins; ties go to the earliest.
pub fn decide(n: usize, rule: Rule, mut matches: impl FnMut(usize, usize) -> bool) -> Decision {
    let mut best: Option<(usize, Vec<usize>)> = None;
    for candidate in 0..n {
        let agreeing: Vec<usize> = (0..n).filter(|&j| j == candidate || matches(candidate, j)).collect();
        if best.as_ref().is_none_or(|(_, b)| agreeing.len() > b.len()) {
            best = Some((candidate, agreeing));
        }
    }
    if let Some((canonical, agreeing)) = best {
        let rest: Vec<usize> = (0..n).filter(|j| !agreeing.contains(j)).collect();
        let rival = rest.iter().map(|&j| rest.iter().filter(|&&k| k == j || matches(j, k)).count()).max().unwrap_or(0);
        if agreeing.len() >= rule.redundancy as usize && agreeing.len() > rival {
            return Decision::Accept { canonical, agreeing };
        }
    }
    if (n as u32) < rule.max_replicas {
        Decision::OneMore
    } else {
        Decision::Fail {
            reason: format!("{n} replicas from distinct workers did not reach a quorum of {}", rule.redundancy),
        }
    }
}

/// How many times its usual cap of replicas a task may take while workers with no record yet
/// are among those disagreeing on it.
pub const UNPROVEN_ROOM: u32 = 3;

/// What the relay knows of the worker behind a result, as far as the vote goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Voter {
    /// Caught lying and not yet trusted again.
    pub suspect: bool,
    /// A long enough record of valid results.
    pub trusted: bool,
}

/// The most replicas a task gets before it fails: [`UNPROVEN_ROOM`] times the cap while a worker
/// with no record yet (and not caught) is among `voters`, the cap otherwise.
fn room(voters: &[Voter], rule: Rule) -> u32 {
    let unproven = voters.iter().any(|v| !v.suspect && !v.trusted);
    if unproven { UNPROVEN_ROOM * rule.max_replicas } else { rule.max_replicas }
}

/// Whether a task judged without a vote (the relay checks each result itself) has had its
/// room: suspects' results count against [`UNPROVEN_ROOM`] times the cap only, like in [`vote`].
pub fn exhausted(voters: &[Voter], rule: Rule) -> bool {
    let counted = voters.iter().filter(|v| !v.suspect).count() as u32;
    counted >= room(voters, rule) || voters.len() as u32 >= UNPROVEN_ROOM * rule.max_replicas
}

/// Decides on the results of `voters` (one per result, in order), weighing who returned them.
///
/// Suspects do not vote: the quorum is reached among the others, and a suspect's result is then
/// judged like any against the outcome, so two colluders agreeing on a wrong answer never outvote
/// one honest worker. Voters with no record yet may be liars not caught so far: while one is
/// among them a task gets [`UNPROVEN_ROOM`] times the room before it fails, and by the time it
/// uses it the liars among them have mostly been caught elsewhere and lost their votes. Only
/// workers that all earned trust and still disagree fail a task at the usual cap.
pub fn vote(voters: &[Voter], rule: Rule, mut matches: impl FnMut(usize, usize) -> bool) -> Decision {
    let counted: Vec<usize> = (0..voters.len()).filter(|&i| !voters[i].suspect).collect();
    let widest = UNPROVEN_ROOM * rule.max_replicas;
    let counting = Rule { max_replicas: room(voters, rule), ..rule };
    match decide(counted.len(), counting, |i, j| matches(counted[i], counted[j])) {
        Decision::Accept { canonical, .. } => {
            let canonical = counted[canonical];
            let agreeing = (0..voters.len()).filter(|&k| k == canonical || matches(canonical, k)).collect();
            Decision::Accept { canonical, agreeing }
        }
        // Suspects' replicas take room but not votes; past the widest room, give up.
        Decision::OneMore if voters.len() as u32 >= widest => Decision::Fail {
            reason: format!("{} replicas, most from workers caught lying, reached no quorum", voters.len()),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_values(values: &[u32], redundancy: u32) -> Decision {
        decide(values.len(), Rule::for_redundancy(redundancy), |i, j| values[i] == values[j])
    }

    #[test]
    fn agreeing_replicas_are_accepted() {
        assert_eq!(decide_values(&[7, 7], 2), Decision::Accept { canonical: 0, agreeing: vec![0, 1] });
    }

    #[test]
    fn disagreeing_replicas_get_a_third_opinion() {
        assert_eq!(decide_values(&[7, 8], 2), Decision::OneMore);
        assert_eq!(decide_values(&[7, 8, 8], 2), Decision::Accept { canonical: 1, agreeing: vec![1, 2] });
    }

    #[test]
    fn a_tie_between_two_pairs_is_not_a_majority() {
        assert_eq!(decide_values(&[1, 2, 1, 2], 2), Decision::OneMore);
        assert_eq!(decide_values(&[1, 2, 1, 2, 2], 2), Decision::Accept { canonical: 1, agreeing: vec![1, 3, 4] });
    }

    #[test]
    fn scattered_wrong_answers_do_not_outvote_two_that_agree() {
        assert_eq!(decide_values(&[7, 1, 2, 7], 2), Decision::Accept { canonical: 0, agreeing: vec![0, 3] });
        // A group agreeing on another answer does.
        assert_eq!(decide_values(&[7, 1, 1, 7], 2), Decision::OneMore);
    }

    #[test]
    fn no_quorum_at_the_cap_fails_loudly() {
        match decide_values(&[1, 2, 3, 4, 5], 2) {
            Decision::Fail { reason } => assert!(reason.contains("5 replicas")),
            other => panic!("expected Fail, got {other:?}"),
        }
    }

    #[test]
    fn redundancy_one_accepts_a_single_result() {
        assert_eq!(decide_values(&[3], 1), Decision::Accept { canonical: 0, agreeing: vec![0] });
    }

    #[test]
    fn majority_wins_even_when_liars_agree_with_each_other() {
        // The two liars agree; three honest replicas still outnumber them.
        assert_eq!(decide_values(&[9, 9, 4, 4, 4], 2), Decision::Accept { canonical: 2, agreeing: vec![2, 3, 4] });
    }

    fn vote_values(values: &[u32], voters: &[Voter]) -> Decision {
        vote(voters, Rule::for_redundancy(2), |i, j| values[i] == values[j])
    }

    const NEWCOMER: Voter = Voter { suspect: false, trusted: false };
    const TRUSTED: Voter = Voter { suspect: false, trusted: true };
    const SUSPECT: Voter = Voter { suspect: true, trusted: false };

    #[test]
    fn two_suspects_agreeing_do_not_make_a_quorum_against_one_honest_result() {
        let voters = [TRUSTED, SUSPECT, SUSPECT];
        assert_eq!(vote_values(&[1, 2, 2], &voters), Decision::OneMore);
        // Once an honest worker agrees, the suspects' results are judged against it.
        let voters = [TRUSTED, SUSPECT, SUSPECT, NEWCOMER];
        assert_eq!(vote_values(&[1, 2, 2, 1], &voters), Decision::Accept { canonical: 0, agreeing: vec![0, 3] });
    }

    #[test]
    fn newcomers_disagreeing_get_more_room_before_the_task_fails() {
        let scattered: Vec<u32> = (0..5).collect();
        assert_eq!(vote_values(&scattered, &[NEWCOMER; 5]), Decision::OneMore);
        let scattered: Vec<u32> = (0..15).collect();
        assert!(matches!(vote_values(&scattered, &[NEWCOMER; 15]), Decision::Fail { .. }));
    }

    #[test]
    fn trusted_workers_that_still_disagree_fail_the_task_at_the_usual_cap() {
        let scattered: Vec<u32> = (0..5).collect();
        assert!(matches!(vote_values(&scattered, &[TRUSTED; 5]), Decision::Fail { .. }));
        // A newcomer among them is reason enough to look further.
        let voters = [TRUSTED, TRUSTED, TRUSTED, TRUSTED, NEWCOMER];
        assert_eq!(vote_values(&scattered, &voters), Decision::OneMore);
    }

    #[test]
    fn checked_results_from_suspects_and_newcomers_do_not_exhaust_a_task_at_the_cap() {
        let rule = Rule::for_redundancy(1);
        assert_eq!(rule.max_replicas, 3);
        assert!(exhausted(&[TRUSTED; 3], rule));
        assert!(!exhausted(&[SUSPECT, SUSPECT, SUSPECT, TRUSTED], rule));
        assert!(!exhausted(&[NEWCOMER, TRUSTED, TRUSTED], rule));
        assert!(exhausted(&[SUSPECT; 9], rule));
    }

    #[test]
    fn suspects_take_room_but_past_the_widest_room_the_task_fails() {
        let mut voters = vec![SUSPECT; 14];
        voters.push(TRUSTED);
        let scattered: Vec<u32> = (0..15).collect();
        match vote_values(&scattered, &voters) {
            Decision::Fail { reason } => assert!(reason.contains("caught lying"), "{reason}"),
            other => panic!("expected Fail, got {other:?}"),
        }
    }
}
