import Foundation

/// One line of Sightline's output, and the one definition of the record schema (docs/SCHEMA.md): every record
/// `detect` and the daemon write is encoded by `jsonLine()`, and every record read back is decoded by
/// `init(jsonLine:)`.
///
/// A new kind of record is a case here, its struct below (its `type`, `CodingKeys` and `write(to:)` side by side;
/// decoding is synthesized unless the written shape differs from the struct's), and a line in each of `jsonLine()`
/// and `kinds`.
public enum Record: Sendable, Equatable {
    /// Bumped only by a breaking change (docs/SCHEMA.md); `hello` announces it.
    public static let schemaVersion = 1

    case hello(Hello)
    case detections(Detections)
    case heartbeat(Heartbeat)
    case sourceUp(SourceUp)
    case sourceDown(SourceDown)
    case lag(Lag)
    case reload(Reload)
    case error(ConnectionError)
    case objectStart(ObjectStart)
    case objectEnd(ObjectEnd)
    case presence(Presence)
    case subscribed(Subscribed)
    /// A record of a type this build does not know (a newer daemon's), kept as its line without the newline:
    /// readers pass it on rather than fail.
    case unknown(type: String, line: String)

    /// The record as one JSON line, with the trailing newline. Keys keep the documented order.
    public func jsonLine() -> String {
        switch self {
        case .hello(let body): Self.line(body)
        case .detections(let body): Self.line(body)
        case .heartbeat(let body): Self.line(body)
        case .sourceUp(let body): Self.line(body)
        case .sourceDown(let body): Self.line(body)
        case .lag(let body): Self.line(body)
        case .reload(let body): Self.line(body)
        case .error(let body): Self.line(body)
        case .objectStart(let body): Self.line(body)
        case .objectEnd(let body): Self.line(body)
        case .presence(let body): Self.line(body)
        case .subscribed(let body): Self.line(body)
        case .unknown(_, let line): line + "\n"
        }
    }

    /// Decodes one line (a trailing newline is allowed). Fields it does not know are ignored, as the schema's
    /// stability promise asks of readers; a `type` it does not know gives `.unknown`.
    public init(jsonLine: String) throws(MalformedLine) {
        let line = jsonLine.hasSuffix("\n") ? String(jsonLine.dropLast()) : jsonLine
        let data = Data(line.utf8)
        let type: String
        do {
            type = try JSONDecoder().decode(TypeField.self, from: data).type
        } catch {
            throw MalformedLine(line: line, reason: Self.explain(error, type: nil))
        }
        guard let decode = Self.kinds[type] else {
            self = .unknown(type: type, line: line)
            return
        }
        do {
            self = try decode(data)
        } catch {
            throw MalformedLine(line: line, reason: Self.explain(error, type: type))
        }
    }

    /// Every kind this build knows, by its `type`.
    static let kinds: [String: @Sendable (Data) throws -> Record] = [
        Hello.type: { .hello(try body($0)) },
        Detections.type: { .detections(try body($0)) },
        Heartbeat.type: { .heartbeat(try body($0)) },
        SourceUp.type: { .sourceUp(try body($0)) },
        SourceDown.type: { .sourceDown(try body($0)) },
        Lag.type: { .lag(try body($0)) },
        Reload.type: { .reload(try body($0)) },
        ConnectionError.type: { .error(try body($0)) },
        ObjectStart.type: { .objectStart(try body($0)) },
        ObjectEnd.type: { .objectEnd(try body($0)) },
        Presence.type: { .presence(try body($0)) },
        Subscribed.type: { .subscribed(try body($0)) },
    ]

    /// Why a line is not a record.
    public struct MalformedLine: Error, CustomStringConvertible, Equatable {
        public var line: String
        /// e.g. `not JSON`, `no "type"`, `"heartbeat" record: "fps": expected a number`.
        public var reason: String
        public var description: String { "malformed record (\(reason)): \(line.prefix(200))" }
    }

    private static func line<Body: RecordBody>(_ body: Body) -> String {
        var json = JSONLineWriter<Body.CodingKeys>(type: Body.type)
        body.write(to: &json)
        return json.finish() + "\n"
    }

