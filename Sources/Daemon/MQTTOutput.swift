import Foundation
import Logging
import MQTT
import Sink
import Synchronization
import Tracking

/// The daemon's MQTT side (docs/MQTT.md): a publisher while the config has an `mqtt:` section, fed from the
/// outlet with every record that leaves. A reload creates, reconfigures or stops it without touching the sources.
final class MQTTOutput: Sendable {
    private let publisher: Mutex<MQTTPublisher?>
    private let labels: [String]
    private let logger: Logger

    /// `labels` are the model's: each gets a retained count and Home Assistant entities unless `mqtt.labels` says otherwise.
    init(config: DaemonConfig, labels: [String], logger: Logger) throws(MQTTError) {
        self.labels = labels
        self.logger = logger
        publisher = Mutex(try config.mqtt.map { settings throws(MQTTError) in
            try MQTTPublisher(settings: settings, version: Service.version, sources: config.sources.map(\.name),
                              labels: labels, logger: logger)
        })
    }

    func forward(_ record: DetectionRecord) {
        guard let publisher = publisher.withLock({ $0 }) else { return }
        publisher.detections(source: record.source, latencyMs: record.latencyMs, dropped: record.dropped) { record.jsonLine() }
    }

    /// `object_start`/`object_end` go out as events (`line`: the socket's JSON), `presence` as a retained count.
    func forward(_ event: TrackEvent, line: String) {
        guard let publisher = publisher.withLock({ $0 }) else { return }
        switch event {
        case .start(let start): publisher.event(source: start.source, json: line)
        case .end(let end): publisher.event(source: end.source, json: line)
        case .presence(let presence): publisher.presence(source: presence.source, label: presence.label, count: presence.count)
        }
    }

    /// One of the service's records, already written as a JSON line: `source_up`/`source_down` set the source's
    /// retained state; the others (heartbeat, reload) stay on the socket.
    func forward(line: String) {
        guard let publisher = publisher.withLock({ $0 }) else { return }
        // Every record starts with its type; only these two are decoded.
        let isUp = line.hasPrefix("{\"type\":\"source_up\"")
        guard isUp || line.hasPrefix("{\"type\":\"source_down\""),
              let record = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
              let source = record["source"] as? String else { return }
        if isUp {
            publisher.sourceUp(source)
        } else {
            publisher.sourceDown(source, reason: record["reason"] as? String ?? "")
        }
    }

    /// After a reload: the new `mqtt:` section and sources applied (a broker change reconnects; the queue is kept).
    func apply(_ config: DaemonConfig) {
        let stale: MQTTPublisher? = publisher.withLock { current in
            switch (current, config.mqtt) {
            case (let running?, let settings?):
                running.reconfigure(settings: settings, sources: config.sources.map(\.name))
                return nil
            case (nil, let settings?):
                do {
                    current = try MQTTPublisher(settings: settings, version: Service.version, sources: config.sources.map(\.name),
                                                labels: labels, logger: logger)
                } catch {
                    logger.error("MQTT not started", metadata: ["error": "\(error)"])
                }
                return nil
            case (let running?, nil):
                current = nil
                return running
            case (nil, nil):
                return nil
            }
        }
        stale?.stop()
    }

    /// Sends what is queued and says goodbye (`offline`), waiting a few seconds at most for the broker.
    func stop() {
        publisher.withLock { $0 }?.stop()
    }
}
