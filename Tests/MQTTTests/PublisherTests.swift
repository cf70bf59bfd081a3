import Foundation
import Logging
@testable import MQTT
import TestSupport
import XCTest

/// The publisher against a real Mosquitto broker, read back with `mosquitto_sub`.
final class PublisherTests: XCTestCase {
    private func settings(_ broker: MosquittoBroker, clientID: String = "test-host", prefix: String = "sightline",
                          queueLimit: Int = 1000, stats: Double? = nil) -> MQTTSettings {
        MQTTSettings(host: "127.0.0.1", port: Int(broker.port), clientID: clientID, topicPrefix: prefix,
                     statsIntervalSeconds: stats, queueLimit: queueLimit)
    }

    private func publisher(_ settings: MQTTSettings, sources: [String] = ["door"]) throws -> MQTTPublisher {
        try MQTTPublisher(settings: settings, version: "test", sources: sources, labels: ["person"],
                          logger: Logger(label: "mqtt-test"))
    }

    func testOnlineRetainedStateDiscoveryAndGracefulOffline() throws {
        let broker = try MosquittoBroker()
        let mqtt = try publisher(settings(broker))
        defer { mqtt.stop() }
        mqtt.sourceUp("door")
        mqtt.presence(source: "door", label: "person", count: 2)
        // online, three discovery configs, the newest count (2: the 0 it replaced is skipped) and the state, all
        // acknowledged by the broker.
        XCTAssertTrue(eventually { mqtt.status.delivered >= 6 }, "not delivered: \(mqtt.status)")
        // Six deliveries may include a count of 0 published on connecting, before the 2 was: the broker has the 2
        // (and, in order, all before it) once a subscriber sees it.
        let witness = try MQTTSubscriber(port: broker.port, topics: ["sightline/door/person"])
        defer { witness.stop() }
        XCTAssertTrue(witness.waitUntil { $0.contains { $0.payload == "2" } }, "\(witness.messages)")

        // A subscriber arriving later gets the current state from the broker's retained messages.
        let late = try MQTTSubscriber(port: broker.port)
        defer { late.stop() }
        XCTAssertTrue(late.waitUntil { messages in
            messages.contains { $0.topic == "sightline/door/person" && $0.payload == "2" }
                && messages.contains { $0.topic == "sightline/available" && $0.payload == "online" }
                && messages.contains { $0.topic == "sightline/door/state" }
                && messages.filter { $0.topic.hasPrefix("homeassistant/") }.count == 3
        }, "retained state missing: \(late.messages)")
        XCTAssertTrue(late.messages.allSatisfy(\.retained), "\(late.messages.filter { !$0.retained })")
        XCTAssertEqual(late.messages(on: "sightline/door/state").last?.json?["state"] as? String, "up")

        let configs = Dictionary(late.messages.filter { $0.topic.hasPrefix("homeassistant/") }.map { ($0.topic, $0.json ?? [:]) }) { $1 }
        XCTAssertEqual(Set(configs.keys), ["homeassistant/binary_sensor/test-host/door_connectivity/config",
                                           "homeassistant/binary_sensor/test-host/door_person_occupancy/config",
                                           "homeassistant/sensor/test-host/door_person_count/config"])
        let occupancy = configs["homeassistant/binary_sensor/test-host/door_person_occupancy/config"] ?? [:]
        XCTAssertEqual(occupancy["state_topic"] as? String, "sightline/door/person")
        XCTAssertEqual(occupancy["device_class"] as? String, "occupancy")
        XCTAssertEqual(occupancy["availability_topic"] as? String, "sightline/available")
        XCTAssertEqual(occupancy["unique_id"] as? String, "test-host_door_person_occupancy")
        XCTAssertEqual((occupancy["device"] as? [String: Any])?["identifiers"] as? [String], ["test-host"])
        let connectivity = configs["homeassistant/binary_sensor/test-host/door_connectivity/config"] ?? [:]
        XCTAssertEqual(connectivity["state_topic"] as? String, "sightline/door/state")
        XCTAssertEqual(connectivity["device_class"] as? String, "connectivity")

        // Live changes, then a graceful stop: each source down, then offline.
        mqtt.presence(source: "door", label: "person", count: 0)
        mqtt.sourceDown("door", reason: "end of stream")
        XCTAssertTrue(late.waitUntil { $0.contains { $0.topic == "sightline/door/person" && $0.payload == "0" && !$0.retained } })
        // The state message is published after the count: wait for it rather than read what has arrived so far.
        XCTAssertTrue(late.waitUntil { $0.last { $0.topic == "sightline/door/state" }?.json?["reason"] as? String == "end of stream" },
                      "\(late.messages(on: "sightline/door/state"))")
        mqtt.stop()
        XCTAssertTrue(late.waitUntil { $0.last { $0.topic == "sightline/available" }?.payload == "offline" }, "\(late.messages)")
        XCTAssertEqual(late.messages(on: "sightline/door/state").last.flatMap { $0.json?["reason"] as? String }, "stopped")
    }

