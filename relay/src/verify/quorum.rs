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
}
