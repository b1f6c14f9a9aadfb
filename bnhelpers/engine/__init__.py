"""The training engine: layers that keep the bookkeeping around the math at the top of bnhelpers, networks,
the course's builders, losses, optimizers and training. It imports the math and storage, never the analysis."""