    private static func body<Body: RecordBody>(_ data: Data) throws -> Body {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let value = try decoder.singleValueContainer()
            let text = try value.decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw DecodingError.dataCorruptedError(in: value, debugDescription: "not an RFC 3339 UTC time such as 2026-11-22T22:15:03.123Z: \(text)")
            }
            return date
        }
        return try decoder.decode(Body.self, from: data)
    }

    private struct TypeField: Decodable { var type: String }

    private static func explain(_ error: any Error, type: String?) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        let context: DecodingError.Context
        switch error {
        case .keyNotFound(_, let c), .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): context = c
        @unknown default: return "\(error)"
        }
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "\"\($0.stringValue)\"" }.joined(separator: ".")
        guard let type else {
            // Only `type` was read.
            switch error {
            case .dataCorrupted where context.codingPath.isEmpty: return "not JSON"
            case .keyNotFound: return "no \"type\""
            case _ where context.codingPath.isEmpty: return "not a JSON object"
            default: return "\"type\" is not a string"
            }
        }
        let within = "\"\(type)\" record: "
        switch error {
        case .keyNotFound(let key, _):
            return within + "no \"\(key.stringValue)\"" + (path.isEmpty ? "" : " in \(path)")
        case .typeMismatch(let expected, _):
            return within + "\(path): expected \(describe(expected))"
        case .valueNotFound(let expected, _):
            return within + "\(path): expected \(describe(expected)), got null"
        case .dataCorrupted where context.codingPath.isEmpty:
            // The line parsed (its `type` was read), so this is JSONDecoder's pathless complaint about a number.
            return within + "a number does not fit its field (a fraction or too large for an integer, or beyond a float's range)"
        default:
            return within + "\(path): " + context.debugDescription
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        if type == String.self { return "a string" }
        if type == Int.self { return "an integer" }
        if type == Float.self || type == Double.self { return "a number" }
        if type == [String].self { return "an array of strings" }
        if type == [Any].self { return "an array" }
        return "an object"
    }
}

/// What each kind's struct provides to `Record`. Decode records with `Record(jsonLine:)`: its decoder reads times as
/// RFC 3339, which a plain `JSONDecoder` does not.
protocol RecordBody: Sendable, Decodable {
    associatedtype CodingKeys: CodingKey
    /// The record's `type`.
    static var type: String { get }
    /// Writes the fields after `type`, in the documented order.
    func write(to json: inout JSONLineWriter<CodingKeys>)
}

extension Record {
    /// First line every subscriber receives.
    public struct Hello: RecordBody, Equatable {
        static let type = "hello"
        public var schema: Int
        /// The daemon's version.
        public var version: String
        public var time: Date
        /// The model's path.
        public var model: String
        /// What the detector runs in: `f32`, `bf16` or `int8`.
        public var precision: String
        /// Index 0 is class id 1.
        public var labels: [String]
        /// The configured sources' names.
        public var sources: [String]
        /// The sources delivering frames right now, so a late subscriber knows each one's state without waiting for
        /// its next `source_up`/`source_down` (written as `source_states`, each source `up` or `down`).
        public var up: Set<String>

        public init(version: String, model: String, precision: String, labels: [String], sources: [String],
                    up: Set<String> = [], time: Date = Date(), schema: Int = Record.schemaVersion) {
            self.schema = schema
            self.version = version
            self.time = time
            self.model = model
            self.precision = precision
            self.labels = labels
            self.sources = sources
            self.up = up
        }

