import Foundation

/// SSD anchors as the TF Object Detection API's `multiple_grid_anchor_generator` builds them,
/// in float32 as the graph computes them, stored as center-size for the box decoder.
struct Anchors: Sendable {
    /// Per anchor: y center, x center, height, width (normalized), in the network's output order.
    let centerSize: [SIMD4<Float>]

    /// The anchors of `spec`'s heads.
    init(settings: ModelSettings, spec: NetworkSpec) throws(ModelError) {
        try self.init(settings: settings,
                      gridSizes: spec.heads.map { (spec.tensors[$0.boxEncodings].height, spec.tensors[$0.boxEncodings].width) },
                      perCell: spec.heads.map(\.anchorsPerCell), inputHeight: spec.input.height, inputWidth: spec.input.width)
    }

    /// `gridSizes` are the heads' feature-map sizes (height, width), `perCell` their anchors per cell,
    /// `inputHeight` and `inputWidth` the network input's size.
    init(settings: ModelSettings, gridSizes: [(height: Int, width: Int)], perCell: [Int],
         inputHeight: Int, inputWidth: Int) throws(ModelError) {
        let layers = gridSizes.count
        // A non-square input shrinks the base anchor along its longer side, so that an anchor of aspect
        // ratio 1 is square in pixels: base * min(H, W) / H tall and base * min(H, W) / W wide.
        let shortSide = Float(min(inputHeight, inputWidth))
        let baseHeight = shortSide / Float(inputHeight) * settings.baseAnchorSize[0]
        let baseWidth = shortSide / Float(inputWidth) * settings.baseAnchorSize[1]
        var scales = (0..<layers).map { i -> Float in
            layers == 1 ? settings.minScale
                : Float(Double(settings.minScale) + Double(settings.maxScale - settings.minScale) * Double(i) / Double(layers - 1))
        }
        scales.append(1.0)
        var anchors: [SIMD4<Float>] = []
        for layer in 0..<layers {
            var specs: [(scale: Float, aspect: Float)]
            if layer == 0 && settings.reduceBoxesInLowestLayer {
                specs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
            } else {
                specs = settings.aspectRatios.map { (scales[layer], $0) }
                if settings.interpolatedScaleAspectRatio > 0 {
                    let interpolated = Float((Double(scales[layer]) * Double(scales[layer + 1])).squareRoot())
                    specs.append((interpolated, settings.interpolatedScaleAspectRatio))
                }
            }
            guard specs.count == perCell[layer] else {
                throw .notSSD("head \(layer) predicts \(perCell[layer]) boxes per cell but the anchor settings give \(specs.count)")
            }
            let (rows, columns) = gridSizes[layer]
            let strideY: Float = 1.0 / Float(rows), strideX: Float = 1.0 / Float(columns)
            let offsetY: Float = 0.5 * strideY, offsetX: Float = 0.5 * strideX
            for y in 0..<rows {
                for x in 0..<columns {
                    let centerY = Float(y) * strideY + offsetY
                    let centerX = Float(x) * strideX + offsetX
                    for spec in specs {
                        let ratioSqrt = spec.aspect.squareRoot()
                        let height = spec.scale / ratioSqrt * baseHeight, width = spec.scale * ratioSqrt * baseWidth
                        // Round-trip through corners exactly as the graph does, so decoding matches to the bit.
                        let ymin = centerY - 0.5 * height, xmin = centerX - 0.5 * width
                        let ymax = centerY + 0.5 * height, xmax = centerX + 0.5 * width
                        let h = ymax - ymin, w = xmax - xmin
                        anchors.append(SIMD4(ymin + h / 2, xmin + w / 2, h, w))
                    }
                }
            }
        }
        centerSize = anchors
    }
}
