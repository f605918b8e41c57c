//! revm's mainnet handler, plus one thing: before each frame that creates a
//! contract (a creation transaction, `CREATE`, `CREATE2`), it tells the
//! database the address about to be created.
//!
//! The database needs it because it shows an address of another shard's
//! range as reverting stand-in code (so a call to it fails visibly), and a
//! creation would collide with that code. A contract lives on its
//! creator's shard whatever its address, so an address about to be
//! created here is shown as the empty account it is. revm loads the
//! created address right after this hook, from the same caller nonce.

use revm::context::result::{EVMError, HaltReason, InvalidTransaction};
use revm::context::{ContextTr, JournalTr};
use revm::database_interface::Database;
use revm::handler::{EthFrame, EvmTr, FrameResult, Handler, ItemOrResult};
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::interpreter_action::{FrameInit, FrameInput};
use revm::primitives::Address;
use revm::state::EvmState;
use std::marker::PhantomData;

/// A database that wants to know which addresses are being created.
pub(super) trait NoteCreation {
    /// `address` is about to be created in this transaction.
    fn creating(&mut self, address: Address);
}

/// The mainnet handler that calls [`NoteCreation::creating`] before each
/// creation frame.
pub(super) struct Creations<EVM>(PhantomData<EVM>);

impl<EVM> Creations<EVM> {
    pub(super) fn new() -> Creations<EVM> {
        Creations(PhantomData)
    }
}

impl<EVM> Handler for Creations<EVM>
where
    EVM: EvmTr<
        Context: ContextTr<Journal: JournalTr<State = EvmState>, Db: NoteCreation>,
        Frame = EthFrame<EthInterpreter>,
    >,
{
    type Evm = EVM;
    type Error = EVMError<<<EVM::Context as ContextTr>::Db as Database>::Error, InvalidTransaction>;
    type HaltReason = HaltReason;

    /// revm's loop ([`Handler::run_exec_loop`]) with the note before each
    /// frame.
    fn run_exec_loop(
        &mut self,
        evm: &mut EVM,
        first_frame_input: FrameInit,
    ) -> Result<FrameResult, Self::Error> {
        note(evm, &first_frame_input);
        if let ItemOrResult::Result(result) = evm.frame_init(first_frame_input)? {
            return Ok(result);
        }
        loop {
            let result = match evm.frame_run()? {
                ItemOrResult::Item(init) => {
                    note(evm, &init);
                    match evm.frame_init(init)? {
                        ItemOrResult::Item(_) => continue,
                        ItemOrResult::Result(result) => result,
                    }
                }
                ItemOrResult::Result(result) => result,
            };
            if let Some(result) = evm.frame_return_result(result)? {
                return Ok(result);
            }
        }
    }
}

/// Tells the database the address `init` creates, if it creates one. The
/// caller is loaded (it is running, or it is the transaction's sender) and
/// its nonce is the one revm derives the address from.
fn note<EVM>(evm: &mut EVM, init: &FrameInit)
where
    EVM: EvmTr<Context: ContextTr<Journal: JournalTr<State = EvmState>, Db: NoteCreation>>,
{
    let FrameInput::Create(inputs) = &init.frame_input else {
        return;
    };
    let caller = inputs.caller();
    let nonce = evm
        .ctx_ref()
        .journal_ref()
        .evm_state()
        .get(&caller)
        .map_or(0, |account| account.info.nonce);
    // Cached in the inputs: revm's own call below costs nothing more.
    let address = inputs.created_address(nonce);
    evm.ctx_mut().db_mut().creating(address);
}
