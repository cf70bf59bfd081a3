import Foundation
import MQTT
import Yams

/// The `mqtt:` section (docs/CONFIG.md, docs/MQTT.md).
extension ConfigReader {
    static let mqttKeys = ["host", "port", "client_id", "topic_prefix", "username", "password", "password_file", "tls",
                           "keepalive", "qos", "detections", "detections_max_per_second", "stats_interval", "homeassistant",
                           "discovery_prefix", "queue_limit", "labels"]
    static let mqttTLSKeys = ["ca_file", "cert_file", "key_file"]

    mutating func mqtt(_ node: Node, _ path: String) -> MQTTSettings? {
        guard !node.isNull, let fields = mapping(node, path, keys: Self.mqttKeys) else { return nil }
        let count = problems.count
        var settings = MQTTSettings(host: "", clientID: Self.defaultClientID())
        if let node = fields["host"], let value = string(node, "\(path).host") { settings.host = value }
        if fields["host"] == nil { problem(node, "\(path).host", "missing: the broker's host name or address") }
        if let node = fields["tls"], !node.isNull, let fields = mapping(node, "\(path).tls", keys: Self.mqttTLSKeys) {
            var tls = MQTTSettings.TLS(caFile: "")
            if let node = fields["ca_file"], let value = readablePath(node, "\(path).tls.ca_file") { tls.caFile = value }
            if fields["ca_file"] == nil { problem(node, "\(path).tls.ca_file", "missing: the CA certificate (PEM) that signed the broker's") }
            tls.certFile = fields["cert_file"].flatMap { readablePath($0, "\(path).tls.cert_file") }
            tls.keyFile = fields["key_file"].flatMap { readablePath($0, "\(path).tls.key_file") }
            if (fields["cert_file"] == nil) != (fields["key_file"] == nil) {
                problem(node, "\(path).tls", "a client certificate needs both cert_file and key_file")
            }
            settings.tls = tls
            settings.port = MQTTSettings.defaultTLSPort
        }
        if let node = fields["port"], let value = integer(node, "\(path).port", in: 1...65_535) { settings.port = value }
        if let node = fields["client_id"], let value = string(node, "\(path).client_id") {
            if value.utf8.count > 65_535 || value.contains(where: { $0.isNewline }) {
                problem(node, "\(path).client_id", "must be one line of at most 65535 bytes")
            } else {
                settings.clientID = value
            }
        }
        if let node = fields["topic_prefix"], let value = string(node, "\(path).topic_prefix") {
            if Topics.isValidPrefix(value) {
                settings.topicPrefix = value
            } else {
                problem(node, "\(path).topic_prefix", "must be topic levels separated by '/', without '+', '#', empty levels or a leading '$', got \"\(value)\"")
            }
        }
        if let node = fields["discovery_prefix"], let value = string(node, "\(path).discovery_prefix") {
            if Topics.isValidPrefix(value) {
                settings.discoveryPrefix = value
            } else {
                problem(node, "\(path).discovery_prefix", "must be topic levels separated by '/', without wildcards, got \"\(value)\"")
            }
        }
        if let node = fields["username"], let value = string(node, "\(path).username") { settings.username = value }
        settings.password = password(fields, path)
        if settings.password != nil && settings.username == nil {
            problem(node, "\(path).username", "missing: a password is sent with a username")
        }
        if let node = fields["keepalive"], let value = integer(node, "\(path).keepalive", in: 5...65_535) {
            settings.keepaliveSeconds = value
        }
        if let node = fields["qos"], let value = integer(node, "\(path).qos", in: 0...2) { settings.eventsQoS = value }
        if let node = fields["detections"], let value = boolean(node, "\(path).detections") { settings.detections = value }
        if let node = fields["detections_max_per_second"], !node.isNull, let value = rate(node, "\(path).detections_max_per_second") {
            settings.detectionsMaxPerSecond = value
        }
        if let node = fields["stats_interval"], let value = number(node, "\(path).stats_interval") {
            if value == 0 {
                settings.statsIntervalSeconds = nil
            } else if (1...86_400).contains(value) {
                settings.statsIntervalSeconds = value
            } else {
                problem(node, "\(path).stats_interval", "must be 0 (off) or between 1 and 86400 seconds, got \(format(value))")
            }
        }
        if let node = fields["homeassistant"], let value = boolean(node, "\(path).homeassistant") { settings.homeAssistant = value }
        if let node = fields["queue_limit"], let value = integer(node, "\(path).queue_limit", in: ConfigLimits.queueLimit) {
            settings.queueLimit = value
        }
        if let node = fields["labels"], !node.isNull {
            if case .sequence(let items) = node {
                let labels = items.enumerated().compactMap { index, item in string(item, "\(path).labels[\(index)]") }
                for (index, label) in labels.enumerated() where !Topics.isValidLevel(label) {
                    problem(items[index], "\(path).labels[\(index)]", "must not contain '/', '+' or '#', got \"\(label)\"")
                }
                settings.labels = labels
            } else {
                problem(node, "\(path).labels", "must be a list of labels, such as [person, car], got \(kind(node))")
            }
        }
        return problems.count == count ? settings : nil
    }

    /// `password` must come from outside the file (`${NAME}`, `${credential:NAME}`), or `password_file` names a file.
    private mutating func password(_ fields: [String: Node], _ path: String) -> String? {
        if let node = fields["password"], let written = nonNullScalar(node, "\(path).password") {
            guard written.contains("${") else {
                problem(node, "\(path).password", "must not be written in the config file: use ${credential:NAME} (systemd's "
                            + "LoadCredential=), ${NAME} (an environment variable) or password_file")
                return nil
            }
            if fields["password_file"] != nil { problem(node, "\(path).password", "give password or password_file, not both") }
            return substitute(written, node, "\(path).password")
        }
        guard let node = fields["password_file"], let file = self.path(node, "\(path).password_file") else { return nil }
        return secret(inFile: file, node, "\(path).password_file")
    }

    /// A file that exists and can be read (resolved against the config's directory).
    private mutating func readablePath(_ node: Node, _ keyPath: String) -> String? {
        guard let file = path(node, keyPath) else { return nil }
        guard FileManager.default.isReadableFile(atPath: file) else {
            problem(node, keyPath, FileManager.default.fileExists(atPath: file) ? "cannot read \(file)" : "no such file \(file)")
            return nil
        }
        return file
    }

    /// `sightline-<host name>`: unique per host, as a broker needs (a second client with the same id replaces the first).
    static func defaultClientID() -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0 ? String(cString: name) : "localhost"
        return "sightline-\(host)"
    }
}
