import Detector
import FrameRing
import MQTT
import HTTP
import Tracking
import Values
import Yams

/// The schema of the config file (docs/CONFIG.md): which keys each section has and what each must hold.
extension ConfigReader {
    static let topKeys = ["model", "labels", "precision", "threshold", "thresholds", "workers", "socket", "heartbeat_seconds",
                          "reconnect_max_seconds", "tracking", "sources", "mqtt", "http"]
    static let socketKeys = ["path", "mode", "group", "queue_limit", "max_subscribers", "stuck_seconds"]
    static let httpKeys = ["listen", "preview_fps", "max_stream_clients", "stale_seconds", "snapshots"]
    static let sourceKeys = ["name", "input", "policy", "fps_limit", "realtime", "realtime_fps", "ring_capacity", "io_timeout",
                             "width", "height", "capture_fps", "threshold", "thresholds", "tracking"]
    static let trackingKeys = ["enabled", "min_hits", "window_seconds", "max_age_seconds", "iou_threshold"]

    mutating func read(_ root: Node?) -> DaemonConfig? {
        guard let root, !root.isNull else {
            problem(nil, "", "the file is empty; it needs at least a `sources:` list")
            return nil
        }
        guard let fields = mapping(root, "", keys: Self.topKeys) else { return nil }

        var config = DaemonConfig(sources: [])
        config.model = fields["model"].flatMap { path($0, "model") }
        config.labels = fields["labels"].flatMap { path($0, "labels") }
        if let node = fields["precision"], let value = nonNullScalar(node, "precision") {
            if let precision = PrecisionChoice(rawValue: value) {
                config.precision = precision
            } else {
                let names = PrecisionChoice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
                problem(node, "precision", "must be one of \(names), got \"\(value)\"")
            }
        }
        if let node = fields["threshold"], let value = score(node, "threshold") { config.thresholds.defaultScore = value }
        if let node = fields["thresholds"] { config.thresholds.perLabel = labelScores(node, "thresholds") }
        if let node = fields["workers"], let value = integer(node, "workers", in: ConfigLimits.workers, zeroMeaning: "one per core") {
            config.workers = value
        }
        if let node = fields["socket"] { config.socket = socket(node, "socket") }
        if let node = fields["http"] { config.http = http(node, "http") }
        if let node = fields["heartbeat_seconds"], let value = number(node, "heartbeat_seconds") {
            let range = ConfigLimits.heartbeatSeconds
            if value == 0 {
                config.heartbeat = nil
            } else if range.contains(value) {
                config.heartbeat = .milliseconds(Int64((value * 1000).rounded()))
            } else {
                problem(node, "heartbeat_seconds",
                        "must be 0 (off) or between \(format(range.lowerBound)) and \(format(range.upperBound)) seconds, got \(format(value))")
            }
        }
        if let node = fields["reconnect_max_seconds"],
           let value = number(node, "reconnect_max_seconds", in: ConfigLimits.reconnectMaxSeconds, unit: " seconds") {
            config.reconnectMax = .milliseconds(Int64((value * 1000).rounded()))
        }
        if let node = fields["tracking"] { config.tracking = config.tracking.overridden(by: tracking(node, "tracking")) }
        if let node = fields["sources"] {
            config.sources = sources(node, "sources")
        } else {
            problem(root, "sources", "missing: list at least one source (name and input)")
        }
        if let node = fields["mqtt"] {
            config.mqtt = mqtt(node, "mqtt")
            // Each source name is one topic level (docs/MQTT.md).
            for (index, source) in config.sources.enumerated() where !Topics.isValidLevel(source.name) {
                problem(node, "sources[\(index)].name", "\"\(source.name)\" cannot be an MQTT topic level: it must not contain '/', '+' or '#'")
            }
        }
        config.lines = lines
        return config
    }

    // MARK: Sections

