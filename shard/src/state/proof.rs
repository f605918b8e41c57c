//! Inclusion and exclusion proofs for the state tree (being written).
