import Detector
import Foundation
import HTTP
import MQTT
import Tracking
import Values
import Yams

/// The daemon's configuration, read from a YAML file (see docs/CONFIG.md).
///
/// `load(path:)` / `parse(_:origin:)` check the whole file and report every problem at once, each with its
/// line and key path, so that a typo never passes silently and one run shows everything to fix.
public struct DaemonConfig: Sendable, Equatable {
    public static let defaultPath = "/etc/sightline/sightline.yaml"

    /// Frozen graph (.pb); nil: the bundled default model the CLI resolves.
    public var model: String?
    /// Label file; nil: the model's sidecar, else COCO's for a 90-class model, else class_<id>.
    public var labels: String?
    /// Numeric precision of the detector; `auto` picks the fastest this CPU and model are ready for.
    public var precision: PrecisionChoice = .auto
    /// `threshold` (default score) and `thresholds` (per-label overrides).
    public var thresholds: Thresholds
    /// Detector worker threads as configured; 0 means one per core (see `workerCount`).
    public var workers: Int
    public var socket: Socket
    /// The HTTP server (docs/HTTP.md); nil, the default, runs none.
    public var http: HTTPOptions?
    /// Interval of the daemon's heartbeat; nil when `heartbeat_seconds: 0` turns it off.
    public var heartbeat: Duration?
    /// The longest wait between attempts to reopen a failed source (the backoff's cap).
    public var reconnectMax: Duration
    /// The top-level `tracking`; each source's own keys (`SourceOptions.tracking`) win over it.
    public var tracking = TrackingSettings()
    /// At least one; names are unique.
    public var sources: [SourceOptions]
    /// The broker to publish to (docs/MQTT.md); nil: no MQTT.
    public var mqtt: MQTTSettings?
    /// The line each key was written on, by key path (`socket.group`, `sources[1].thresholds.person`), so that
    /// problems found after parsing (a model that does not load, an unknown label) can name their line too.
    public var lines = KeyLines()

    /// Where clients connect.
    public struct Socket: Sendable, Equatable {
        public static let defaultPath = "/run/sightline/sightline.sock"

        public var path: String
        /// Permission bits for the socket file (e.g. 0o660).
        public var mode: UInt32
        /// Group (name or numeric id) to give the socket file; nil keeps the daemon's own group.
        public var group: String?
        /// Records queued per subscriber before its oldest are dropped (and it is sent a `lag` record).
        public var queueLimit: Int
        /// Subscribers served at once; more are sent an `error` record and closed.
        public var maxSubscribers: Int
        /// A subscriber that reads nothing for this long while records wait is sent `too slow` and disconnected.
        public var stuckAfter: Duration

        /// The directory systemd creates for the service (`RuntimeDirectory=sightline`); it does not exist before.
        public static let runtimeDirectory = "/run/sightline"

        public init(path: String = Socket.defaultPath, mode: UInt32 = 0o660, group: String? = nil, queueLimit: Int = 1024,
                    maxSubscribers: Int = 256, stuckAfter: Duration = .seconds(30)) {
            self.path = path
            self.mode = mode
            self.group = group
            self.queueLimit = queueLimit
            self.maxSubscribers = maxSubscribers
            self.stuckAfter = stuckAfter
        }
    }

    public init(model: String? = nil, labels: String? = nil, thresholds: Thresholds = Thresholds(defaultScore: 0.5),
                workers: Int = 0, socket: Socket = Socket(), heartbeat: Duration? = .seconds(10),
                reconnectMax: Duration = .seconds(30), sources: [SourceOptions]) {
        self.model = model
        self.labels = labels
        self.thresholds = thresholds
        self.workers = workers
        self.socket = socket
        self.heartbeat = heartbeat
        self.reconnectMax = reconnectMax
        self.sources = sources
    }

    /// Each source's tracker settings (nil: not tracked).
    public var trackingBySource: [String: TrackingParameters?] {
        Dictionary(sources.map { ($0.name, tracking.overridden(by: $0.tracking).effective) }) { $1 }
    }

    /// `thresholds`, keeping the low-score detections a tracker matches when any source is tracked.
    public var detectorThresholds: Thresholds {
        var result = thresholds
        result.lowScoreFloor = trackingBySource.values.contains { $0 != nil } ? TrackingStage.lowScoreFloor : nil
        return result
    }

