import Foundation
import Values

/// One source's multi-object tracker, fed that source's frames in order.
///
/// Association is ByteTrack's: reported detections are matched to confirmed tracks first, then low-score
/// detections (kept from suppression for this, never reported) to the confirmed tracks still unmatched, then
/// the reported detections left to tentative tracks; what is left of them starts new tentative tracks.
/// A pair matches when the detection has the track's label and overlaps (IoU) the track's box predicted at
/// constant velocity, or its last box, by at least `iouThreshold`; the best overlaps are paired first
/// (ties: older track, then earlier detection), so the result depends only on the frame sequence.
/// Everything is timed in seconds of the caller's clock, never in frames.
public struct Tracker: Sendable {
    public let source: String
    public let parameters: TrackingParameters
    /// The id the next confirmed track gets. Ids are never reused for a source: a tracker that replaces
    /// this one (the source restarted) starts from here.
    public private(set) var nextID: Int

    private var tracks: [Track] = []
    private var lastSeconds: Double?
    /// The count each label's last `presence` gave.
    private var announced: [String: Int] = [:]

    /// How quickly a track's velocity follows its latest motion: the time constant of its exponential average.
    static let velocitySmoothingSeconds = 0.5

    private struct Track {
        /// nil while tentative.
        var id: Int?
        let label: String
        var center: SIMD2<Float>
        var size: SIMD2<Float>
        /// Normalized units per second.
        var velocity: SIMD2<Float> = .zero
        var matches = 1
        let firstSeconds: Double
        var lastSeconds: Double
        let firstSeen: Date
        var lastSeen: Date
        var lastFrame: Int
        /// Times of the latest hits, while tentative (at most `minHits` of them).
        var hits: [Double]
        var bestScore: Float
        var bestBox: Box

        init(_ d: Detection, seconds: Double, captured: Date, frame: Int) {
            label = d.label
            (center, size) = Tracker.centerSize(d)
            firstSeconds = seconds
            lastSeconds = seconds
            firstSeen = captured
            lastSeen = captured
            lastFrame = frame
            hits = [seconds]
            bestScore = d.score
            bestBox = Tracker.box(d)
        }

        func predicted(at seconds: Double) -> SIMD4<Float> {
            let c = center + velocity * Float(seconds - lastSeconds)
            return SIMD4(lowHalf: c - size / 2, highHalf: c + size / 2)
        }

        var lastBox: SIMD4<Float> { SIMD4(lowHalf: center - size / 2, highHalf: center + size / 2) }
    }

    /// What one frame did: the id of each reported detection's confirmed track (nil: none yet), and the events.
    public struct Update: Sendable, Equatable {
        public var trackIDs: [Int?]
        public var events: [TrackEvent]
    }

    public init(source: String, parameters: TrackingParameters = .defaults, firstID: Int = 1) {
        self.source = source
        self.parameters = parameters
        nextID = firstID
    }

    /// The number of confirmed tracks, per label.
    public var confirmedCounts: [String: Int] {
        tracks.reduce(into: [:]) { counts, t in if t.id != nil { counts[t.label, default: 0] += 1 } }
    }