    mutating func socket(_ node: Node, _ path: String) -> DaemonConfig.Socket {
        var socket = DaemonConfig.Socket()
        guard !node.isNull, let fields = mapping(node, path, keys: Self.socketKeys) else { return socket }
        if let node = fields["path"], let value = string(node, "\(path).path") {
            if let refusal = UnixSocketPath.problem(value) {
                problem(node, "\(path).path", refusal)
            } else {
                socket.path = value
            }
        }
        if let node = fields["mode"], let value = nonNullScalar(node, "\(path).mode") {
            // Accept 0660, "0660", 660 and 0o660 alike: the digits are always read as octal.
            var digits = Substring(value)
            if digits.hasPrefix("0o") || digits.hasPrefix("0O") { digits = digits.dropFirst(2) }
            if let mode = UInt32(digits, radix: 8), !digits.isEmpty, digits.allSatisfy({ ("0"..."7").contains($0) }), mode <= 0o777 {
                socket.mode = mode
            } else {
                problem(node, "\(path).mode", "must be octal permission bits such as \"0660\", got \"\(value)\"")
            }
        }
        if let node = fields["group"], !node.isNull, let value = string(node, "\(path).group") {
            socket.group = value
        }
        if let node = fields["queue_limit"], let value = integer(node, "\(path).queue_limit", in: ConfigLimits.queueLimit) {
            socket.queueLimit = value
        }
        if let node = fields["max_subscribers"], let value = integer(node, "\(path).max_subscribers", in: ConfigLimits.maxSubscribers) {
            socket.maxSubscribers = value
        }
        if let node = fields["stuck_seconds"], let value = number(node, "\(path).stuck_seconds", in: ConfigLimits.stuckSeconds, unit: " seconds") {
            socket.stuckAfter = .milliseconds(Int64((value * 1000).rounded()))
        }
        return socket
    }

    /// nil (no HTTP server) for `http: null`; any mapping, even empty, turns it on.
    mutating func http(_ node: Node, _ path: String) -> HTTPOptions? {
        guard !node.isNull else { return nil }
        var http = HTTPOptions()
        guard let fields = mapping(node, path, keys: Self.httpKeys) else { return http }
        if let node = fields["listen"], let value = string(node, "\(path).listen") {
            do {
                http.listen = try HTTPOptions.Listen(parsing: value)
            } catch {
                problem(node, "\(path).listen", error.message)
            }
        }
        if let node = fields["preview_fps"], let value = number(node, "\(path).preview_fps", in: ConfigLimits.previewFPS) {
            http.previewFPS = value
        }
        if let node = fields["max_stream_clients"], let value = integer(node, "\(path).max_stream_clients", in: ConfigLimits.streamClients) {
            http.maxStreamClients = value
        }
        if let node = fields["stale_seconds"], let value = number(node, "\(path).stale_seconds", in: ConfigLimits.staleSeconds, unit: " seconds") {
            http.staleSeconds = value
        }
        if let node = fields["snapshots"], let value = integer(node, "\(path).snapshots", in: ConfigLimits.snapshots) {
            http.snapshots = value
        }
        return http
    }

