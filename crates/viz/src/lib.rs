//! `viz`: plots and tables from result directories (being built).
