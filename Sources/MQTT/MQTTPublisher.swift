import Foundation
import Glibc
import Logging
import Synchronization
import Values

/// Publishes the daemon's records to an MQTT broker (docs/MQTT.md) from its own thread.
///
/// The detection path only calls the record methods below: each takes a short lock, appends to a bounded queue
/// and at most writes one byte to a pipe; none waits on the network. The publisher's thread owns the
/// libmosquitto client (one per connection attempt), reconnects with jittered exponential backoff, republishes
/// every retained topic on each connection, and puts back what the broker had not acknowledged when a
/// connection broke (so a message is sent at least once unless the queue's bound drops it).
public final class MQTTPublisher: Sendable {
    public struct Status: Sendable, Equatable {
        public var connected: Bool
        /// Connections the broker accepted since start.
        public var connections: Int
        public var queued: Int
        /// Non-retained messages dropped because the queue was full, in all.
        public var droppedTotal: Int
        /// Messages the broker acknowledged (QoS 1/2) or that were written (QoS 0).
        public var delivered: Int
        public var lastError: String?
    }

    /// At most this many messages are in libmosquitto's hands at once; the rest wait in the bounded queue.
    static let inFlightLimit = 100
    static let reconnectMaxSeconds = 30.0
    /// How long a stop waits for the broker to take what is queued.
    static let flushTime = Duration.seconds(2)

    private struct Shared: ~Copyable {
        var settings: MQTTSettings
        var settingsChanged = false
        /// What the connection the new settings replace publishes before it closes.
        var farewell: [Outbound] = []
        var stopping = false
        var sources: [String]
        let labels: [String]
        var sourceStates: [String: (up: Bool, json: String)] = [:]
        var counts: [String: [String: Int]] = [:]
        var retained = RetainedState()
        var queue: OutboundQueue
        var sourceStats: [String: SourceStats] = [:]
        var lastDetections: [String: ContinuousClock.Instant] = [:]
        var status = Status(connected: false, connections: 0, queued: 0, droppedTotal: 0, delivered: 0)
    }

    struct SourceStats {
        var records = 0
        var dropped = 0
        var latencySum = 0.0
        var latencyMax = 0.0
    }

    private let shared: Mutex<Shared>
    private let wake: WakePipe
    private let version: String
    private let logger: Logger
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the publisher's thread, which connects in the background: a broker that is down is retried, not an error.
    /// `labels` are the model's (or the configured `mqtt.labels`): they get retained counts and Home Assistant entities.
    public init(settings: MQTTSettings, version: String, sources: [String], labels: [String], logger: Logger) throws(MQTTError) {
        self.version = version
        self.logger = logger
        wake = try WakePipe()
        shared = Mutex(Shared(settings: settings, sources: sources, labels: settings.labels ?? labels,
                              queue: OutboundQueue(limit: settings.queueLimit)))
        shared.withLock { state in Self.rebuildRetained(&state, version: version) }
        let thread = Thread(named: "sl-mqtt") { [self] in
            run()
            finished.signal()
        }
        thread.start()
    }

    // MARK: Records (called on the detection path: no waiting)

    public func sourceUp(_ source: String, time: Date = Date()) {
        setSourceState(source, StatePayload(state: "up", reason: nil, time: PayloadJSON.time(time)))
    }

    public func sourceDown(_ source: String, reason: String, time: Date = Date()) {
        setSourceState(source, StatePayload(state: "down", reason: reason, time: PayloadJSON.time(time)))
    }

    /// An `object_start`/`object_end` record, as the socket sends it.
    public func event(source: String, json: String) {
        enqueue { state in
            Outbound(topic: Topics(prefix: state.settings.topicPrefix).events(source), payload: Self.trimmed(json),
                     qos: Int32(state.settings.eventsQoS), retain: false)
        }
    }

    /// The number of confirmed `label` objects on `source` changed (a `presence` record).
    public func presence(source: String, label: String, count: Int) {
        enqueue { state in
            state.counts[source, default: [:]][label] = count
            let topic = Topics(prefix: state.settings.topicPrefix).count(source, label)
            return Outbound(topic: topic, payload: String(count), qos: 1, retain: true,
                            version: state.retained.set(topic, String(count)))
        }
    }

