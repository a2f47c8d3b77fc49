"""The regression gate: this code's backends against a reference commit's, measured here in
one run (ab, its workers), the judge of two stored results files, and the gate's own power."""
