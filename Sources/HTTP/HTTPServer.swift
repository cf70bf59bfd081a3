import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Sink
import NIOCore
import NIOPosix
import Synchronization
import Tracking
import Values

/// The daemon's HTTP server (docs/HTTP.md) on Hummingbird: the page, the JSON API, the preview pictures and
/// streams, /metrics and /healthz. It runs on SwiftNIO's event loop threads, which also serve as Swift's
/// global executor (so no libdispatch worker threads appear), and only reads state the daemon keeps anyway.
public final class HTTPServer: Sendable {
    /// What the server asks the daemon for on each request.
    public struct Daemon: Sendable {
        public var sources: @Sendable () -> [SourceStatus]
        public var subscribers: @Sendable () -> DaemonMetrics.Subscribers
        public init(sources: @escaping @Sendable () -> [SourceStatus], subscribers: @escaping @Sendable () -> DaemonMetrics.Subscribers) {
            self.sources = sources
            self.subscribers = subscribers
        }
    }

    public let options: HTTPOptions
    public let hub: PreviewHub
    public let snapshots: SnapshotStore
    public let metrics = DaemonMetrics()
    private let daemon = Mutex<Daemon?>(nil)
    /// Per source: times it went up, and why it last went down (while it is down).
    private let lifecycle = Mutex<[String: (ups: Int, downReason: String?)]>([:])
    private let logger: Logger
    private let streamClients = Mutex<Int>(0)
    private let task = Mutex<Task<Void, Never>?>(nil)
    /// The address actually bound (the port chosen when 0 was asked for), once listening.
    private let bound = Mutex<String?>(nil)

