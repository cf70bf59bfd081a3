/// Runs an `expand -> depthwise -> project` triple (MobileNetV2's inverted residual) a band of rows at a time,
/// so its two wide intermediate tensors live in small, cache-resident strip buffers instead of round-tripping
/// through memory. NHWC rows are contiguous, so a band of a full tensor is a pointer offset; each band's
/// convolutions are ordinary oneDNN primitives over fewer rows, with the padding only the image edges have.
struct StripPlan: Sendable {
    /// One convolution over a band: rows [inputStart, inputStart + inputRows) of its input
    /// produce rows [outputStart, outputStart + outputRows) of its output.
    struct Band: Hashable, Sendable {
        let inputStart: Int, inputRows: Int
        let outputStart: Int, outputRows: Int
        let padTop: Int, padBottom: Int
    }

    /// Convolution indices of the triple.
    let layers: (expand: Int, depthwise: Int, project: Int)
    /// Per strip, the band of each of the three layers.
    let strips: [[Band]]
    /// Floats each strip buffer must hold (expand output, depthwise output).
    let scratchFloats: (expanded: Int, filtered: Int)

    /// Triples worth fusing: both intermediates read by nothing else, and big enough to fall out of cache.
    /// Measured on a 1 MB-L2 core: strips whose expanded band is about 1 MB beat both smaller strips (more
    /// primitive calls) and no fusion (intermediates through memory) by 5-8 %; fusing triples under 1 MB gains nothing.
    static func plans(for spec: NetworkSpec, minimumIntermediateBytes: Int = 1 << 20, stripBudgetBytes: Int = 1 << 20) -> [StripPlan] {
        var readers = [Int](repeating: 0, count: spec.tensors.count)
        for conv in spec.convolutions {
            readers[conv.input] += 1
            if let r = conv.residual { readers[r] += 1 }
        }
        for head in spec.heads {
            readers[head.boxEncodings] += 1
            readers[head.classLogits] += 1
        }
        var plans: [StripPlan] = []
        var i = 0
        while i + 2 < spec.convolutions.count {
            let (a, b, c) = (spec.convolutions[i], spec.convolutions[i + 1], spec.convolutions[i + 2])
            let fits = b.input == a.output && c.input == b.output && b.depthwise && !c.depthwise
                && c.kernelHeight == 1 && c.kernelWidth == 1 && c.strideHeight == 1 && c.strideWidth == 1
                && readers[a.output] == 1 && readers[b.output] == 1
                && a.residual == nil && b.residual == nil
                && spec.tensors[a.output].elements * 4 >= minimumIntermediateBytes
            if fits {
                plans.append(plan(spec, (i, i + 1, i + 2), budget: stripBudgetBytes))
                i += 3
            } else {
                i += 1
            }
        }
        return plans
    }

    private static func plan(_ spec: NetworkSpec, _ layers: (Int, Int, Int), budget: Int) -> StripPlan {
        let (a, b) = (spec.convolutions[layers.0], spec.convolutions[layers.1])
        let inputHeight = spec.tensors[a.input].height
        let expandedHeight = spec.tensors[a.output].height
        let outputHeight = spec.tensors[b.output].height
        let expandedRowBytes = spec.tensors[a.output].width * spec.tensors[a.output].channels * 4
        // Output rows per strip so that the expanded band stays within budget.
        let bandRows = max(1, (budget / expandedRowBytes - b.kernelHeight + 1) / b.strideHeight)
        var strips: [[Band]] = []
        var maxExpanded = 0, maxFiltered = 0
        var start = 0
        while start < outputHeight {
            let end = min(start + bandRows, outputHeight)
            let filter = band(outputStart: start, outputEnd: end, conv: b, inputHeight: expandedHeight)
            let expand = band(outputStart: filter.inputStart, outputEnd: filter.inputStart + filter.inputRows, conv: a, inputHeight: inputHeight)
            let project = Band(inputStart: start, inputRows: end - start, outputStart: start, outputRows: end - start, padTop: 0, padBottom: 0)
            strips.append([expand, filter, project])
            maxExpanded = max(maxExpanded, filter.inputRows * expandedRowBytes / 4)
            maxFiltered = max(maxFiltered, (end - start) * spec.tensors[b.output].width * spec.tensors[b.output].channels)
            start = end
        }
        return StripPlan(layers: layers, strips: strips, scratchFloats: (maxExpanded, maxFiltered))
    }

    /// The input rows (and edge padding) a convolution needs for output rows [outputStart, outputEnd).
    static func band(outputStart: Int, outputEnd: Int, conv: NetworkSpec.Convolution, inputHeight: Int) -> Band {
        let first = outputStart * conv.strideHeight - conv.padTop
        let last = (outputEnd - 1) * conv.strideHeight - conv.padTop + conv.kernelHeight
        let start = max(first, 0), end = min(last, inputHeight)
        return Band(inputStart: start, inputRows: end - start, outputStart: outputStart, outputRows: outputEnd - outputStart,
                    padTop: start - first, padBottom: last - end)
    }
}
