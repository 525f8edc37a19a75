//! The compiler's one integration-test binary.

mod compile;