    /// Call before anything in the process uses Swift concurrency: NIO's event loops become its global executor.
    public static func adoptEventLoopsAsGlobalExecutor() {
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    public init(options: HTTPOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        hub = PreviewHub(options: options)
        snapshots = SnapshotStore(capacity: options.snapshots)
    }

    /// `object_start`/`object_end` records kept for /api/events, oldest first.
    private let events = Mutex<[(event: SnapshotStore.EventKey, json: String)]>([])
    public static let eventHistory = 200

    // MARK: What the daemon tells it

    /// The pipeline's frame tap (see `Pipeline.FrameTap`): true if the snapshots took the frame's pixels.
    public func tap(_ frame: Frame, detections: [Detection]) -> Bool {
        hub.tap(frame)
        return snapshots.hold(frame, detections: detections)
    }

    /// Each detections record as it leaves the daemon, with the tracker's events for it (under the ordered sink's
    /// lock: quick).
    public func record(_ record: Record.Detections, events: [TrackEvent] = []) {
        keep(events)
        snapshots.record(record, events: events)
        hub.record(record)
        metrics.record(record)
    }

    /// Tracker events that went out without a frame (a source's tracks ending at source_down or shutdown).
    public func record(events: [TrackEvent]) {
        keep(events)
        snapshots.record(events: events)
    }

    private func keep(_ events: [TrackEvent]) {
        let kept: [(event: SnapshotStore.EventKey, json: String)] = events.compactMap { event in
            let key: SnapshotStore.EventKey
            switch event {
            case .start(let start): key = .init(source: start.source, trackID: start.trackID)
            case .end(let end): key = .init(source: end.source, trackID: end.trackID)
            case .presence: return nil
            }
            var json = event.record.jsonLine()
            if json.hasSuffix("\n") { json.removeLast() }
            return (key, json)
        }
        guard !kept.isEmpty else { return }
        self.events.withLock { history in
            history.append(contentsOf: kept)
            if history.count > Self.eventHistory { history.removeFirst(history.count - Self.eventHistory) }
        }
    }

    public func sourceWentUp(_ source: String) {
        lifecycle.withLock { $0[source, default: (0, nil)].ups += 1; $0[source]?.downReason = nil }
    }

    public func sourceWentDown(_ source: String, reason: String) {
        lifecycle.withLock { $0[source, default: (0, nil)].downReason = reason }
    }

    /// The daemon's sources, with what the server itself saw of their ups and downs.
    func sources() -> [SourceStatus] {
        let statuses = daemon.withLock { $0 }?.sources() ?? []
        let seen = lifecycle.withLock { $0 }
        return statuses.map { status in
            var status = status
            status.reconnects = max(0, (seen[status.name]?.ups ?? 0) - 1)
            if status.state == .down { status.reason = seen[status.name]?.downReason }
            return status
        }
    }

    /// Starts serving `daemon`'s state on `options.listen`, or on `listeningDescriptor` (a socket already listening, e.g.
    /// one systemd passed; the server owns and closes it). Throws, naming the address, if it cannot listen.
    public func start(daemon: Daemon, listeningDescriptor: Int32? = nil) throws {
        self.daemon.withLock { $0 = daemon }
        let responder = makeRouter().buildResponder()
        let connection = HTTP1Channel(responder: { [logger] (request, writer: consuming ResponseWriter, channel) in
            let context = BasicRequestContext(source: .init(channel: channel, logger: logger))
            var response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch {
                response = Self.text(.internalServerError, "\(error)\n")
            }
            response.headers[.server] = "Sightline"
            try await writer.write(response: response.head, body: response.body)
        })
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        let setUp: @Sendable (any Channel) -> EventLoopFuture<HTTP1Channel.Value> = { [logger] in connection.setup(channel: $0, logger: logger) }
        let ended = Ended()
        let running = Task { [self, logger, options] in
            do {
                // Hummingbird's Application can only bind an address itself, so the accept loop is ours.
                let server: NIOAsyncChannel<HTTP1Channel.Value, Never>
                switch (listeningDescriptor, options.listen) {
                case (let fd?, _):
                    server = try await bootstrap.bind(fd, childChannelInitializer: setUp)
                case (nil, .tcp(let host, let port)):
                    server = try await bootstrap.bind(host: host, port: port, childChannelInitializer: setUp)
                case (nil, .unix(let path)):
                    // Not NIO's cleanup, which would unlink the socket of a daemon still listening there.
                    try SocketServer.removeStaleSocket(at: path)
                    server = try await bootstrap.bind(unixDomainSocketPath: path, childChannelInitializer: setUp)
                }
                bound.withLock { $0 = server.channel.localAddress.map(Self.describe) ?? "\(options.listen)" }
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { inbound in
                        for try await client in inbound {
                            group.addTask { await connection.handle(value: client, logger: logger) }
                        }
                    }
                }
                ended.set("it stopped at once")
            } catch {
                ended.set(Self.reason(error))
            }
        }
        task.withLock { $0 = running }
        // Wait until it listens, or failed to.
        while bound.withLock({ $0 }) == nil {
            if let reason = ended.wait(.milliseconds(20)) {
                let address = listeningDescriptor.map { "the socket passed as descriptor \($0)" } ?? "\(options.listen)"
                throw HTTPError("cannot listen on \(address): \(reason)")
            }
        }
    }

    /// `error` as a message reads it ("address already in use"), rather than SwiftNIO's own text, which names
    /// its internal calls.
    private static func reason(_ error: any Error) -> String {
        switch error {
        case let error as IOError: SinkError.reason(error.errnoCode)
        case SocketAddressError.unknown(let host, _): "cannot resolve the host \(host)"
        case is UnixDomainSocketPathWrongType: "the path exists and is not a socket"
        case let error as SinkError: error.message
        default: "\(error)"
        }
    }

    /// How the server's task ended, for `start` to report.
    private final class Ended: Sendable {
        private let reason = Mutex<String?>(nil)
        private let signal = DispatchSemaphore(value: 0)
        func set(_ text: String) {
            reason.withLock { $0 = text }
            signal.signal()
        }
        func wait(_ timeout: DispatchTimeInterval) -> String? {
            signal.wait(timeout: .now() + timeout) == .success ? reason.withLock { $0 } : nil
        }
    }