    mutating func sources(_ node: Node, _ path: String) -> [SourceOptions] {
        guard case .sequence(let items) = node else {
            if node.isNull {
                problem(node, path, "is empty: list at least one source (name and input)")
            } else {
                problem(node, path, "must be a list of sources, got \(kind(node))")
            }
            return []
        }
        if items.isEmpty { problem(node, path, "is empty: list at least one source (name and input)") }
        var result: [SourceOptions] = []
        var firstByName: [String: (index: Int, line: Int?)] = [:]
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            // Names are compared even when the source has other problems, so that all of them show at once.
            if let nameNode = item.mapping?["name"], case .scalar(let scalar) = nameNode, !nameNode.isNull {
                let name = scalar.string
                if let first = firstByName[name] {
                    problem(nameNode, "\(itemPath).name",
                            "duplicate source name \"\(name)\" (also \(path)[\(first.index)]"
                                + (first.line.map { ", line \($0)" } ?? "") + ")")
                } else {
                    firstByName[name] = (index, nameNode.mark?.line)
                }
            }
            if let source = source(item, itemPath) { result.append(source) }
        }
        return result
    }

    mutating func source(_ node: Node, _ path: String) -> SourceOptions? {
        guard let fields = mapping(node, path, keys: Self.sourceKeys) else { return nil }
        let count = problems.count
        var name: String?
        if let node = fields["name"], let value = string(node, "\(path).name") { name = value }
        if fields["name"] == nil { problem(node, "\(path).name", "missing: every source needs a unique name") }
        var input: String?
        if let node = fields["input"], let value = string(node, "\(path).input") { input = resolveInput(value) }
        if fields["input"] == nil {
            problem(node, "\(path).input", "missing: a device (/dev/video0), a stream URL (rtsp://...) or a file")
        }
        var options = SourceOptions(name: name ?? "", input: input ?? "")
        if let node = fields["policy"], !node.isNull, let value = nonNullScalar(node, "\(path).policy") {
            if let policy = DropPolicy(rawValue: value) {
                options.policy = policy
            } else {
                let names = DropPolicy.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: " or ")
                problem(node, "\(path).policy", "must be \(names), got \"\(value)\"")
            }
        }
        if let node = fields["fps_limit"], !node.isNull, let value = rate(node, "\(path).fps_limit") { options.fpsLimit = value }
        if let node = fields["realtime"], let value = boolean(node, "\(path).realtime") { options.realtime = value }
        if let node = fields["realtime_fps"], !node.isNull, let value = rate(node, "\(path).realtime_fps") {
            if options.realtime {
                options.realtimeFPS = value
            } else {
                problem(node, "\(path).realtime_fps", "only applies with `realtime: true`")
            }
        }
        if let node = fields["ring_capacity"], !node.isNull,
           let value = integer(node, "\(path).ring_capacity", in: ConfigLimits.ringCapacity) {
            options.ringCapacity = value
        }
        if let node = fields["io_timeout"],
           let value = number(node, "\(path).io_timeout", in: ConfigLimits.ioTimeoutSeconds, unit: " seconds") {
            options.ioTimeout = .milliseconds(Int64((value * 1000).rounded()))
        }
        for key in ["width", "height"] {
            guard let node = fields[key], !node.isNull,
                  let value = integer(node, "\(path).\(key)", in: ConfigLimits.captureSide) else { continue }
            if key == "width" { options.captureWidth = value } else { options.captureHeight = value }
        }
        if let node = fields["capture_fps"], !node.isNull, let value = rate(node, "\(path).capture_fps") { options.captureFPS = value }
        if let node = fields["threshold"], let value = score(node, "\(path).threshold") { options.thresholds.defaultScore = value }
        if let node = fields["thresholds"] { options.thresholds.perLabel = labelScores(node, "\(path).thresholds") }
        if let node = fields["tracking"] { options.tracking = tracking(node, "\(path).tracking") }
        return problems.count == count ? options : nil
    }

    /// The keys a `tracking` mapping sets (top-level or a source's).
    mutating func tracking(_ node: Node, _ path: String) -> TrackingOverrides {
        var tracking = TrackingOverrides()
        guard !node.isNull, let fields = mapping(node, path, keys: Self.trackingKeys) else { return tracking }
        if let node = fields["enabled"] { tracking.enabled = boolean(node, "\(path).enabled") }
        if let node = fields["min_hits"] {
            tracking.minHits = integer(node, "\(path).min_hits", in: TrackingParameters.minHitsRange)
        }
        if let node = fields["window_seconds"] {
            tracking.windowSeconds = number(node, "\(path).window_seconds", in: TrackingParameters.secondsRange, unit: " seconds")
        }
        if let node = fields["max_age_seconds"] {
            tracking.maxAgeSeconds = number(node, "\(path).max_age_seconds", in: TrackingParameters.secondsRange, unit: " seconds")
        }
        if let node = fields["iou_threshold"] {
            let range = TrackingParameters.iouRange
            tracking.iouThreshold = number(node, "\(path).iou_threshold", in: Double(range.lowerBound)...Double(range.upperBound))
                .map { Float($0) }
        }
        return tracking
    }

    mutating func labelScores(_ node: Node, _ path: String) -> [String: Float] {
        if node.isNull { return [:] }
        guard case .mapping(let pairs) = node else {
            problem(node, path, "must be a mapping of label: score, such as { person: 0.6 }, got \(kind(node))")
            return [:]
        }
        var result: [String: Float] = [:]
        for (key, value) in pairs {
            guard let label = nonNullScalar(key, path), !label.isEmpty else {
                problem(key, path, "a label must be a non-empty name")
                continue
            }
            lines.set("\(path).\(label)", line: key.mark?.line)
            if let score = score(value, "\(path).\(label)") { result[label] = score }
        }
        return result
    }
}