    /// One `detections` record: counted for `<prefix>/stats`, and published when `mqtt.detections` is on and the
    /// rate limit allows (`json` is only evaluated then).
    public func detections(source: String, latencyMs: Double, dropped: Int, json: () -> String) {
        enqueue { state in
            state.sourceStats[source, default: SourceStats()].add(latencyMs: latencyMs, dropped: dropped)
            guard state.settings.detections else { return nil }
            if let rate = state.settings.detectionsMaxPerSecond {
                let now = ContinuousClock.now
                if let last = state.lastDetections[source], now - last < .seconds(1 / rate) { return nil }
                state.lastDetections[source] = now
            }
            return Outbound(topic: Topics(prefix: state.settings.topicPrefix).detections(source), payload: Self.trimmed(json()),
                            qos: 0, retain: false)
        }
    }

    /// After a reload: new settings (a changed connection reconnects; the queue is kept) and the configured sources
    /// (Home Assistant entities follow: added ones appear, removed ones are deleted).
    public func reconfigure(settings: MQTTSettings, sources: [String]) {
        shared.withLock { state in
            let changed = state.settings != settings
            let removed = state.sources.filter { !sources.contains($0) }
            if !changed && removed.isEmpty && sources == state.sources { return }
            if state.settings.homeAssistant && !removed.isEmpty {
                let discovery = HomeAssistantDiscovery(settings: state.settings, version: version)
                for message in discovery.removals(sources: removed, labels: state.labels) {
                    state.queue.append(Outbound(topic: message.topic, payload: "", qos: 1, retain: true,
                                                version: state.retained.set(message.topic, "")))
                }
            }
            for source in removed {
                state.sourceStates[source] = nil
                state.counts[source] = nil
            }
            state.sources = sources
            if changed {
                let oldTopics = Topics(prefix: state.settings.topicPrefix)
                let oldRetained = state.retained.all.map(\.topic)
                state.settings = settings
                state.settingsChanged = true
                state.queue.resize(to: settings.queueLimit)
                Self.rebuildRetained(&state, version: version)
                // The old connection's goodbye: `offline`, and retained topics the new settings no longer use cleared
                // (an empty retained message deletes them), so no stale state stays on the broker.
                let kept = Set(state.retained.all.map(\.topic))
                state.farewell = [Outbound(topic: oldTopics.available, payload: "offline", qos: 1, retain: true)]
                    + oldRetained.filter { !kept.contains($0) }.map { Outbound(topic: $0, payload: "", qos: 1, retain: true) }
            } else {
                Self.publishRetained(&state, version: version)
            }
        }
        wake.signal()
    }

    public var status: Status {
        shared.withLock { state in
            var status = state.status
            status.queued = state.queue.count
            status.droppedTotal = state.queue.droppedTotal
            return status
        }
    }

    /// Sends what is queued, publishes each source `down` and `offline`, and disconnects: waits for the broker at most
    /// `flushTime` for the queue and a second for the goodbye.
    public func stop() {
        let first = shared.withLock { state in
            defer { state.stopping = true }
            return !state.stopping
        }
        guard first else { return }
        wake.signal()
        if finished.wait(timeout: .now() + .milliseconds(Int(Self.flushTime / .milliseconds(1)) + 1500)) == .timedOut {
            logger.warning("MQTT publisher did not finish in time; exiting without it")
        }
    }

    // MARK: Retained state (under the lock)

    private func setSourceState(_ source: String, _ payload: StatePayload) {
        enqueue { state in
            let json = PayloadJSON.encode(payload)
            state.sourceStates[source] = (payload.state == "up", json)
            let topic = Topics(prefix: state.settings.topicPrefix).state(source)
            return Outbound(topic: topic, payload: json, qos: 1, retain: true, version: state.retained.set(topic, json))
        }
    }

