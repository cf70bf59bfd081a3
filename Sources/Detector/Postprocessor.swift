import Foundation
import Values

/// SSD post-processing as the TF Object Detection API graph does it: decode boxes against the anchors
/// (Faster R-CNN box coder), sigmoid scores without the background column, per-class greedy non-max
/// suppression on the unclipped boxes, a merge sorted by score, then clipping to the image and
/// dropping boxes left with no area. Scratch space is reused, so a steady stream allocates nothing
/// here but its result array.
struct Postprocessor {
    private let anchors: [SIMD4<Float>]
    private let settings: ModelSettings
    private let labels: Labels
    private let classes: Int
    private var candidates: [(index: Int, score: Float)] = []
    private var selected: [(box: SIMD4<Float>, score: Float, classID: Int)] = []

    init(anchors: Anchors, classesWithBackground: Int, settings: ModelSettings, labels: Labels) {
        self.anchors = anchors.centerSize
        self.settings = settings
        self.labels = labels
        classes = classesWithBackground - 1
        candidates.reserveCapacity(anchors.centerSize.count)
        selected.reserveCapacity(settings.maxDetectionsPerClass * max(classes, 1))
    }

    /// `boxEncodings`: anchors x 4 (ty, tx, th, tw); `logits`: anchors x classesWithBackground.
    /// Keeps detections scoring at least `threshold` (filtering before suppression keeps the same result:
    /// a box is only ever suppressed by higher-scoring ones).
    mutating func detections(boxEncodings: UnsafePointer<Float>, logits: UnsafePointer<Float>, threshold: Float) -> [Detection] {
        let stride = classes + 1
        let scale = settings.boxScaleFactors
        // sigmoid(x) >= t  <=>  x >= log(t / (1 - t)); compare logits so only candidates need exp().
        let minLogit: Float = threshold <= 0 ? -.infinity : (threshold >= 1 ? .infinity : Float(log(Double(threshold) / (1 - Double(threshold)))))
        selected.removeAll(keepingCapacity: true)
        for c in 0..<classes {
            candidates.removeAll(keepingCapacity: true)
            for a in 0..<anchors.count {
                let logit = logits[a * stride + c + 1]
                guard logit >= minLogit else { continue }
                let score = 1 / (1 + exp(-logit))
                guard score > settings.nmsScoreThreshold, score >= threshold else { continue }
                candidates.append((a, score))
            }
            guard !candidates.isEmpty else { continue }
            // Highest score first; equal scores keep the lower anchor index first, as TensorFlow's NMS does.
            candidates.sort { $0.score > $1.score || ($0.score == $1.score && $0.index < $1.index) }
            let firstOfClass = selected.count
            for candidate in candidates {
                let box = decode(candidate.index, boxEncodings, scale)
                var keep = true
                for s in selected[firstOfClass...] where Self.iou(s.box, box) > settings.nmsIoUThreshold {
                    keep = false
                    break
                }
                guard keep else { continue }
                selected.append((box, candidate.score, c + 1))
                if selected.count - firstOfClass == settings.maxDetectionsPerClass { break }
            }
        }
        selected.sort { $0.score > $1.score }
        var result: [Detection] = []
        result.reserveCapacity(min(selected.count, settings.maxDetections))
        for s in selected {
            let b = simd_clamp01(s.box)
            guard (b[2] - b[0]) * (b[3] - b[1]) > 0 else { continue }
            result.append(Detection(classID: s.classID, label: labels.name(for: s.classID), score: s.score,
                                    xmin: b[1], ymin: b[0], xmax: b[3], ymax: b[2]))
            if result.count == settings.maxDetections { break }
        }
        return result
    }

    /// Corners (ymin, xmin, ymax, xmax) of anchor `a`'s decoded box.
    @inline(__always)
    private func decode(_ a: Int, _ encodings: UnsafePointer<Float>, _ scale: [Float]) -> SIMD4<Float> {
        let anchor = anchors[a]
        let ty = encodings[a * 4] / scale[0], tx = encodings[a * 4 + 1] / scale[1]
        let th = encodings[a * 4 + 2] / scale[2], tw = encodings[a * 4 + 3] / scale[3]
        let w = exp(tw) * anchor[3], h = exp(th) * anchor[2]
        let yc = ty * anchor[2] + anchor[0], xc = tx * anchor[3] + anchor[1]
        return SIMD4(yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2)
    }

    /// Intersection over union as TensorFlow's NonMaxSuppression computes it.
    static func iou(_ i: SIMD4<Float>, _ j: SIMD4<Float>) -> Float {
        let yminI = min(i[0], i[2]), xminI = min(i[1], i[3]), ymaxI = max(i[0], i[2]), xmaxI = max(i[1], i[3])
        let yminJ = min(j[0], j[2]), xminJ = min(j[1], j[3]), ymaxJ = max(j[0], j[2]), xmaxJ = max(j[1], j[3])
        let areaI = (ymaxI - yminI) * (xmaxI - xminI), areaJ = (ymaxJ - yminJ) * (xmaxJ - xminJ)
        if areaI <= 0 || areaJ <= 0 { return 0 }
        let ih = max(min(ymaxI, ymaxJ) - max(yminI, yminJ), 0), iw = max(min(xmaxI, xmaxJ) - max(xminI, xminJ), 0)
        let intersection = ih * iw
        return intersection / (areaI + areaJ - intersection)
    }
}

@inline(__always)
private func simd_clamp01(_ v: SIMD4<Float>) -> SIMD4<Float> { v.clamped(lowerBound: .zero, upperBound: .one) }
