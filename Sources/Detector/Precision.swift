import CDNNL

/// The numeric precision a compiled network runs in. Inputs, the network's outputs and all post-processing
/// stay f32 in every precision; only the convolutions and the activations between them change.
public enum Precision: String, Sendable, CaseIterable {
    /// Bit-for-bit what the graph computes, within f32 rounding.
    case f32
    /// bfloat16 weights and activations (f32 accumulation, biases and outputs). No calibration needed.
    case bf16
    /// 8-bit weights (per-channel scales) and activations (scales from a calibration file).
    case int8
}

/// What the user asked for: a precision, or `auto` (the fastest one this CPU and model are ready for).
public enum PrecisionChoice: String, Sendable, CaseIterable {
    case auto, f32, bf16, int8
}

/// The precision a model was compiled in, and why.
public struct PrecisionSelection: Sendable, Equatable {
    public let precision: Precision
    public let reason: String
}

/// The CPU features oneDNN will use (after any `ONEDNN_MAX_CPU_ISA` cap).
public struct CPUFeatures: Sendable, Equatable {
    /// Dot-product int8 instructions (AVX512_VNNI or AVX-VNNI).
    public let vnni: Bool
    /// bf16 dot products (AVX512_BF16 or AMX).
    public let bf16: Bool
    /// oneDNN's name for the instruction set it dispatches to.
    public let isa: String

    public static var current: CPUFeatures { DNNL.cpuFeatures() }
}

extension PrecisionChoice {
    /// `auto`: int8 where the CPU has VNNI and the model a usable calibration file; else bf16 where the CPU has
    /// bf16 dot products; else f32. `calibrationProblem` is why the calibration file cannot be used, if it cannot.
    func select(cpu: CPUFeatures, calibrationFound: Bool, calibrationProblem: String?) -> PrecisionSelection {
        switch self {
        case .f32: return .init(precision: .f32, reason: "requested")
        case .bf16: return .init(precision: .bf16, reason: "requested")
        case .int8: return .init(precision: .int8, reason: "requested")
        case .auto:
            let fallback: (precision: Precision, why: String) = cpu.bf16
                ? (.bf16, "the CPU has bf16 dot products (\(cpu.isa))")
                : (.f32, "the CPU has no bf16 dot products (\(cpu.isa))")
            if cpu.vnni, calibrationFound, calibrationProblem == nil {
                return .init(precision: .int8, reason: "auto: the CPU has VNNI (\(cpu.isa)) and the model a calibration file")
            }
            let int8Missing: String
            if !cpu.vnni {
                int8Missing = "no VNNI for int8"
            } else if let calibrationProblem {
                int8Missing = "calibration file unusable (\(calibrationProblem))"
            } else {
                int8Missing = "no calibration file for int8"
            }
            return .init(precision: fallback.precision, reason: "auto: \(int8Missing); \(fallback.why)")
        }
    }
}