    /// The retained map from scratch for the current settings: discovery configs, then per source its state and counts.
    private static func rebuildRetained(_ state: inout Shared, version: String) {
        state.retained.removeAll()
        publishRetained(&state, version: version)
    }

    /// Sets (and queues) every retained topic the sources and labels call for that is missing from the map.
    private static func publishRetained(_ state: inout Shared, version: String) {
        let topics = Topics(prefix: state.settings.topicPrefix)
        var messages: [(String, String)] = []
        if state.settings.homeAssistant {
            let discovery = HomeAssistantDiscovery(settings: state.settings, version: version)
            messages += discovery.configs(sources: state.sources, labels: state.labels).map { ($0.topic, $0.payload) }
        }
        for source in state.sources {
            if let current = state.sourceStates[source] { messages.append((topics.state(source), current.json)) }
            for label in state.labels {
                messages.append((topics.count(source, label), String(state.counts[source]?[label] ?? 0)))
            }
        }
        for (topic, payload) in messages where state.retained.value(topic) != payload {
            state.queue.append(Outbound(topic: topic, payload: payload, qos: 1, retain: true,
                                        version: state.retained.set(topic, payload)))
        }
    }

    private func enqueue(_ make: (inout Shared) -> Outbound?) {
        let wasEmpty = shared.withLock { state -> Bool? in
            guard !state.stopping, let message = make(&state) else { return nil }
            let wasEmpty = state.queue.count == 0
            state.queue.append(message)
            return wasEmpty
        }
        if wasEmpty == true { wake.signal() }
    }

    private static func trimmed(_ line: String) -> String {
        line.hasSuffix("\n") ? String(line.dropLast()) : line
    }

    // MARK: The publisher's thread

    private func run() {
        var link = Link(logger: logger)
        var nextStats = ContinuousClock.now
        while true {
            let (settings, changed, farewell, stopping) = shared.withLock { state in
                defer {
                    state.settingsChanged = false
                    state.farewell = []
                }
                return (state.settings, state.settingsChanged, state.farewell, state.stopping)
            }
            if stopping {
                // What the daemon sent last (the final object_end and source_down records) goes out before the goodbye.
                let deadline = ContinuousClock.now + Self.flushTime
                while link.connected && ContinuousClock.now < deadline {
                    for event in link.takeEvents() { handle(event, link: &link) }
                    drain(&link)
                    if link.inFlightCount == 0 && shared.withLock({ state in state.queue.count }) == 0 { break }
                    link.wait(wake: wake, until: deadline)
                }
                link.close(goodbye: goodbye(), within: .seconds(1))
                return
            }
            if changed {
                logger.info("MQTT settings changed: reconnecting", metadata: ["broker": "\(settings.host):\(settings.port)"])
                link.close(goodbye: farewell, within: .seconds(1))
            }
            let now = ContinuousClock.now
            if link.connection == nil && now >= link.retryAt { link.open(settings) }
            for event in link.takeEvents() { handle(event, link: &link) }
            if link.connected { drain(&link) }
            if let interval = settings.statsIntervalSeconds {
                if now >= nextStats {
                    if nextStats != now { publishStats(interval: interval) }
                    nextStats = now + .milliseconds(Int(interval * 1000))
                }
            } else {
                nextStats = now + .seconds(1)
            }
            link.wait(wake: wake, until: min(nextStats, link.connection == nil ? link.retryAt : now + .seconds(1)))
            for event in link.takeEvents() { handle(event, link: &link) }
            shared.withLock { state in
                state.status.connected = link.connected
                state.status.lastError = link.lastError
            }
        }
    }

