import Daemon
import Foundation
import MQTT
import TestSupport
import XCTest

/// The `mqtt:` section: defaults, every key, secrets kept out of the file, and clear errors.
final class ConfigMQTTTests: XCTestCase {
    private func parse(_ mqtt: String, sources: String = "  - { name: door, input: /dev/video0 }",
                       environment: [String: String] = [:], baseDirectory: String? = nil) throws -> DaemonConfig {
        try DaemonConfig.parse("sources:\n\(sources)\nmqtt:\n\(mqtt)\n", origin: "m.yaml", baseDirectory: baseDirectory,
                               environment: environment)
    }

    private func problems(_ mqtt: String, sources: String = "  - { name: door, input: /dev/video0 }",
                          environment: [String: String] = [:]) -> String {
        do {
            _ = try parse(mqtt, sources: sources, environment: environment)
            return "parsed without error"
        } catch {
            return "\(error)"
        }
    }

    func testWithoutTheSectionThereIsNoMQTT() throws {
        XCTAssertNil(try DaemonConfig.parse("sources:\n  - { name: door, input: /dev/video0 }\n", origin: "m.yaml").mqtt)
    }

    func testDefaults() throws {
        let mqtt = try XCTUnwrap(try parse("  host: broker.lan").mqtt)
        XCTAssertEqual(mqtt.host, "broker.lan")
        XCTAssertEqual(mqtt.port, 1883)
        XCTAssertTrue(mqtt.clientID.hasPrefix("sightline-"), mqtt.clientID)
        XCTAssertEqual(mqtt.topicPrefix, "sightline")
        XCTAssertNil(mqtt.username)
        XCTAssertNil(mqtt.password)
        XCTAssertNil(mqtt.tls)
        XCTAssertEqual(mqtt.keepaliveSeconds, 30)
        XCTAssertEqual(mqtt.eventsQoS, 1)
        XCTAssertFalse(mqtt.detections)
        XCTAssertNil(mqtt.detectionsMaxPerSecond)
        XCTAssertEqual(mqtt.statsIntervalSeconds, 10)
        XCTAssertTrue(mqtt.homeAssistant)
        XCTAssertEqual(mqtt.discoveryPrefix, "homeassistant")
        XCTAssertEqual(mqtt.queueLimit, 1000)
        XCTAssertNil(mqtt.labels)
    }

    func testEveryKeyWithThePasswordFromTheEnvironmentAndTLS() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["ca.pem", "client.pem", "client.key"] {
            try "x".write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let mqtt = try XCTUnwrap(try parse("""
              host: 10.0.0.5
              client_id: cam-host-1
              topic_prefix: site/hall
              username: cam
              password: ${MQTT_PASSWORD}
              tls: { ca_file: ca.pem, cert_file: client.pem, key_file: client.key }
              keepalive: 15
              qos: 2
              detections: true
              detections_max_per_second: 2.5
              stats_interval: 0
              homeassistant: false
              discovery_prefix: ha
              queue_limit: 50
              labels: [person, car]
            """, environment: ["MQTT_PASSWORD": "s3cret"], baseDirectory: dir.path).mqtt)
        XCTAssertEqual(mqtt, MQTTSettings(host: "10.0.0.5", port: 8883, clientID: "cam-host-1", topicPrefix: "site/hall",
                                          username: "cam", password: "s3cret",
                                          tls: .init(caFile: dir.appendingPathComponent("ca.pem").path,
                                                     certFile: dir.appendingPathComponent("client.pem").path,
                                                     keyFile: dir.appendingPathComponent("client.key").path),
                                          keepaliveSeconds: 15, eventsQoS: 2, detections: true, detectionsMaxPerSecond: 2.5,
                                          statsIntervalSeconds: nil, homeAssistant: false, discoveryPrefix: "ha", queueLimit: 50,
                                          labels: ["person", "car"]))
    }

    func testPasswordFileAndCredential() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "from-file\n".write(to: dir.appendingPathComponent("mqtt-password"), atomically: true, encoding: .utf8)
        let fromFile = try parse("  host: b\n  username: u\n  password_file: mqtt-password", baseDirectory: dir.path).mqtt
        XCTAssertEqual(fromFile?.password, "from-file")
        let fromCredential = try parse("  host: b\n  username: u\n  password: ${credential:mqtt-password}",
                                       environment: ["CREDENTIALS_DIRECTORY": dir.path]).mqtt
        XCTAssertEqual(fromCredential?.password, "from-file")
    }

    func testAPasswordWrittenInTheFileIsRefusedWithoutShowingIt() {
        let message = problems("  host: b\n  username: u\n  password: hunter2")
        XCTAssertEqual(message, "m.yaml:6: mqtt.password: must not be written in the config file: use ${credential:NAME} "
                       + "(systemd's LoadCredential=), ${NAME} (an environment variable) or password_file")
        XCTAssertFalse(message.contains("hunter2"))
    }

    func testProblemsNameKeyAndLine() {
        XCTAssertEqual(problems("""
              port: 70000
              topic_prefix: "a/+/b"
              qos: 3
              stats_interval: 0.5
              tls: { cert_file: /nonexistent/c.pem }
              password_file: /nonexistent/pw
              labels: [person, "a/b"]
              usernme: x
            """), """
            m.yaml:4: mqtt.host: missing: the broker's host name or address
            m.yaml:4: mqtt.port: must be between 1 and 65535, got 70000
            m.yaml:5: mqtt.topic_prefix: must be topic levels separated by '/', without '+', '#', empty levels or a leading '$', got "a/+/b"
            m.yaml:6: mqtt.qos: must be between 0 and 2, got 3
            m.yaml:7: mqtt.stats_interval: must be 0 (off) or between 1 and 86400 seconds, got 0.5
            m.yaml:8: mqtt.tls.ca_file: missing: the CA certificate (PEM) that signed the broker's
            m.yaml:8: mqtt.tls.cert_file: no such file /nonexistent/c.pem
            m.yaml:8: mqtt.tls: a client certificate needs both cert_file and key_file
            m.yaml:9: mqtt.password_file: no such file /nonexistent/pw
            m.yaml:10: mqtt.labels[1]: must not contain '/', '+' or '#', got "a/b"
            m.yaml:11: mqtt.usernme: unknown key (did you mean "username"?); known keys: host, port, client_id, topic_prefix, username, password, password_file, tls, keepalive, qos, detections, detections_max_per_second, stats_interval, homeassistant, discovery_prefix, queue_limit, labels
            """)
    }

    func testSourceNamesMustBeTopicLevels() {
        let message = problems("  host: b", sources: "  - { name: front/door, input: /dev/video0 }")
        XCTAssertTrue(message.contains("sources[0].name: \"front/door\" cannot be an MQTT topic level"), message)
    }

    func testAChangedSectionIsAppliedByAReload() throws {
        let before = try parse("  host: b\n  topic_prefix: one")
        let after = try parse("  host: b\n  topic_prefix: two")
        let changes = before.changes(to: after)
        XCTAssertEqual(changes.changed, ["mqtt"])
        XCTAssertEqual(changes.needsRestart, [])
        XCTAssertEqual(changes.restarted, [])
    }
}