    /// The source's next frame. `seconds` is its time on the source's clock (never earlier than the previous
    /// frame's); `captured` is its capture time and `time` the record's, both only reported.
    /// `detections` are the reported ones, `lowScore` those below the report threshold.
    public mutating func update(seconds: Double, captured: Date, time: Date, frame: Int,
                                detections: [Detection], lowScore: [Detection] = []) -> Update {
        let now = max(seconds, lastSeconds ?? seconds)
        lastSeconds = now
        var trackIDs = [Int?](repeating: nil, count: detections.count)
        var trackMatched = [Bool](repeating: false, count: tracks.count)
        var detectionMatched = [Bool](repeating: false, count: detections.count)
        var starts: [TrackEvent] = [], started: [String] = []

        let confirmed = tracks.indices.filter { tracks[$0].id != nil }
        let tentative = tracks.indices.filter { tracks[$0].id == nil }
        for (t, d) in pairs(confirmed, detections, at: now) {
            follow(t, with: detections[d], reported: true, seconds: now, captured: captured, frame: frame)
            trackIDs[d] = tracks[t].id
            trackMatched[t] = true
            detectionMatched[d] = true
        }
        let stillLost = confirmed.filter { !trackMatched[$0] }
        for (t, d) in pairs(stillLost, lowScore, at: now) {
            follow(t, with: lowScore[d], reported: false, seconds: now, captured: captured, frame: frame)
            trackMatched[t] = true
        }
        let unmatched = detections.indices.filter { !detectionMatched[$0] }
        let rest = unmatched.map { detections[$0] }
        for (t, r) in pairs(tentative, rest, at: now) {
            let d = unmatched[r]
            follow(t, with: detections[d], reported: true, seconds: now, captured: captured, frame: frame)
            trackMatched[t] = true
            detectionMatched[d] = true
            if let start = confirmIfDue(t, detections[d], seconds: now, time: time, frame: frame) {
                trackIDs[d] = tracks[t].id
                starts.append(start)
                started.append(detections[d].label)
            }
        }

        // Unmatched tracks too old to continue: confirmed ones end, tentative ones are forgotten.
        var ends: [TrackEvent] = [], ended: [String] = []
        var kept: [Track] = []
        kept.reserveCapacity(tracks.count + detections.count)
        for (t, track) in tracks.enumerated() {
            if trackMatched[t] { kept.append(track); continue }
            let age = now - track.lastSeconds
            if track.id != nil {
                if age > parameters.maxAgeSeconds {
                    ends.append(.end(end(track, reason: .maxAge, time: time)))
                    ended.append(track.label)
                } else {
                    kept.append(track)
                }
            } else if age <= parameters.windowSeconds {
                kept.append(track)
            }
        }
        tracks = kept

        for d in detections.indices where !detectionMatched[d] {
            tracks.append(Track(detections[d], seconds: now, captured: captured, frame: frame))
            if let start = confirmIfDue(tracks.count - 1, detections[d], seconds: now, time: time, frame: frame) {
                trackIDs[d] = tracks[tracks.count - 1].id
                starts.append(start)
                started.append(detections[d].label)
            }
        }
        return Update(trackIDs: trackIDs, events: ends + starts + presence(ended + started, time: time))
    }

    /// Ends every confirmed track (`object_end` with `reason`, then `presence` 0 for each label that had any)
    /// and forgets the tentative ones. The tracker can go on with a new clock afterwards.
    public mutating func finish(reason: TrackEndReason, time: Date) -> [TrackEvent] {
        var events: [TrackEvent] = []
        var changed: [String] = []
        for track in tracks where track.id != nil {
            events.append(.end(end(track, reason: reason, time: time)))
            changed.append(track.label)
        }
        tracks.removeAll()
        lastSeconds = nil
        return events + presence(changed, time: time)
    }

    // MARK: Association

    /// Greedy pairing of `candidates` (track indices) with `detections` by overlap, best first.
    private func pairs(_ candidates: [Int], _ detections: [Detection], at seconds: Double) -> [(track: Int, detection: Int)] {
        guard !candidates.isEmpty, !detections.isEmpty else { return [] }
        var scored: [(iou: Float, track: Int, detection: Int)] = []
        for t in candidates {
            let track = tracks[t]
            let predicted = track.predicted(at: seconds), last = track.lastBox
            for (d, detection) in detections.enumerated() where detection.label == track.label {
                let box = Self.corners(detection)
                let overlap = max(Self.iou(predicted, box), Self.iou(last, box))
                if overlap >= parameters.iouThreshold { scored.append((overlap, t, d)) }
            }
        }
        scored.sort { ($0.iou, -$0.track, -$0.detection) > ($1.iou, -$1.track, -$1.detection) }
        var usedTracks = Set<Int>(), usedDetections = Set<Int>()
        var result: [(track: Int, detection: Int)] = []
        for s in scored where !usedTracks.contains(s.track) && !usedDetections.contains(s.detection) {
            usedTracks.insert(s.track)
            usedDetections.insert(s.detection)
            result.append((s.track, s.detection))
        }
        return result
    }