    private func handle(_ event: MosquittoConnection.Event, link: inout Link) {
        switch event {
        case .connected:
            link.didConnect()
            let (republish, dropped) = shared.withLock { state in
                state.status.connections += 1
                return (state.retained.all, state.queue.takeDropped())
            }
            logger.info("MQTT connected", metadata: ["broker": "\(link.settings.host):\(link.settings.port)",
                                                     "client_id": "\(link.settings.clientID)"])
            guard let topics = link.topics else { return }
            link.send(Outbound(topic: topics.available, payload: "online", qos: 1, retain: true))
            if dropped > 0 {
                logger.warning("MQTT: messages dropped while the broker was away", metadata: ["dropped": "\(dropped)"])
                link.send(Outbound(topic: topics.dropped, payload: PayloadJSON.encode(
                    DroppedPayload(dropped: dropped, time: PayloadJSON.time(Date()))), qos: 1, retain: false))
            }
            for (topic, payload, version) in republish {
                link.send(Outbound(topic: topic, payload: payload, qos: 1, retain: true, version: version))
            }
        case .refused(let reason), .disconnected(let reason):
            let requeue = link.didDisconnect(reason: reason, refused: { if case .refused = event { true } else { false } }())
            if !requeue.isEmpty { shared.withLock { state in state.queue.prepend(requeue) } }
        case .delivered(let mid):
            if link.delivered(mid) { shared.withLock { state in state.status.delivered += 1 } }
        }
    }

    /// Hands queued messages to libmosquitto while fewer than `inFlightLimit` are unacknowledged.
    private func drain(_ link: inout Link) {
        while link.connected && link.inFlightCount < Self.inFlightLimit {
            guard let message = shared.withLock({ state in state.queue.popFirst() }) else { return }
            if message.retain, let sent = link.publishedVersions[message.topic], message.version <= sent { continue }
            link.send(message)
        }
    }

    private func publishStats(interval: Double) {
        enqueue { state in
            var sources: [String: StatsPayload.Source] = [:]
            for name in state.sources {
                let stats = state.sourceStats[name] ?? SourceStats()
                let up = state.sourceStates[name]?.up ?? false
                sources[name] = StatsPayload.Source(
                    state: up ? "up" : "down", fps: (Double(stats.records) / interval * 100).rounded() / 100,
                    records: stats.records, dropped: stats.dropped,
                    latency_ms_mean: stats.records > 0 ? (stats.latencySum / Double(stats.records) * 10).rounded() / 10 : nil,
                    latency_ms_max: stats.records > 0 ? (stats.latencyMax * 10).rounded() / 10 : nil)
            }
            state.sourceStats.removeAll(keepingCapacity: true)
            let payload = StatsPayload(type: "stats", time: PayloadJSON.time(Date()), interval_s: interval, sources: sources,
                                       mqtt: .init(queued: state.queue.count, dropped_total: state.queue.droppedTotal,
                                                   connections: state.status.connections))
            return Outbound(topic: Topics(prefix: state.settings.topicPrefix).stats, payload: PayloadJSON.encode(payload),
                            qos: 0, retain: false)
        }
    }

    /// What a graceful stop publishes: every source `down`, then `offline`.
    private func goodbye() -> [Outbound] {
        shared.withLock { state in
            let topics = Topics(prefix: state.settings.topicPrefix)
            let time = PayloadJSON.time(Date())
            return state.sources.map { source in
                Outbound(topic: topics.state(source), payload: PayloadJSON.encode(StatePayload(state: "down", reason: "stopped", time: time)),
                         qos: 1, retain: true)
            } + [Outbound(topic: topics.available, payload: "offline", qos: 1, retain: true)]
        }
    }
}

extension MQTTPublisher.SourceStats {
    mutating func add(latencyMs: Double, dropped: Int) {
        records += 1
        self.dropped += dropped
        latencySum += latencyMs
        latencyMax = max(latencyMax, latencyMs)
    }
}

private struct StatePayload: Encodable {
    var state: String
    var reason: String?
    var time: String
}

private struct DroppedPayload: Encodable {
    var type = "dropped"
    var dropped: Int
    var time: String
}

private struct StatsPayload: Encodable {
    struct Source: Encodable {
        var state: String
        var fps: Double
        var records: Int
        var dropped: Int
        var latency_ms_mean: Double?
        var latency_ms_max: Double?
    }
    struct Client: Encodable {
        var queued: Int
        var dropped_total: Int
        var connections: Int
    }
    var type: String
    var time: String
    var interval_s: Double
    var sources: [String: Source]
    var mqtt: Client
}
