//! One worker's (or one beneficiary's) record.

use std::collections::VecDeque;

use hyphae_proto::TaskId;

#[derive(Debug, Clone, Default)]
pub struct Standing {
    pub accepted: u64,
    pub rejected: u64,
    /// Valid results since the last invalid one: what trust is earned by.
    pub consecutive_valid: u64,
    /// Valid results it had when first caught with a wrong one.
    pub caught_after: Option<u64>,
    /// The latest tasks whose accepted result this worker returned (workers only).
    pub vouched: VecDeque<TaskId>,
}

impl Standing {
    pub(super) fn valid(&mut self) {
        self.accepted += 1;
        self.consecutive_valid += 1;
    }

    pub(super) fn invalid(&mut self) {
        self.caught_after.get_or_insert(self.accepted);
        self.rejected += 1;
        self.consecutive_valid = 0;
    }
}
