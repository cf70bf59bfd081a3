/// The detector network as oneDNN will run it: a list of convolutions over NHWC f32 tensors,
/// with BatchNorm already folded in and ReLU6 / residual adds as fused post-ops.
struct NetworkSpec: Sendable {
    struct Shape: Equatable, Sendable {
        var height: Int, width: Int, channels: Int
        var elements: Int { height * width * channels }
    }

    enum PostOp: Equatable, Sendable {
        /// min(max(x, 0), 6)
        case relu6
        /// x += the named tensor (the residual of a linear bottleneck)
        case addResidual(Int)
    }

    struct Convolution: Sendable {
        let name: String
        let depthwise: Bool
        let input: Int
        let output: Int
        let kernelHeight: Int, kernelWidth: Int
        let strideHeight: Int, strideWidth: Int
        /// TensorFlow SAME padding can be one larger at the bottom/right than at the top/left.
        let padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
        /// oneDNN `oihw` order; for depthwise, `goihw` with g = channels and o = i = 1.
        var weights: [Float]
        var bias: [Float]
        var postOps: [PostOp] = []

        /// The tensor added to the output (a linear bottleneck's input), if any.
        var residual: Int? {
            for case .addResidual(let r) in postOps { return r }
            return nil
        }
    }

    /// One SSD feature-map head: per cell, `anchorsPerCell` box encodings (4 values) and class logits.
    struct Head: Sendable {
        let boxEncodings: Int
        let classLogits: Int
        let anchorsPerCell: Int
    }

    var tensors: [Shape]
    var convolutions: [Convolution]
    var heads: [Head]
    /// Tensor 0 is the network input (the preprocessed image).
    var input: Shape { tensors[0] }
    /// Classes including the background column.
    var classesWithBackground: Int
    /// Preprocessing `x * scale + offset` as the graph's Preprocessor states it.
    var inputScale: Float
    var inputOffset: Float

    var anchorCount: Int { heads.reduce(0) { $0 + tensors[$1.boxEncodings].height * tensors[$1.boxEncodings].width * $1.anchorsPerCell } }
    var multiplyAccumulates: Int {
        convolutions.reduce(0) { total, conv in
            let out = tensors[conv.output]
            let perOutput = conv.kernelHeight * conv.kernelWidth * (conv.depthwise ? 1 : tensors[conv.input].channels)
            return total + out.elements * perOutput
        }
    }
}
