import Capture
import Detector
import Foundation
import FrameRing
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
    /// Interval of the daemon's heartbeat; nil when `heartbeat_seconds: 0` turns it off.
    public var heartbeat: Duration?
    /// The longest wait between attempts to reopen a failed source (the backoff's cap).
    public var reconnectMax: Duration
    /// At least one; names are unique.
    public var sources: [SourceOptions]
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

        /// The directory systemd creates for the service (`RuntimeDirectory=sightline`); it does not exist before.
        public static let runtimeDirectory = "/run/sightline"

        public init(path: String = Socket.defaultPath, mode: UInt32 = 0o660, group: String? = nil, queueLimit: Int = 1024,
                    maxSubscribers: Int = 256) {
            self.path = path
            self.mode = mode
            self.group = group
            self.queueLimit = queueLimit
            self.maxSubscribers = maxSubscribers
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

/// Every problem found in a config file; `description` lists them one per line.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// The file (or other origin) the config came from.
        public var origin: String
        /// 1-based line, where known.
        public var line: Int?
        /// Where in the document, e.g. `sources[1].policy`; empty for the file as a whole.
        public var keyPath: String
        public var message: String

        public init(origin: String, line: Int?, keyPath: String, message: String) {
            self.origin = origin
            self.line = line
            self.keyPath = keyPath
            self.message = message
        }

        /// `origin:line: key.path: message`, leaving out what is unknown; a password in a URL is masked.
        public var description: String {
            var text = origin
            if let line { text += ":\(line)" }
            text += ": "
            if !keyPath.isEmpty { text += keyPath + ": " }
            return Redaction.redactingPasswords(text + message)
        }

        init(syntax error: YamlError, origin: String) {
            switch error {
            case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
                 let .composer(context, problem, mark, _):
                var message = "YAML syntax error at column \(mark.column): \(problem)"
                if let context { message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))" }
                self.init(origin: origin, line: mark.line, keyPath: "", message: message)
            case let .duplicatedKeysInMapping(duplicates, context):
                let keys = duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
                let noun = duplicates.count == 1 ? "key" : "keys"
                self.init(origin: origin, line: context.mark.line, keyPath: "",
                          message: "\(noun) \(keys) given more than once in the same mapping (first here)")
            case let .reader(problem, offset, _, _):
                self.init(origin: origin, line: nil, keyPath: "",
                          message: "YAML reader error: \(problem)" + (offset.map { " at character \($0)" } ?? ""))
            default:
                self.init(origin: origin, line: nil, keyPath: "", message: "YAML error: \(error)")
            }
        }
    }

    public var problems: [Problem]

    public init(_ problems: [Problem]) { self.problems = problems }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
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

// MARK: - Reading the node tree

/// Walks the composed YAML tree, converting values and recording every problem it finds.
struct ConfigReader {
    let origin: String
    let baseDirectory: String?
    let environment: [String: String]
    var problems: [ConfigError.Problem] = []
    var lines = KeyLines()

    init(origin: String, baseDirectory: String?, environment: [String: String]) {
        self.origin = origin
        self.baseDirectory = baseDirectory
        self.environment = environment
    }

    static let topKeys = ["model", "labels", "precision", "threshold", "thresholds", "workers", "socket", "heartbeat_seconds",
                          "reconnect_max_seconds", "sources"]
    static let socketKeys = ["path", "mode", "group", "queue_limit", "max_subscribers"]
    static let sourceKeys = ["name", "input", "policy", "fps_limit", "realtime", "realtime_fps", "ring_capacity", "io_timeout",
                             "width", "height", "capture_fps", "threshold", "thresholds"]

