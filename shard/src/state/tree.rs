//! The sparse Merkle state tree (being written).
