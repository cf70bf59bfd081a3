import Foundation
import Logging
import MQTT
import Sink
import Synchronization

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

    /// A record already written as a JSON line: `source_up`/`source_down` set the source's retained state,
    /// `object_start`/`object_end` are events, `presence` a retained count; the rest stay on the socket.
    func forward(line: String) {
        guard let publisher = publisher.withLock({ $0 }) else { return }
        // Every record starts with its type; only these few are decoded.
        let head = "{\"type\":\""
        guard line.hasPrefix(head) else { return }
        let type = line.utf8.dropFirst(head.utf8.count).prefix { $0 != UInt8(ascii: "\"") }
        guard ["source_up", "source_down", "object_start", "object_end", "presence"].contains(where: { $0.utf8.elementsEqual(type) }),
              let record = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
              let source = record["source"] as? String else { return }
        switch String(decoding: type, as: UTF8.self) {
        case "source_up": publisher.sourceUp(source)
        case "source_down": publisher.sourceDown(source, reason: record["reason"] as? String ?? "")
        case "presence":
            if let label = record["label"] as? String, let count = record["count"] as? Int {
                publisher.presence(source: source, label: label, count: count)
            }
        default: publisher.event(source: source, json: line)
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
