//! The whole pipeline against real compilers.
