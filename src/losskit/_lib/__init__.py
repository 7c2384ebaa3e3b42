"""Private infrastructure of losskit: the array-API bridge, numerics, argument validation, the
reduction rule, the vector-Jacobian helpers and the loss registry. Holds no loss formulas."""