        enum CodingKeys: String, CodingKey {
            case schema, version, time, model, precision, labels, sources, sourceStates = "source_states"
        }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.schema, schema)
            json.field(.version, version)
            json.field(.time, RFC3339.format(time))
            json.field(.model, model)
            json.field(.precision, precision)
            json.field(.labels, labels)
            json.field(.sources, sources)
            var states = JSONLineWriter<NameKey>()
            for name in sources { states.field(NameKey(stringValue: name), up.contains(name) ? "up" : "down") }
            json.key(.sourceStates)
            json.raw(states.finish())
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            schema = try c.decode(Int.self, forKey: .schema)
            version = try c.decode(String.self, forKey: .version)
            time = try c.decode(Date.self, forKey: .time)
            model = try c.decode(String.self, forKey: .model)
            precision = try c.decode(String.self, forKey: .precision)
            labels = try c.decode([String].self, forKey: .labels)
            sources = try c.decode([String].self, forKey: .sources)
            let states = try c.decodeIfPresent([String: String].self, forKey: .sourceStates) ?? [:]
            up = Set(states.filter { $0.value == "up" }.keys)
        }
    }

    /// One frame's detections, as every consumer sees them.
    public struct Detections: RecordBody, Equatable {
        static let type = "detections"
        /// The source as the user named it.
        public var source: String
        /// 0-based index of the frame among those the source decoded.
        public var frame: Int
        /// 0-based index among this source's records (frames dropped under `latest` leave no gap here).
        public var seq: Int
        /// Seconds; written to the microsecond.
        public var pts: Double?
        /// When the record was emitted.
        public var time: Date
        public var captureTime: Date
        public var width: Int
        public var height: Int
        /// Capture to emit, and the detector's own share of it; written to the microsecond.
        public var latencyMs: Double
        public var inferMs: Double
        /// Frames of this source dropped since its previous record.
        public var dropped: Int
        public var detections: [Detection]
        /// The frame's file, for a source of several files (a directory or an image sequence).
        public var file: String?
        /// Detections below the report threshold, kept only for the tracker (which empties this); never written.
        public var lowScore: [Detection] = []

        public init(source: String, frame: Int, seq: Int, pts: Double?, time: Date, captureTime: Date, width: Int, height: Int,
                    latencyMs: Double, inferMs: Double, dropped: Int, detections: [Detection], file: String? = nil) {
            self.source = source
            self.frame = frame
            self.seq = seq
            self.pts = pts
            self.time = time
            self.captureTime = captureTime
            self.width = width
            self.height = height
            self.latencyMs = latencyMs
            self.inferMs = inferMs
            self.dropped = dropped
            self.detections = detections
            self.file = file
        }

        enum CodingKeys: String, CodingKey {
            case source, file, frame, seq, pts, time, captureTime = "capture_time", width, height
            case latencyMs = "latency_ms", inferMs = "infer_ms", dropped, detections
        }
        enum DetectionKeys: String, CodingKey { case label, classID = "class_id", score, box, trackID = "track_id" }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.source, source)
            if let file { json.field(.file, file) }
            json.field(.frame, frame)
            json.field(.seq, seq)
            json.field(.pts, pts.map { ($0 * 1e6).rounded() / 1e6 })
            json.field(.time, RFC3339.format(time))
            json.field(.captureTime, RFC3339.format(captureTime))
            json.field(.width, width)
            json.field(.height, height)
            json.field(.latencyMs, (latencyMs * 1000).rounded() / 1000)
            json.field(.inferMs, (inferMs * 1000).rounded() / 1000)
            json.field(.dropped, dropped)
            json.field(.detections, detections, as: DetectionKeys.self) { d, item in
                item.field(.label, d.label)
                item.field(.classID, d.classID)
                item.field(.score, d.score)
                item.field(.box, Box(xmin: d.xmin, ymin: d.ymin, xmax: d.xmax, ymax: d.ymax))
                if let track = d.trackID { item.field(.trackID, track) }
            }
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            source = try c.decode(String.self, forKey: .source)
            file = try c.decodeIfPresent(String.self, forKey: .file)
            frame = try c.decode(Int.self, forKey: .frame)
            seq = try c.decode(Int.self, forKey: .seq)
            pts = try c.decodeIfPresent(Double.self, forKey: .pts)
            time = try c.decode(Date.self, forKey: .time)
            captureTime = try c.decode(Date.self, forKey: .captureTime)
            width = try c.decode(Int.self, forKey: .width)
            height = try c.decode(Int.self, forKey: .height)
            latencyMs = try c.decode(Double.self, forKey: .latencyMs)
            inferMs = try c.decode(Double.self, forKey: .inferMs)
            dropped = try c.decode(Int.self, forKey: .dropped)
            var list = try c.nestedUnkeyedContainer(forKey: .detections)
            detections = []
            while !list.isAtEnd {
                let item = try list.nestedContainer(keyedBy: DetectionKeys.self)
                let box = try item.decode(Box.self, forKey: .box)
                detections.append(Detection(
                    classID: try item.decode(Int.self, forKey: .classID), label: try item.decode(String.self, forKey: .label),
                    score: try item.decode(Float.self, forKey: .score), xmin: box.xmin, ymin: box.ymin, xmax: box.xmax, ymax: box.ymax,
                    trackID: try item.decodeIfPresent(Int.self, forKey: .trackID)))
            }
        }
    }

    /// Sent for a source after `heartbeat_seconds` with nothing else sent for it.
    public struct Heartbeat: RecordBody, Equatable {
        static let type = "heartbeat"
        public var source: String
        public var time: Date
        /// Written as `state`: `up` or `down`.
        public var up: Bool
        /// Records per second; written to the hundredth.
        public var fps: Double
        public var droppedTotal: Int

        public init(source: String, up: Bool, fps: Double, droppedTotal: Int, time: Date = Date()) {
            self.source = source
            self.time = time
            self.up = up
            self.fps = fps
            self.droppedTotal = droppedTotal
        }

        enum CodingKeys: String, CodingKey { case source, time, state, fps, droppedTotal = "dropped_total" }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.source, source)
            json.field(.time, RFC3339.format(time))
            json.field(.state, up ? "up" : "down")
            json.field(.fps, (fps * 100).rounded() / 100)
            json.field(.droppedTotal, droppedTotal)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            source = try c.decode(String.self, forKey: .source)
            time = try c.decode(Date.self, forKey: .time)
            switch try c.decode(String.self, forKey: .state) {
            case "up": up = true
            case "down": up = false
            case let other: throw DecodingError.dataCorruptedError(forKey: .state, in: c, debugDescription: "neither up nor down: \(other)")
            }
            fps = try c.decode(Double.self, forKey: .fps)
            droppedTotal = try c.decode(Int.self, forKey: .droppedTotal)
        }
    }

    /// A source (re)opened.
    public struct SourceUp: RecordBody, Equatable {
        static let type = "source_up"
        public var source: String
        public var time: Date
        /// As configured, a URL's password replaced by `***`.
        public var input: String

        public init(source: String, input: String, time: Date = Date()) {
            self.source = source
            self.time = time
            self.input = input
        }

        enum CodingKeys: String, CodingKey { case source, time, input }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.source, source)
            json.field(.time, RFC3339.format(time))
            json.field(.input, input)
        }
    }

    /// A source failed, ended, or was stopped by a reload.
    public struct SourceDown: RecordBody, Equatable {
        static let type = "source_down"
        public var source: String
        public var time: Date
        public var reason: String
        /// Seconds until the next attempt, written to the tenth; nil when it will not be retried.
        public var retryInSeconds: Double?

        public init(source: String, reason: String, retryInSeconds: Double?, time: Date = Date()) {
            self.source = source
            self.time = time
            self.reason = reason
            self.retryInSeconds = retryInSeconds
        }

        enum CodingKeys: String, CodingKey { case source, time, reason, retryInSeconds = "retry_in_s" }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.source, source)
            json.field(.time, RFC3339.format(time))
            json.field(.reason, reason)
            json.field(.retryInSeconds, retryInSeconds.map { ($0 * 10).rounded() / 10 })
        }
    }

    /// This subscriber fell behind and lost its oldest records.
    public struct Lag: RecordBody, Equatable {
        static let type = "lag"
        /// Records lost since this subscriber's previous `lag`.
        public var dropped: Int
        public var time: Date

        public init(dropped: Int, time: Date = Date()) {
            self.dropped = dropped
            self.time = time
        }

        enum CodingKeys: String, CodingKey { case dropped, time }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.dropped, dropped)
            json.field(.time, RFC3339.format(time))
        }
    }

    /// After SIGHUP: what the new configuration changed, or why it was refused and the running one kept.
    public struct Reload: RecordBody, Equatable {
        static let type = "reload"
        public enum Outcome: Sendable, Equatable {
            /// Written as `status: "applied"` and the changes' fields.
            case applied(ReloadChanges)
            /// Written as `status: "refused"` and `errors`, one `FILE:LINE: KEY: message` each.
            case refused(errors: [String])
        }
        public var outcome: Outcome
        public var time: Date

        public init(_ outcome: Outcome, time: Date = Date()) {
            self.outcome = outcome
            self.time = time
        }

        enum CodingKeys: String, CodingKey {
            case time, status, changed, added, removed, restarted, needsRestart = "needs_restart", errors
        }
        enum RestartKeys: String, CodingKey { case source, reason }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.time, RFC3339.format(time))
            switch outcome {
            case .applied(let changes):
                json.field(.status, "applied")
                json.field(.changed, changes.changed)
                json.field(.added, changes.added)
                json.field(.removed, changes.removed)
                json.field(.restarted, changes.restarted, as: RestartKeys.self) { restart, item in
                    item.field(.source, restart.source)
                    item.field(.reason, restart.reason)
                }
                json.field(.needsRestart, changes.needsRestart)
            case .refused(let errors):
                json.field(.status, "refused")
                json.field(.errors, errors)
            }
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            time = try c.decode(Date.self, forKey: .time)
            switch try c.decode(String.self, forKey: .status) {
            case "applied":
                var changes = ReloadChanges()
                changes.changed = try c.decode([String].self, forKey: .changed)
                changes.added = try c.decode([String].self, forKey: .added)
                changes.removed = try c.decode([String].self, forKey: .removed)
                var list = try c.nestedUnkeyedContainer(forKey: .restarted)
                while !list.isAtEnd {
                    let item = try list.nestedContainer(keyedBy: RestartKeys.self)
                    changes.restarted.append(.init(source: try item.decode(String.self, forKey: .source),
                                                   reason: try item.decode(String.self, forKey: .reason)))
                }
                changes.needsRestart = try c.decode([String].self, forKey: .needsRestart)
                outcome = .applied(changes)
            case "refused":
                outcome = .refused(errors: try c.decode([String].self, forKey: .errors))
            case let other:
                throw DecodingError.dataCorruptedError(forKey: .status, in: c, debugDescription: "neither applied nor refused: \(other)")
            }
        }
    }

    /// The last line before the daemon closes a subscriber's connection (`type` `error`).
    public struct ConnectionError: RecordBody, Equatable {
        static let type = "error"
        /// `too slow` or `too many subscribers`.
        public var reason: String
        /// `too slow`: the records it will not get, and what happened.
        public var dropped: Int?
        public var detail: String?
        /// `too many subscribers`: the configured `socket.max_subscribers`.
        public var limit: Int?
        public var time: Date

        public init(reason: String, dropped: Int? = nil, detail: String? = nil, limit: Int? = nil, time: Date = Date()) {
            self.reason = reason
            self.dropped = dropped
            self.detail = detail
            self.limit = limit
            self.time = time
        }

        enum CodingKeys: String, CodingKey { case reason, dropped, detail, limit, time }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.reason, reason)
            if let dropped { json.field(.dropped, dropped) }
            if let detail { json.field(.detail, detail) }
            if let limit { json.field(.limit, limit) }
            json.field(.time, RFC3339.format(time))
        }
    }
}

