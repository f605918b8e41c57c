//! The BFT protocol: Simplex.
//!
//! Benjamin Y. Chan and Rafael Pass, *Simplex Consensus: A Simple and Fast
//! Consensus Protocol*, TCC 2023 (IACR ePrint 2023/463). This module follows
//! the paper's protocol, with stake-weighted quorums in place of its
//! `2n/3` counts:
//!
//! - **Iterations.** Height `h` has a leader ([`ValidatorSet::leader`]:
//!   a weighted round robin by stake, evenly spaced). On entering `h` a validator
//!   starts a timer (the paper's `3Δ`, doubled with each height in a row
//!   that ended empty from the second on, up to ×16: [`Config::timeout`],
//!   [`machine::MAX_BACKOFF`]).
//! - **Propose.** The leader proposes a block extending the notarized chain
//!   it knows: its parent is the newest notarized block below `h`, and every
//!   height in between has its *empty block* notarized.
//! - **Vote.** A validator votes for the first proposal of `h`'s leader that
//!   extends a notarized chain, if it signed nothing else at `h`.
//! - **Timeout.** When the timer fires, it votes for the empty block of `h`.
//! - **Notarize.** Votes of more than two thirds of the stake for one choice
//!   form a notarization [`Certificate`]; a validator forwards it, and moves
//!   to `h + 1`. If the notarized choice is a block and this validator did
//!   **not** vote for the empty block at `h`, it sends a *finalize* vote.
//! - **Finalize.** Finalize votes of more than two thirds of the stake
//!   finalize the notarized block of `h` and all its ancestors.
//!
//! Safety (no two different blocks final at one height while less than a
//! third of the stake is faulty) rests on two rules the machine keeps across
//! restarts through [`machine::Record`]s, persisted before anything is sent:
//! at most one block vote per height, and no finalize vote at a height where
//! it voted for the empty block (nor an empty vote after a finalize vote).
//! A validator that signs two different blocks (or proposals) at one height
//! is reported with [`Evidence`].
//!
//! Beyond the paper, for a real network: votes are sent again when a height
//! times out a second time (messages get lost), a validator that sees a
//! certificate from ahead asks for what it missed ([`Message::Sync`]), and a
//! validator that must finalize a block it never received asks for it
//! ([`Message::Fetch`]).
//!
//! Certificates live in memory only, so a restart loses them: a validator
//! that moved past a height cannot show why any more, and validators split
//! between two heights by restarts would each wait for the other's height
//! forever (found by `atoll localnet perturb`). So a validator sends again
//! its votes of every height above the final one that it signed (the
//! newest [`machine::RESEND_HEIGHTS`]) when it starts and when a height
//! times out a second time; a height whose notarization it lacks below its
//! own makes it ask peers from there ([`Simplex::missing_notarization`]);
//! and a peer answering [`Message::Sync`] adds its own votes at heights it
//! holds no certificate for, from which the asker makes the certificate
//! again. Not covered: a block body lives only in memory until it is
//! final, so if every validator stops between a block's notarization and
//! its finality (a blackout), its body is gone and the chain cannot go on
//! past it; persisting voted-for proposals is the fix (not built).
//!
//! The machine ([`Simplex`]) is pure: no clock, randomness or I/O. Its
//! driver feeds it messages and timeouts and carries out its effects: the
//! deterministic simulation in `tests/it/simulation.rs` is one driver, the
//! node will be another.

pub mod machine;
pub mod message;

pub use machine::{Config, Effect, Input, Record, Simplex};
pub use message::{
    Block, Certificate, Choice, Evidence, FinalBlock, Message, Proposal, SetError, ValidatorIndex,
    ValidatorSet, Vote,
};
