//! `launch-gptoss sim-calibrate`: run the engine in virtual time for every real result
//! directory and compare (being built).

use anyhow::{bail, Result};

use crate::cli::SimCalibrateArgs;

pub fn main(_args: &SimCalibrateArgs) -> Result<i32> {
    bail!("sim-calibrate is not built yet")
}
