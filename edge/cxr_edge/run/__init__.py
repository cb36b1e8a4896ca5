"""Running the box over a folder: classification, referral reasons, the resumable journal, evaluation and
benchmarks."""
