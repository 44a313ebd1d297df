//! Symmetric Toeplitz RSS hash and RETA (skeleton; see issue 3).