    /// Waits on NIO's event loops rather than with `Task.sleep`, whose timers would start libdispatch threads.
    private static func pause(_ duration: TimeAmount) async throws {
        try await MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: duration) {}.futureResult.get()
    }

    /// Where it listens, e.g. `127.0.0.1:8970` or `unix:/run/sightline/http.sock`.
    public var listeningOn: String? { bound.withLock { $0 } }

    public func stop() {
        task.withLock { $0?.cancel() }
        hub.stop()
        snapshots.stop()
    }

    private static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v4(let a): "\(a.host):\(address.port ?? 0)"
        case .v6(let a): "[\(a.host)]:\(address.port ?? 0)"
        case .unixDomainSocket: "unix:\(address.pathname ?? "")"
        }
    }

    // MARK: Routes

    private func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/") { _, _ in
            Self.response(.ok, "text/html; charset=utf-8", ByteBuffer(string: Page.html))
        }
        router.get("/api/sources") { [self] _, _ in
            Self.json(.ok, sourcesJSON())
        }
        router.get("/api/events") { [self] request, _ -> Response in
            let source = request.uri.queryParameters["source"].map(String.init)
            if let source, !known(source) { return Self.notFound("no such source") }
            let limit = min(max(request.uri.queryParameters["limit"].flatMap { Int($0) } ?? 50, 0), Self.eventHistory)
            let lines = events.withLock { $0 }.filter { source == nil || $0.event.source == source }.suffix(limit).map { event in
                // With the snapshot's address while it is kept.
                snapshots.keeps(event.event) ? String(event.json.dropLast()) + ",\"snapshot\":\"\(event.event.path)\"}" : event.json
            }
            return Self.response(.ok, "application/json", ByteBuffer(string: "[" + lines.joined(separator: ",") + "]"))
        }
        router.get("/sources/:name/latest.jpg") { [self] _, context -> Response in
            guard let name = Self.sourceName(context), known(name) else { return Self.notFound("no such source") }
            hub.watch(name)
            // A picture from the last second, or the first one to come within three.
            let deadline = PreviewHub.now() + 3_000_000_000
            var picture = hub.picture(name)
            while picture.map({ PreviewHub.now() - $0.encodedAt > 1_000_000_000 }) ?? true, PreviewHub.now() < deadline {
                try await Self.pause(.milliseconds(50))
                picture = hub.picture(name) ?? picture
            }
            guard let picture else { return Self.text(.serviceUnavailable, "no frame of \(name) detected yet\n") }
            var response = Self.response(.ok, "image/jpeg", ByteBuffer(bytes: picture.jpeg))
            response.headers[.cacheControl] = "no-store"
            response.headers[.init("X-Sightline-Frame")!] = "\(picture.frame)"
            return response
        }
        router.get("/sources/:name/stream.mjpeg") { [self] _, context -> Response in
            guard let name = Self.sourceName(context), known(name) else { return Self.notFound("no such source") }
            let admitted = streamClients.withLock { count -> Bool in
                guard count < options.maxStreamClients else { return false }
                count += 1
                return true
            }
            guard admitted else {
                return Self.text(.serviceUnavailable, "already \(options.maxStreamClients) stream clients (http.max_stream_clients)\n")
            }
            let interval = TimeAmount.nanoseconds(Int64(1e9 / options.previewFPS))
            let body = ResponseBody { [self] writer in
                defer { streamClients.withLock { $0 -= 1 } }
                var sent = 0
                while !Task.isCancelled {
                    hub.watch(name)
                    if let picture = hub.picture(name), picture.generation != sent {
                        sent = picture.generation
                        var part = ByteBuffer(string: "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: \(picture.jpeg.count)\r\n"
                                                      + "X-Sightline-Frame: \(picture.frame)\r\n\r\n")
                        part.writeBytes(picture.jpeg)
                        part.writeString("\r\n")
                        try await writer.write(part)
                    }
                    try await Self.pause(interval)
                }
                try await writer.finish(nil)
            }
            var response = Response(status: .ok, body: body)
            response.headers[.contentType] = "multipart/x-mixed-replace; boundary=frame"
            response.headers[.cacheControl] = "no-store"
            return response
        }
        router.get("/events/:id/snapshot.jpg") { [self] _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard let event = SnapshotStore.EventKey(id: id) else {
                return Self.notFound("no such event: an event's id is <source>-<track_id>, e.g. door-7")
            }
            // An open event's latest view is encoded on demand: wait for it a little.
            let deadline = PreviewHub.now() + 3_000_000_000
            var lookup = snapshots.lookup(event)
            while case .pending = lookup, PreviewHub.now() < deadline {
                try await Self.pause(.milliseconds(20))
                lookup = snapshots.lookup(event)
            }
            let snapshot: SnapshotStore.Snapshot
            switch lookup {
            case .unknown:
                return Self.notFound("no snapshot of event \(event): unknown, or no longer kept (the last \(options.snapshots) events are)")
            case .noPicture:
                return Self.notFound("event \(event) ended without a picture (none of its frames was kept)")
            case .pending(nil):
                return Self.text(.serviceUnavailable, "no picture of event \(event) yet\n")
            case .pending(let earlier?): snapshot = earlier
            case .picture(let picture): snapshot = picture
            }
            var response = Self.response(.ok, "image/jpeg", ByteBuffer(bytes: snapshot.jpeg))
            // Not cached: track ids start again at 1 when the daemon restarts.
            response.headers[.cacheControl] = "no-store"
            response.headers[.init("X-Sightline-Frame")!] = "\(snapshot.frame)"
            response.headers[.init("X-Sightline-Score")!] = "\(snapshot.score)"
            response.headers[.init("X-Sightline-Final")!] = snapshot.final ? "true" : "false"
            return response
        }
        router.get("/metrics") { [self] _, _ -> Response in
            let subscribers = daemon.withLock { $0 }?.subscribers() ?? .init(connected: 0, disconnectedStuck: 0, refusedOverLimit: 0)
            let text = metrics.render(sources: sources(), subscribers: subscribers,
                                      streamClients: streamClients.withLock { $0 })
            return Self.response(.ok, "text/plain; version=0.0.4; charset=utf-8", ByteBuffer(bytes: text))
        }
        router.get("/healthz") { [self] _, _ -> Response in
            let problems = healthProblems()
            return problems.isEmpty ? Self.text(.ok, "ok: frames are being detected\n")
                                    : Self.text(.serviceUnavailable, problems.joined(separator: "\n") + "\n")
        }
        return router
    }

    private func known(_ name: String) -> Bool { sources().contains { $0.name == name } }

    /// The `:name` path component, percent-decoded (a source named `door/cam` is `door%2Fcam`).
    private static func sourceName(_ context: BasicRequestContext) -> String? {
        context.parameters.get("name").flatMap { $0.removingPercentEncoding }
    }

    /// Why the daemon is not healthy: every source that should be running must have had a record within
    /// `stale_seconds` (files that reached their end are done, not unhealthy), and at least one must be running.
    func healthProblems() -> [String] {
        let now = PreviewHub.now()
        let running = sources().filter { $0.state != .finished }
        guard !running.isEmpty else { return ["no source is running"] }
        let stale = Int64(options.staleSeconds * 1e9)
        return running.compactMap { source in
            switch source.state {
            case .down: return "\(source.name): down\(source.reason.map { " (\($0))" } ?? "")"
            case .opening: return "\(source.name): opening"
            case .up, .finished:
                guard let last = hub.activity(source.name)?.lastRecordAt else { return "\(source.name): no frame detected yet" }
                let age = Double(now - last) / 1e9
                return now - last > stale ? "\(source.name): no frame detected for \(String(format: "%.1f", age)) s" : nil
            }
        }
    }

    private func sourcesJSON() -> [[String: Any]] {
        let now = PreviewHub.now()
        return sources().map { source in
            var item: [String: Any] = ["name": source.name, "state": source.state.rawValue, "fps": (source.fps * 10).rounded() / 10,
                                       "dropped_total": source.droppedTotal, "reconnects": source.reconnects]
            if let reason = source.reason { item["reason"] = reason }
            if let activity = hub.activity(source.name) {
                item["latency_ms"] = (activity.latencyMs * 10).rounded() / 10
                item["infer_ms"] = (activity.inferMs * 10).rounded() / 10
                item["objects"] = activity.objects
                if let last = activity.lastRecordAt { item["last_record_age_s"] = (Double(now - last) / 1e8).rounded() / 10 }
            }
            return item
        }
    }

    // MARK: Responses

    private static func response(_ status: HTTPResponse.Status, _ type: String, _ body: ByteBuffer) -> Response {
        var response = Response(status: status, body: ResponseBody(byteBuffer: body))
        response.headers[.contentType] = type
        return response
    }

    private static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        response(status, "text/plain; charset=utf-8", ByteBuffer(string: text))
    }

    private static func notFound(_ what: String) -> Response { text(.notFound, "\(what)\n") }

    private static func json(_ status: HTTPResponse.Status, _ value: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("null".utf8)
        return response(status, "application/json", ByteBuffer(bytes: data))
    }
}

public struct HTTPError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