    /// `workers`, with 0 resolved to the number of cores this process may run on.
    public var workerCount: Int { workers > 0 ? workers : max(ProcessInfo.processInfo.activeProcessorCount, 1) }

    /// Reads and validates the file at `path`. Relative `model`, `labels` and file inputs are resolved against
    /// the file's directory; `${NAME}` and `${credential:NAME}` in strings are replaced from `environment`.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> DaemonConfig {
        let text = try readFile(path)
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text, origin: path, baseDirectory: directory, environment: environment)
    }

    /// Validates YAML `text`; `origin` names it in messages (normally the file's path). With `baseDirectory`,
    /// relative `model`, `labels` and file inputs are resolved against it; without, they are kept as written.
    public static func parse(_ text: String, origin: String, baseDirectory: String? = nil,
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> DaemonConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError([ConfigError.Problem(syntax: error, origin: origin)])
        } catch {
            throw ConfigError([ConfigError.Problem(origin: origin, line: nil, keyPath: "", message: "cannot parse: \(error)")])
        }
        var reader = ConfigReader(origin: origin, baseDirectory: baseDirectory, environment: environment)
        let config = reader.read(root)
        guard reader.problems.isEmpty, let config else {
            // In file order (a stable sort: problems on one line keep the order they were found in).
            let ordered = reader.problems.enumerated().sorted { a, b in
                (a.element.line ?? .max, a.offset) < (b.element.line ?? .max, b.offset)
            }
            throw ConfigError(ordered.map(\.element))
        }
        return config
    }

    private static func readFile(_ path: String) throws(ConfigError) -> String {
        func failure(_ message: String) -> ConfigError {
            ConfigError([ConfigError.Problem(origin: path, line: nil, keyPath: "", message: message)])
        }
        if let refusal = FileType.refusalToRead(path) { throw failure("cannot read the config file: \(refusal)") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot read the config file: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read the config file: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > 16 << 20 { throw failure("the config file is larger than 16 MiB") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw failure("the config file is not UTF-8 text") }
        return text
    }
}

/// The ranges numbers in the config (and the matching command-line options) must fall in: wide enough for any
/// real deployment, narrow enough that no value can exhaust memory or make a timer meaningless.
public enum ConfigLimits {
    /// `workers`, `--threads`: each worker holds its own engine (about 10 MB with the default model).
    public static let workers = 0...256
    /// `ring_capacity`, `--ring-capacity`: frames queued per source (a 1080p frame is 6 MB).
    public static let ringCapacity = 1...256
    /// `socket.queue_limit`: records queued per subscriber.
    public static let queueLimit = 1...100_000
    /// `socket.max_subscribers` (the daemon also keeps it under half its descriptor limit).
    public static let maxSubscribers = 1...65_536
    /// `socket.stuck_seconds`.
    public static let stuckSeconds = 1.0...86_400.0
    /// `heartbeat_seconds` (0 turns heartbeats off).
    public static let heartbeatSeconds = 0.1...86_400.0
    /// `io_timeout`, `--io-timeout`, in seconds.
    public static let ioTimeoutSeconds = 0.1...3_600.0
    /// `reconnect_max_seconds`.
    public static let reconnectMaxSeconds = 1.0...3_600.0
    /// `fps_limit`, `realtime_fps`, `capture_fps`, `--fps`, `--capture-fps`.
    public static let framesPerSecond = 0.001...1_000.0
    /// `width`, `height`, `--size`.
    public static let captureSide = 1...16_384
    /// `http.preview_fps`.
    public static let previewFPS = 0.1...30.0
    /// `http.max_stream_clients`.
    public static let streamClients = 1...1_000
    /// `http.stale_seconds`.
    public static let staleSeconds = 0.5...3_600.0
    /// `http.snapshots`.
    public static let snapshots = 0...1_000
}

/// Where each key of a config file was written. Not part of a config's value: two configs that say the same
/// thing are equal wherever their keys sit.
public struct KeyLines: Sendable, Equatable {
    public private(set) var lines: [String: Int] = [:]

    public init() {}

    /// The 1-based line of the key at `keyPath`, or nil when the file did not write it.
    public subscript(_ keyPath: String) -> Int? { lines[keyPath] }

    mutating func set(_ keyPath: String, line: Int?) { lines[keyPath] = line }

    public static func == (_: KeyLines, _: KeyLines) -> Bool { true }
}