    /// While the broker is down, events queue up to the bound; the oldest beyond it are dropped and counted. After the
    /// restart every queued event arrives in order, the drop count is published, and retained state is republished.
    func testBrokerRestartKeepsQueuedEventsAndReportsDrops() throws {
        let broker = try MosquittoBroker(persistence: true)
        // A persistent session: the broker keeps QoS 1 messages for this subscriber across its own restart.
        let subscriber = try MQTTSubscriber(port: broker.port, topics: ["sightline/#"], clientID: "restart-watcher")
        defer { subscriber.stop() }
        let mqtt = try publisher(settings(broker, queueLimit: 10))
        defer { mqtt.stop() }
        mqtt.sourceUp("door")
        func event(_ n: Int) { mqtt.event(source: "door", json: "{\"type\":\"object_start\",\"n\":\(n)}\n") }
        // The state reaching the subscriber (live or retained) shows its subscription is in place before any event.
        XCTAssertTrue(subscriber.waitUntil { $0.contains { $0.topic == "sightline/door/state" } }, "\(subscriber.messages)")
        for n in 1...5 { event(n) }
        XCTAssertTrue(subscriber.waitUntil { $0.filter { $0.topic == "sightline/door/events" }.count == 5 }, "\(subscriber.messages)")

        broker.stop()
        XCTAssertTrue(eventually { !mqtt.status.connected }, "the publisher did not notice the broker leave")
        for n in 6...25 { event(n) }
        XCTAssertEqual(mqtt.status.queued, 10)
        XCTAssertEqual(mqtt.status.droppedTotal, 10)
        let beforeRestart = subscriber.messages.count
        try broker.start()
        XCTAssertTrue(eventually { mqtt.status.connected && mqtt.status.queued == 0 }, "\(mqtt.status)")
        for n in 26...30 { event(n) }

        XCTAssertTrue(subscriber.waitUntil { $0.contains { $0.topic == "sightline/door/events" && $0.json?["n"] as? Int == 30 } },
                      "\(subscriber.messages) \(subscriber.stderr)")
        // QoS 1 is at least once: the broker may deliver again what it had not seen acknowledged before its restart.
        var numbers: [Int] = []
        for n in subscriber.messages(on: "sightline/door/events").compactMap({ $0.json?["n"] as? Int }) where !numbers.contains(n) {
            numbers.append(n)
        }
        XCTAssertEqual(numbers, Array(1...5) + Array(16...30))
        XCTAssertEqual(subscriber.messages(on: "sightline/dropped").compactMap { $0.json?["dropped"] as? Int }, [10])
        // The new connection republished the state and `online` (live messages, not the broker's retained copies).
        let afterRestart = subscriber.messages.dropFirst(beforeRestart).filter { !$0.retained }
        XCTAssertTrue(afterRestart.contains { $0.topic == "sightline/door/state" }, "\(afterRestart)")
        XCTAssertTrue(afterRestart.contains { $0.topic == "sightline/available" && $0.payload == "online" }, "\(afterRestart)")
    }

