//! Test support: starting homccd, running homcc and plain compilers, comparing outputs.