extension Record {
    /// A track was confirmed.
    public struct ObjectStart: RecordBody, Equatable {
        static let type = "object_start"
        public var source: String
        public var trackID: Int
        public var label: String
        /// The time of the record that confirmed it.
        public var time: Date
        /// Capture time of the first frame it was seen in.
        public var firstSeen: Date
        /// The frame that confirmed it, and its box and score there.
        public var frame: Int
        public var box: Box
        public var score: Float

        public init(source: String, trackID: Int, label: String, time: Date, firstSeen: Date, frame: Int, box: Box, score: Float) {
            self.source = source
            self.trackID = trackID
            self.label = label
            self.time = time
            self.firstSeen = firstSeen
            self.frame = frame
            self.box = box
            self.score = score
        }

        enum CodingKeys: String, CodingKey { case source, trackID = "track_id", label, time, firstSeen = "first_seen", frame, score, box }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.source, source)
            json.field(.trackID, trackID)
            json.field(.label, label)
            json.field(.time, RFC3339.format(time))
            json.field(.firstSeen, RFC3339.format(firstSeen))
            json.field(.frame, frame)
            json.field(.score, score)
            json.field(.box, box)
        }
    }

    /// A confirmed track ended.
    public struct ObjectEnd: RecordBody, Equatable {
        static let type = "object_end"
        public var source: String
        public var trackID: Int
        public var label: String
        public var time: Date
        public var firstSeen: Date
        /// Capture time of the last frame it was seen in (by a reported or a low-score detection).
        public var lastSeen: Date
        public var lastFrame: Int
        /// From first to last seen, on the source's clock; written to the millisecond.
        public var durationSeconds: Double
        public var bestScore: Float
        public var bestBox: Box
        public var reason: TrackEndReason

        public init(source: String, trackID: Int, label: String, time: Date, firstSeen: Date, lastSeen: Date, lastFrame: Int,
                    durationSeconds: Double, bestScore: Float, bestBox: Box, reason: TrackEndReason) {
            self.source = source
            self.trackID = trackID
            self.label = label
            self.time = time
            self.firstSeen = firstSeen
            self.lastSeen = lastSeen
            self.lastFrame = lastFrame
            self.durationSeconds = durationSeconds
            self.bestScore = bestScore
            self.bestBox = bestBox
            self.reason = reason
        }

        enum CodingKeys: String, CodingKey {
            case source, trackID = "track_id", label, time, firstSeen = "first_seen", lastSeen = "last_seen", lastFrame = "last_frame"
            case durationSeconds = "duration_s", bestScore = "best_score", bestBox = "best_box", reason
        }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.source, source)
            json.field(.trackID, trackID)
            json.field(.label, label)
            json.field(.time, RFC3339.format(time))
            json.field(.firstSeen, RFC3339.format(firstSeen))
            json.field(.lastSeen, RFC3339.format(lastSeen))
            json.field(.lastFrame, lastFrame)
            json.field(.durationSeconds, (durationSeconds * 1000).rounded() / 1000)
            json.field(.bestScore, bestScore)
            json.field(.bestBox, bestBox)
            json.field(.reason, reason.rawValue)
        }
    }

    /// The number of confirmed tracks of one label on one source changed.
    public struct Presence: RecordBody, Equatable {
        static let type = "presence"
        public var source: String
        public var label: String
        public var count: Int
        public var time: Date

        public init(source: String, label: String, count: Int, time: Date) {
            self.source = source
            self.label = label
            self.count = count
            self.time = time
        }

        enum CodingKeys: String, CodingKey { case source, label, count, time }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.source, source)
            json.field(.label, label)
            json.field(.count, count)
            json.field(.time, RFC3339.format(time))
        }
    }
}