    mutating func problem(_ node: Node?, _ path: String, _ message: String) {
        problems.append(ConfigError.Problem(origin: origin, line: node?.mark?.line, keyPath: path, message: message))
    }

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
        if let node = fields["sources"] {
            config.sources = sources(node, "sources")
        } else {
            problem(root, "sources", "missing: list at least one source (name and input)")
        }
        config.lines = lines
        return config
    }

    // MARK: Sections

    mutating func socket(_ node: Node, _ path: String) -> DaemonConfig.Socket {
        var socket = DaemonConfig.Socket()
        guard !node.isNull, let fields = mapping(node, path, keys: Self.socketKeys) else { return socket }
        if let node = fields["path"], let value = string(node, "\(path).path") {
            if value.utf8.count > 107 {
                problem(node, "\(path).path", "is \(value.utf8.count) bytes long; a socket path may have at most 107")
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
        return socket
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
        return problems.count == count ? options : nil
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

    // MARK: Values

    /// The fields of a mapping, after reporting keys that are not in `keys` (with a suggestion for typos).
    mutating func mapping(_ node: Node, _ path: String, keys: [String]) -> [String: Node]? {
        guard case .mapping(let pairs) = node else {
            problem(node, path, "must be a mapping of keys (\(keys.joined(separator: ", "))), got \(kind(node))")
            return nil
        }
        var fields: [String: Node] = [:]
        for (key, value) in pairs {
            guard case .scalar(let scalar) = key else {
                problem(key, path, "keys must be plain names, got \(kind(key))")
                continue
            }
            let name = scalar.string
            let keyPath = path.isEmpty ? name : "\(path).\(name)"
            guard keys.contains(name) else {
                var message = "unknown key"
                if let guess = Self.closest(to: name, in: keys) { message += " (did you mean \"\(guess)\"?)" }
                problem(key, keyPath, message + "; known keys: \(keys.joined(separator: ", "))")
                continue
            }
            lines.set(keyPath, line: key.mark?.line)
            fields[name] = value
        }
        return fields
    }

    /// A path-like string (nil for null), resolved against the config file's directory if relative.
    mutating func path(_ node: Node, _ path: String) -> String? {
        if node.isNull { return nil }
        guard let value = string(node, path) else { return nil }
        return resolve(value)
    }

    func resolve(_ value: String) -> String {
        guard let baseDirectory, !value.hasPrefix("/") else { return value }
        return URL(fileURLWithPath: baseDirectory, isDirectory: true).appendingPathComponent(value).standardized.path
    }

    /// Inputs that are neither URLs nor absolute paths are files relative to the config file.
    func resolveInput(_ value: String) -> String { value.contains("://") ? value : resolve(value) }

    /// A non-empty string: any non-null scalar, with `${NAME}` and `${credential:NAME}` substituted.
    mutating func string(_ node: Node, _ path: String) -> String? {
        guard let written = nonNullScalar(node, path) else { return nil }
        guard let value = substitute(written, node, path) else { return nil }
        if value.trimmingCharacters(in: .whitespaces).isEmpty {
            problem(node, path, "must not be empty")
            return nil
        }
        return value
    }

    /// Replaces `${NAME}` with the environment variable and `${credential:NAME}` with the systemd credential
    /// (`$CREDENTIALS_DIRECTORY/NAME`, one trailing newline dropped); `$${` stands for a literal `${`.
    /// Nil, after reporting it, when a reference cannot be resolved. Messages never include a resolved value.
    mutating func substitute(_ text: String, _ node: Node, _ path: String) -> String? {
        guard text.contains("${") else { return text }
        var result = ""
        var rest = Substring(text)
        var ok = true
        while let dollar = rest.range(of: "${") {
            if rest[..<dollar.lowerBound].hasSuffix("$") {
                result += rest[..<rest.index(before: dollar.lowerBound)] + "${"
                rest = rest[dollar.upperBound...]
                continue
            }
            result += rest[..<dollar.lowerBound]
            guard let close = rest[dollar.upperBound...].firstIndex(of: "}") else {
                problem(node, path, "unterminated \"${\" (write \"$${\" for a literal \"${\")")
                return nil
            }
            let reference = String(rest[dollar.upperBound..<close])
            rest = rest[rest.index(after: close)...]
            if let value = resolve(reference: reference, node, path) { result += value } else { ok = false }
        }
        return ok ? result + rest : nil
    }

    mutating func resolve(reference: String, _ node: Node, _ path: String) -> String? {
        let isName = { (name: Substring) in
            !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }
                && name != "." && name != ".."
        }
        if reference.hasPrefix("credential:") {
            let name = reference.dropFirst("credential:".count)
            guard isName(name) else {
                problem(node, path, "\"${\(reference)}\": a credential name is letters, digits, '_', '-' and '.'")
                return nil
            }
            guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else {
                problem(node, path, "credential \"\(name)\": $CREDENTIALS_DIRECTORY is not set "
                            + "(give the unit LoadCredential=\(name):FILE, see docs/CONFIG.md)")
                return nil
            }
            let file = URL(fileURLWithPath: directory).appendingPathComponent(String(name)).path
            guard let data = FileManager.default.contents(atPath: file) else {
                let reason = FileManager.default.fileExists(atPath: file) ? "cannot read" : "no such file"
                problem(node, path, "credential \"\(name)\": \(reason) \(file)")
                return nil
            }
            guard var value = String(data: data, encoding: .utf8) else {
                problem(node, path, "credential \"\(name)\": \(file) is not UTF-8 text")
                return nil
            }
            if value.hasSuffix("\r\n") { value.removeLast(1) } else if value.hasSuffix("\n") { value.removeLast() }
            return value
        }
        guard isName(Substring(reference)), !reference.contains("-"), !reference.contains("."),
              !(reference.first?.isNumber ?? true) else {
            problem(node, path, "\"${\(reference)}\": write ${NAME} for an environment variable or ${credential:NAME} for a systemd credential")
            return nil
        }
        guard let value = environment[reference] else {
            problem(node, path, "environment variable \(reference) is not set")
            return nil
        }
        return value
    }

    mutating func nonNullScalar(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            problem(node, path, "must be a single value, got \(kind(node))")
            return nil
        }
        if node.isNull {
            problem(node, path, "must have a value, got null")
            return nil
        }
        return scalar.string
    }

    mutating func number(_ node: Node, _ path: String) -> Double? {
        let tag = node.tagName
        if case .scalar = node, tag == .int || tag == .float, let value = node.float, value.isFinite { return value }
        problem(node, path, "must be a number, got \(describe(node))")
        return nil
    }

    /// A number within `range`.
    mutating func number(_ node: Node, _ path: String, in range: ClosedRange<Double>, unit: String = "") -> Double? {
        guard let value = number(node, path) else { return nil }
        guard range.contains(value) else {
            problem(node, path, "must be between \(format(range.lowerBound)) and \(format(range.upperBound))\(unit), got \(format(value))")
            return nil
        }
        return value
    }

    mutating func positive(_ node: Node, _ path: String, atMost limit: Double) -> Double? {
        guard let value = number(node, path) else { return nil }
        guard value > 0 else {
            problem(node, path, "must be greater than 0, got \(format(value))")
            return nil
        }
        guard value <= limit else {
            problem(node, path, "must be at most \(format(limit)), got \(format(value))")
            return nil
        }
        return value
    }

    /// A frame rate: 0.001 (one frame in ~17 minutes) to 1000 per second.
    mutating func rate(_ node: Node, _ path: String) -> Double? {
        guard let value = positive(node, path, atMost: ConfigLimits.framesPerSecond.upperBound) else { return nil }
        guard value >= ConfigLimits.framesPerSecond.lowerBound else {
            problem(node, path, "must be at least 0.001 frames per second, got \(format(value))")
            return nil
        }
        return value
    }

    mutating func score(_ node: Node, _ path: String) -> Float? {
        guard let value = number(node, path) else { return nil }
        guard (0...1).contains(value) else {
            problem(node, path, "must be between 0 and 1, got \(format(value))")
            return nil
        }
        return Float(value)
    }

    mutating func integer(_ node: Node, _ path: String) -> Int? {
        if case .scalar = node, node.tagName == .int, let value = node.int { return value }
        // Too large for Int: still a whole number, so say so as a range error.
        if case .scalar(let scalar) = node, node.tagName == .int, node.int == nil {
            problem(node, path, "is far too large, got \(scalar.string)")
            return nil
        }
        problem(node, path, "must be a whole number, got \(describe(node))")
        return nil
    }

    /// A whole number within `range`; `zeroMeaning` explains a lower bound of 0.
    mutating func integer(_ node: Node, _ path: String, in range: ClosedRange<Int>, zeroMeaning: String? = nil) -> Int? {
        guard let value = integer(node, path) else { return nil }
        guard range.contains(value) else {
            let low = zeroMeaning.map { "\(range.lowerBound) (\($0))" } ?? "\(range.lowerBound)"
            problem(node, path, "must be between \(low) and \(range.upperBound), got \(value)")
            return nil
        }
        return value
    }

    mutating func boolean(_ node: Node, _ path: String) -> Bool? {
        if case .scalar = node, node.tagName == .bool, let value = node.bool { return value }
        problem(node, path, "must be true or false, got \(describe(node))")
        return nil
    }

    // MARK: Wording

    func kind(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar: return describe(node)
        }
    }

    func describe(_ node: Node) -> String {
        guard case .scalar(let scalar) = node else { return kind(node) }
        if node.isNull { return "null" }
        return "\"\(scalar.string)\""
    }

    func format(_ value: Double) -> String { String(format: "%g", value) }

    /// The known key a typo most likely meant: within an edit distance of 2 (or a case difference).
    static func closest(to name: String, in keys: [String]) -> String? {
        let lowered = name.lowercased().replacingOccurrences(of: "-", with: "_")
        if let exact = keys.first(where: { $0 == lowered }) { return exact }
        let best = keys.map { ($0, distance(Array(lowered), Array($0))) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= max(1, min(2, name.count / 3)) else { return nil }
        return best.0
    }

    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

private extension Node {
    var isNull: Bool {
        if case .scalar = self { return tagName == .null }
        return false
    }

    /// The resolved tag (plain scalars are typed by their text; quoted ones are strings).
    var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }
}
