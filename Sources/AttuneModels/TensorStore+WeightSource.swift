import AttuneIR

// Checkpoints feed graph weights directly: `floats(_:)` converts F32/BF16/F16 to fp32.
extension Checkpoint: AttuneIR.WeightSource {}
extension SafeTensorsFile: AttuneIR.WeightSource {}
