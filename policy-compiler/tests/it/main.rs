//! The compiler's one integration-test binary.

mod cli;
mod compile;
mod corpus;
mod docs;
mod robust;
mod vectors;
