import Foundation
import Values

/// How well one detector's output reproduces a reference's (f32 TensorFlow, or Sightline's own f32) on the same
/// frames. A reference detection scoring >= `minScore` is kept when an unclaimed detection of the same class overlaps
/// it with IoU >= `minIoU` and scores at least `minScore - margin` (a detection on the threshold may cross it by
/// rounding); a detection scoring >= `minScore` is extra when no reference scoring >= `minScore - margin` matches it.
public struct DetectionAgreement: Sendable, Equatable {
    public static let minScore: Float = 0.5
    public static let minIoU: Float = 0.7
    public static let margin: Float = 0.05

    public private(set) var referenceCount = 0
    public private(set) var kept = 0
    public private(set) var candidateCount = 0
    public private(set) var extra = 0
    /// |score difference| of every kept pair.
    public private(set) var scoreDifferences: [Float] = []

    public init() {}

    public var keptFraction: Double { referenceCount == 0 ? 1 : Double(kept) / Double(referenceCount) }
    public var extraFraction: Double { candidateCount == 0 ? 0 : Double(extra) / Double(candidateCount) }
    public var medianScoreDifference: Float {
        let sorted = scoreDifferences.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    /// Adds one frame's detections (any order, any threshold at or below `minScore - margin`).
    public mutating func add(reference: [Detection], candidate: [Detection]) {
        let floor = Self.minScore - Self.margin
        let refs = reference.filter { $0.score >= floor }.sorted { $0.score > $1.score }
        let cands = candidate.filter { $0.score >= floor }
        var claimed = Set<Int>()
        for r in refs where r.score >= Self.minScore {
            referenceCount += 1
            let best = cands.indices.filter { !claimed.contains($0) && cands[$0].classID == r.classID }
                .map { ($0, Self.iou(cands[$0], r)) }.max { $0.1 < $1.1 }
            if let (index, overlap) = best, overlap >= Self.minIoU {
                claimed.insert(index)
                kept += 1
                scoreDifferences.append(abs(cands[index].score - r.score))
            }
        }
        for c in cands where c.score >= Self.minScore {
            candidateCount += 1
            if !refs.contains(where: { $0.classID == c.classID && Self.iou($0, c) >= Self.minIoU }) { extra += 1 }
        }
    }

    static func iou(_ a: Detection, _ b: Detection) -> Float {
        Postprocessor.iou(SIMD4(a.ymin, a.xmin, a.ymax, a.xmax), SIMD4(b.ymin, b.xmin, b.ymax, b.xmax))
    }

    public var summary: String {
        let pct = { (x: Double) in String(format: "%.1f%%", x * 100) }
        return "kept \(kept)/\(referenceCount) (\(pct(keptFraction))) of the reference's detections scoring >= \(Self.minScore), "
            + "\(extra)/\(candidateCount) extra (\(pct(extraFraction))), median |score difference| \(String(format: "%.4f", medianScoreDifference))"
    }
}
