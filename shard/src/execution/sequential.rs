//! The sequential reference executor: transactions one after another over an
//! overlay of the committed state. Its result is the definition of a block's
//! result; the parallel executor must match it exactly.

use super::rules::{execute_transaction, TxReader};
use super::{BlockContext, BlockOutput, PreparedTx};
use crate::error::ShardError;
use crate::state::StateView;
use atoll_primitives::{StateKey, StateValue};
use std::collections::HashMap;

struct Overlay<'a> {
    /// What the block wrote so far (`None`: deleted).
    writes: HashMap<StateKey, Option<StateValue>>,
    state: &'a dyn StateView,
}

impl TxReader for Overlay<'_> {
    type Stop = ShardError;

    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ShardError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.state.get(key),
        }
    }
}

/// Executes `txs` in order against `state`.
pub fn execute(
    ctx: &BlockContext,
    txs: &[PreparedTx],
    state: &dyn StateView,
) -> Result<BlockOutput, ShardError> {
    let mut overlay = Overlay {
        writes: HashMap::with_capacity(txs.len()),
        state,
    };
    let mut effects = Vec::with_capacity(txs.len());
    for tx in txs {
        let mut effect = execute_transaction(ctx, tx, &mut overlay)?;
        overlay.writes.extend(std::mem::take(&mut effect.writes));
        effects.push(effect);
    }
    let changes = overlay.writes.into_iter().collect();
    Ok(BlockOutput::assemble(ctx, txs, effects, changes, None))
}
