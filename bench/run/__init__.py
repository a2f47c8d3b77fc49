"""Running the opponent, watched or bare, and checking what was seen: the runner and its
workloads, the opponent's ground truth and the verifier, CPU placement, the referee of
`run -- CMD`, watch, and the clean-up of what a killed run left."""