    /// Moves track `t` to detection `d`, and updates its velocity, hits and best view.
    private mutating func follow(_ t: Int, with d: Detection, reported: Bool, seconds: Double, captured: Date, frame: Int) {
        var track = tracks[t]
        let (center, size) = Self.centerSize(d)
        let dt = seconds - track.lastSeconds
        if dt > 0 {
            let measured = (center - track.center) / Float(dt)
            // The first motion seen sets the velocity; later ones blend in at a rate set in seconds, not frames.
            let weight = track.matches == 1 ? 1 : Float(1 - exp(-dt / Self.velocitySmoothingSeconds))
            track.velocity += (measured - track.velocity) * weight
        }
        track.center = center
        track.size = size
        track.matches += 1
        track.lastSeconds = seconds
        track.lastSeen = captured
        track.lastFrame = frame
        if reported {
            if track.id == nil {
                track.hits.append(seconds)
                if track.hits.count > parameters.minHits { track.hits.removeFirst() }
            }
            if d.score > track.bestScore {
                track.bestScore = d.score
                track.bestBox = Self.box(d)
            }
        }
        tracks[t] = track
    }

    /// Confirms tentative track `t` if it was seen `minHits` times within the window ending now.
    private mutating func confirmIfDue(_ t: Int, _ d: Detection, seconds: Double, time: Date, frame: Int) -> TrackEvent? {
        let recent = tracks[t].hits.filter { seconds - $0 <= parameters.windowSeconds }.count
        guard recent >= parameters.minHits else { return nil }
        tracks[t].id = nextID
        tracks[t].hits = []
        nextID += 1
        let track = tracks[t]
        return .start(ObjectStart(source: source, trackID: nextID - 1, label: track.label, time: time, firstSeen: track.firstSeen,
                                  frame: frame, box: Self.box(d), score: d.score))
    }

    private func end(_ track: Track, reason: TrackEndReason, time: Date) -> ObjectEnd {
        ObjectEnd(source: source, trackID: track.id ?? 0, label: track.label, time: time, firstSeen: track.firstSeen,
                  lastSeen: track.lastSeen, lastFrame: track.lastFrame, durationSeconds: track.lastSeconds - track.firstSeconds,
                  bestScore: track.bestScore, bestBox: track.bestBox, reason: reason)
    }

    /// A `presence` for each label in `labels` (first mention first) whose count is no longer the one last announced.
    private mutating func presence(_ labels: [String], time: Date) -> [TrackEvent] {
        guard !labels.isEmpty else { return [] }
        let counts = confirmedCounts
        var events: [TrackEvent] = []
        for label in labels where counts[label, default: 0] != announced[label, default: 0] {
            announced[label] = counts[label, default: 0]
            events.append(.presence(Presence(source: source, label: label, count: counts[label, default: 0], time: time)))
        }
        return events
    }

    // MARK: Geometry

    static func box(_ d: Detection) -> Box { Box(xmin: d.xmin, ymin: d.ymin, xmax: d.xmax, ymax: d.ymax) }

    static func corners(_ d: Detection) -> SIMD4<Float> { SIMD4(d.xmin, d.ymin, d.xmax, d.ymax) }

    static func centerSize(_ d: Detection) -> (SIMD2<Float>, SIMD2<Float>) {
        (SIMD2((d.xmin + d.xmax) / 2, (d.ymin + d.ymax) / 2), SIMD2(d.xmax - d.xmin, d.ymax - d.ymin))
    }

    /// Overlap of two (xmin, ymin, xmax, ymax) boxes.
    static func iou(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> Float {
        let w = min(a[2], b[2]) - max(a[0], b[0]), h = min(a[3], b[3]) - max(a[1], b[1])
        guard w > 0, h > 0 else { return 0 }
        let intersection = w * h
        let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
        return union > 0 ? intersection / union : 0
    }
}
