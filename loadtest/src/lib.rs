//! Load-testing tools: [`sim`] (pigeon-sim, an SMSC simulator with fault injection) and
//! [`load`] (pigeon-load, the debit generator and exactly-once verifier).
pub mod load;
pub mod sim;