extension Record {
    /// The answer to a subscriber's valid `subscribe` request: what it receives from now on.
    public struct Subscribed: RecordBody, Equatable {
        static let type = "subscribed"
        /// The record types it chose; nil: all of them (written as null).
        public var types: [String]?
        /// The sources it chose; nil: all of them.
        public var sources: [String]?
        public var time: Date

        public init(types: [String]?, sources: [String]?, time: Date = Date()) {
            self.types = types
            self.sources = sources
            self.time = time
        }

        enum CodingKeys: String, CodingKey { case types, sources, time }

        func write(to json: inout JSONLineWriter<CodingKeys>) {
            json.field(.types, types)
            json.field(.sources, sources)
            json.field(.time, RFC3339.format(time))
        }
    }
}

/// A box normalized to [0, 1] of the frame: x across, y down.
public struct Box: Sendable, Equatable, Decodable {
    public var xmin: Float, ymin: Float, xmax: Float, ymax: Float

    public init(xmin: Float, ymin: Float, xmax: Float, ymax: Float) {
        self.xmin = xmin
        self.ymin = ymin
        self.xmax = xmax
        self.ymax = ymax
    }

    /// Its keys, in `detections` and the track records.
    enum CodingKeys: String, CodingKey { case xmin, ymin, xmax, ymax }
}

