"""Private infrastructure of losskit: the array-API bridge, numerics, validation and the
reduction rule. Holds no loss formulas."""