    func testPasswordFileAuthentication() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let passwords = directory.appendingPathComponent("passwords").path
        let made = try runProcess("/usr/bin/mosquitto_passwd", ["-b", "-c", passwords, "camera-host", "s3cret pass"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let broker = try MosquittoBroker(extra: ["password_file \(passwords)"])

        var wrong = settings(broker, clientID: "intruder")
        wrong.username = "camera-host"
        wrong.password = "guess"
        let refused = try publisher(wrong)
        defer { refused.stop() }
        XCTAssertTrue(eventually { refused.status.lastError?.contains("not authorised") == true }, "\(refused.status)")
        XCTAssertFalse(refused.status.connected)

        var right = settings(broker)
        right.username = "camera-host"
        right.password = "s3cret pass"
        let mqtt = try publisher(right)
        defer { mqtt.stop() }
        let subscriber = try MQTTSubscriber(port: broker.port, topics: ["sightline/available"],
                                            arguments: ["-u", "camera-host", "-P", "s3cret pass"])
        defer { subscriber.stop() }
        XCTAssertTrue(subscriber.waitUntil { $0.contains { $0.payload == "online" } }, "\(subscriber.messages) \(subscriber.stderr)")
        XCTAssertNil(mqtt.status.lastError)
    }

    func testTLSWithSelfSignedCertificateAuthority() throws {
        let pki = try TestPKI()
        let broker = try MosquittoBroker(extra: ["cafile \(pki.caCert)", "certfile \(pki.serverCert)", "keyfile \(pki.serverKey)"])
        var secure = settings(broker)
        secure.tls = MQTTSettings.TLS(caFile: pki.caCert)
        let mqtt = try publisher(secure)
        defer { mqtt.stop() }
        XCTAssertTrue(eventually { mqtt.status.connected }, "\(mqtt.status) \(broker.log)")
        let subscriber = try MQTTSubscriber(port: broker.port, topics: ["sightline/available"], arguments: ["--cafile", pki.caCert])
        defer { subscriber.stop() }
        XCTAssertTrue(subscriber.waitUntil { $0.contains { $0.payload == "online" } }, "\(subscriber.messages) \(subscriber.stderr)")

        // A client that trusts another authority refuses the broker's certificate.
        var distrustful = settings(broker, clientID: "distrustful")
        distrustful.tls = MQTTSettings.TLS(caFile: pki.otherCACert)
        let refused = try publisher(distrustful)
        defer { refused.stop() }
        XCTAssertTrue(eventually { refused.status.lastError?.contains("certificate verify failed") == true }, "\(refused.status)")
        XCTAssertFalse(refused.status.connected)
        XCTAssertEqual(refused.status.connections, 0)
    }

    /// Two hosts' publishers (their own client ids and prefixes) into one broker; one subscriber sees both.
    func testTwoPrefixesIntoOneBroker() throws {
        let broker = try MosquittoBroker()
        let subscriber = try MQTTSubscriber(port: broker.port, topics: ["+/available", "+/+/events"])
        defer { subscriber.stop() }
        let hall = try publisher(settings(broker, clientID: "hall-host", prefix: "site/hall"), sources: ["entrance"])
        let yard = try publisher(settings(broker, clientID: "yard-host", prefix: "yard"), sources: ["gate"])
        defer { hall.stop(); yard.stop() }
        XCTAssertTrue(eventually { hall.status.connected && yard.status.connected })
        XCTAssertTrue(subscriber.waitUntilSubscribed(port: broker.port, probe: "probe/available"))
        yard.event(source: "gate", json: "{\"type\":\"object_start\"}")
        XCTAssertTrue(subscriber.waitUntil { messages in
            messages.contains { $0.topic == "yard/available" && $0.payload == "online" }
                && messages.contains { $0.topic == "yard/gate/events" }
        }, "\(subscriber.messages)")
        // `+/available` matches one level only: the two-level prefix needs its own filter, as docs/DEPLOYMENT.md says.
        let both = try MQTTSubscriber(port: broker.port, topics: ["site/+/available", "+/available"])
        defer { both.stop() }
        XCTAssertTrue(both.waitUntil { Set($0.map(\.topic)) == ["site/hall/available", "yard/available"] }, "\(both.messages)")
    }

    func testStatsCountRecordsPerSource() throws {
        let broker = try MosquittoBroker()
        let subscriber = try MQTTSubscriber(port: broker.port, topics: ["sightline/stats"])
        defer { subscriber.stop() }
        let mqtt = try publisher(settings(broker, stats: 0.5))
        defer { mqtt.stop() }
        XCTAssertTrue(eventually { mqtt.status.connected })
        mqtt.sourceUp("door")
        // One stats message seen: the subscription is in place before the records are counted.
        XCTAssertTrue(subscriber.waitUntil { !$0.isEmpty }, "\(subscriber.messages)")
        for _ in 0..<4 { mqtt.detections(source: "door", latencyMs: 20, dropped: 1) { XCTFail("detections are off"); return "" } }
        // The four may straddle two intervals: each interval reports its own.
        func door(_ messages: [MQTTSubscriber.Message]) -> [[String: Any]] {
            messages.compactMap { ($0.json?["sources"] as? [String: Any])?["door"] as? [String: Any] }
        }
        XCTAssertTrue(subscriber.waitUntil { door($0).compactMap { $0["records"] as? Int }.reduce(0, +) == 4 }, "\(subscriber.messages)")
        let counted = door(subscriber.messages).filter { ($0["records"] as? Int ?? 0) > 0 }
        XCTAssertEqual(counted.compactMap { $0["dropped"] as? Int }.reduce(0, +), 4)
        XCTAssertEqual(counted.compactMap { $0["latency_ms_max"] as? Double }, Array(repeating: 20, count: counted.count))
        XCTAssertTrue(counted.allSatisfy { $0["state"] as? String == "up" })
    }
}

/// A certificate authority, a broker certificate for 127.0.0.1 signed by it, and an unrelated second authority,
/// made with openssl in a temporary directory.
struct TestPKI {
    let directory: URL
    var caCert: String { directory.appendingPathComponent("ca.crt").path }
    var otherCACert: String { directory.appendingPathComponent("other-ca.crt").path }
    var serverCert: String { directory.appendingPathComponent("server.crt").path }
    var serverKey: String { directory.appendingPathComponent("server.key").path }

    init() throws {
        directory = try TestPaths.temporaryDirectory()
        let d = directory.path
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Sightline test CA",
             "-keyout", "\(d)/ca.key", "-out", "\(d)/ca.crt"],
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Another CA",
             "-keyout", "\(d)/other-ca.key", "-out", "\(d)/other-ca.crt"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "\(d)/server.key", "-out", "\(d)/server.csr"],
            ["x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.crt", "-CAkey", "\(d)/ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "\(d)/san.ext", "-out", "\(d)/server.crt"],
        ]
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: "\(d)/san.ext", atomically: true, encoding: .utf8)
        for step in steps {
            let result = try runProcess("/usr/bin/openssl", step)
            guard result.status == 0 else { throw PKIError(description: "openssl \(step.joined(separator: " ")): \(result.stderr)") }
        }
    }

    struct PKIError: Error, CustomStringConvertible { let description: String }
}