/// Why a track ended (`object_end`'s `reason`).
public enum TrackEndReason: String, Sendable, Equatable, Decodable {
    /// Not seen for `max_age_seconds`.
    case maxAge = "max_age"
    /// Its source failed, stalled or its live stream ended.
    case sourceDown = "source_down"
    /// Its file (or image sequence) ended.
    case endOfFile = "end_of_file"
    /// A reload restarted or removed its source.
    case reload
    /// The daemon is stopping.
    case shutdown

    public init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer()
        let text = try value.decode(String.self)
        guard let known = Self(rawValue: text) else {
            throw DecodingError.dataCorruptedError(in: value, debugDescription: "not a known reason: \(text)")
        }
        self = known
    }
}


extension JSONLineWriter {
    mutating func field(_ key: Key, _ box: Box) {
        var json = JSONLineWriter<Box.CodingKeys>()
        json.field(.xmin, box.xmin)
        json.field(.ymin, box.ymin)
        json.field(.xmax, box.xmax)
        json.field(.ymax, box.ymax)
        self.key(key)
        raw(json.finish())
    }
}

/// What a reload changed, as the `reload` record reports it.
public struct ReloadChanges: Sendable, Equatable {
    public struct Restart: Sendable, Equatable {
        public var source: String
        /// e.g. `input, fps_limit changed`.
        public var reason: String
        public init(source: String, reason: String) {
            self.source = source
            self.reason = reason
        }
    }

    /// Config keys whose new values are in effect, e.g. `threshold`, `sources.door.fps_limit`.
    public var changed: [String] = []
    /// Sources started or stopped because they were added to or removed from the file.
    public var added: [String] = []
    public var removed: [String] = []
    /// Sources closed and reopened to apply their new settings.
    public var restarted: [Restart] = []
    /// Changed keys that only a restart of the daemon applies (the running values stay).
    public var needsRestart: [String] = []

    public init() {}
}
