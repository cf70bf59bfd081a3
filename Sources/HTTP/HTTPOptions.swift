import Values

/// The `http:` section of the config (docs/HTTP.md).
public struct HTTPOptions: Sendable, Equatable {
    public enum Listen: Sendable, Equatable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unix(path: String)

        /// `127.0.0.1:8970`, `[::1]:8970`, `0.0.0.0:8970`, or a Unix socket as `unix:/run/sightline/http.sock` or an absolute path.
        public init?(_ text: String) {
            guard let listen = try? Listen(parsing: text) else { return nil }
            self = listen
        }

        /// As `init?(_:)`, throwing what is wrong with `text` (as `http.listen: MESSAGE` reads it).
        public init(parsing text: String) throws(Invalid) {
            if text.hasPrefix("unix:") || text.hasPrefix("/") {
                let path = text.hasPrefix("unix:") ? String(text.dropFirst(5)) : text
                guard path.hasPrefix("/") else {
                    throw Invalid("a Unix socket needs an absolute path, e.g. \"unix:/run/sightline/http.sock\", got \"\(text)\"")
                }
                if let problem = UnixSocketPath.problem(path) { throw Invalid("the Unix socket path \(problem)") }
                self = .unix(path: path)
                return
            }
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
                throw Invalid.format(text)
            }
            var host = String(text[..<colon])
            if host.hasPrefix("[") || host.hasSuffix("]") {
                guard host.count > 2, host.hasPrefix("["), host.hasSuffix("]") else {
                    throw Invalid("unbalanced brackets in \"\(text)\": write an IPv6 address in brackets, e.g. \"[::1]:8970\"")
                }
                host = String(host.dropFirst().dropLast())
                guard host.contains(":") else {
                    throw Invalid("only an IPv6 address goes in brackets, got \"\(text)\" (e.g. \"[::1]:8970\", \"127.0.0.1:8970\")")
                }
            }
            guard !host.isEmpty, !host.contains(where: { "/ []".contains($0) }) else {
                throw Invalid.format(text)
            }
            self = .tcp(host: host, port: port)
        }

        /// What is wrong with an `http.listen` value.
        public struct Invalid: Error, Sendable {
            public let message: String
            init(_ message: String) { self.message = message }

            static func format(_ text: String) -> Invalid {
                Invalid("must be HOST:PORT (e.g. \"127.0.0.1:8970\", \"[::1]:8970\") or a Unix socket "
                            + "(\"unix:/run/sightline/http.sock\"), got \"\(text)\"")
            }
        }

        public var description: String {
            switch self {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unix(let path): "unix:\(path)"
            }
        }
    }

    public static let defaultListen = Listen.tcp(host: "127.0.0.1", port: 8970)

    public var listen: Listen
    /// Frames per second at most, per source, for the preview (latest.jpg and stream.mjpeg).
    public var previewFPS: Double
    /// stream.mjpeg clients served at once (all sources together); more get 503.
    public var maxStreamClients: Int
    /// A running source with no record for this long makes /healthz answer 503.
    public var staleSeconds: Double
    /// Events whose snapshot (`/events/<id>/snapshot.jpg`) is kept, the latest ones; 0: none.
    public var snapshots: Int

    public init(listen: Listen = HTTPOptions.defaultListen, previewFPS: Double = 5, maxStreamClients: Int = 10, staleSeconds: Double = 5,
                snapshots: Int = 50) {
        self.listen = listen
        self.previewFPS = previewFPS
        self.maxStreamClients = maxStreamClients
        self.staleSeconds = staleSeconds
        self.snapshots = snapshots
    }
}

/// What the daemon knows about one source, as /api/sources, the page, /metrics and /healthz show it.
public struct SourceStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Open and capturing.
        case up
        /// Failed or stalled; reopening with backoff.
        case down
        /// Not opened yet.
        case opening
        /// A file that reached its end (not retried).
        case finished
    }

    public var name: String
    public var state: State
    /// Records per second over the last few seconds.
    public var fps: Double
    /// Frames dropped by the source's ring since it opened.
    public var droppedTotal: Int
    /// Times the source was opened again after going down.
    public var reconnects: Int
    /// Why it is down, if it is.
    public var reason: String?

    public init(name: String, state: State, fps: Double, droppedTotal: Int, reconnects: Int = 0, reason: String? = nil) {
        self.name = name
        self.state = state
        self.fps = fps
        self.droppedTotal = droppedTotal
        self.reconnects = reconnects
        self.reason = reason
    }
}
