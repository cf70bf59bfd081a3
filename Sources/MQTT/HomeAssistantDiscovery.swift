/// Home Assistant MQTT discovery: one retained config message per entity under
/// `<discovery_prefix>/<component>/<node_id>/<object_id>/config`, all entities grouped under one device per
/// Sightline instance, each available while `<prefix>/available` reads `online` (the Last Will topic).
public struct HomeAssistantDiscovery: Sendable, Equatable {
    public struct Message: Sendable, Equatable {
        public var topic: String
        /// Empty: removes the entity (what Home Assistant expects for a source that went away).
        public var payload: String
    }

    let settings: MQTTSettings
    let version: String
    let topics: Topics
    /// `node_id` and the device's identifier: the client id, which is unique per broker, in the characters allowed.
    let node: String

    public init(settings: MQTTSettings, version: String) {
        self.settings = settings
        self.version = version
        topics = Topics(prefix: settings.topicPrefix)
        node = Self.identifier(settings.clientID)
    }

    /// Per source a connectivity sensor, and per source and label an occupancy binary_sensor and a count sensor.
    public func configs(sources: [String], labels: [String]) -> [Message] {
        sources.flatMap { source in
            [message("binary_sensor", "\(source)_connectivity", entity(
                name: "\(source) connectivity", uniqueSuffix: "\(source)_connectivity", stateTopic: topics.state(source),
                deviceClass: "connectivity", valueTemplate: "{{ 'ON' if value_json.state == 'up' else 'OFF' }}",
                payloadOn: "ON", payloadOff: "OFF", attributesTopic: topics.state(source)))]
            + labels.flatMap { label in
                [message("binary_sensor", "\(source)_\(label)_occupancy", entity(
                    name: "\(source) \(label) occupancy", uniqueSuffix: "\(source)_\(label)_occupancy",
                    stateTopic: topics.count(source, label), deviceClass: "occupancy",
                    valueTemplate: "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}", payloadOn: "ON", payloadOff: "OFF")),
                 message("sensor", "\(source)_\(label)_count", entity(
                    name: "\(source) \(label) count", uniqueSuffix: "\(source)_\(label)_count",
                    stateTopic: topics.count(source, label), stateClass: "measurement", valueTemplate: "{{ value | int(0) }}"))]
            }
        }
    }

    /// Empty retained payloads that remove the entities `configs(sources:labels:)` made for `sources`.
    public func removals(sources: [String], labels: [String]) -> [Message] {
        configs(sources: sources, labels: labels).map { Message(topic: $0.topic, payload: "") }
    }

    private func message(_ component: String, _ objectID: String, _ entity: Entity) -> Message {
        Message(topic: "\(settings.discoveryPrefix)/\(component)/\(node)/\(Self.identifier(objectID))/config",
                payload: PayloadJSON.encode(entity))
    }

    private func entity(name: String, uniqueSuffix: String, stateTopic: String, deviceClass: String? = nil,
                        stateClass: String? = nil, valueTemplate: String, payloadOn: String? = nil, payloadOff: String? = nil,
                        attributesTopic: String? = nil) -> Entity {
        Entity(name: name, unique_id: "\(node)_\(Self.identifier(uniqueSuffix))", state_topic: stateTopic,
               device_class: deviceClass, state_class: stateClass, value_template: valueTemplate,
               payload_on: payloadOn, payload_off: payloadOff, json_attributes_topic: attributesTopic,
               availability_topic: topics.available, payload_available: "online", payload_not_available: "offline",
               device: Device(identifiers: [node], name: "Sightline \(settings.clientID)", manufacturer: "Sightline",
                              model: "Sightline video object detection", sw_version: version),
               origin: Origin(name: "Sightline", sw_version: version))
    }

    /// Home Assistant allows `[a-zA-Z0-9_-]` in node and object ids; anything else becomes `_`.
    static func identifier(_ text: String) -> String {
        String(text.unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", "-": Character(scalar)
            default: "_"
            }
        })
    }

    // Keys as Home Assistant spells them; nil fields are left out.
    private struct Entity: Encodable {
        var name: String
        var unique_id: String
        var state_topic: String
        var device_class: String?
        var state_class: String?
        var value_template: String
        var payload_on: String?
        var payload_off: String?
        var json_attributes_topic: String?
        var availability_topic: String
        var payload_available: String
        var payload_not_available: String
        var device: Device
        var origin: Origin
    }

    private struct Device: Encodable {
        var identifiers: [String]
        var name: String
        var manufacturer: String
        var model: String
        var sw_version: String
    }

    private struct Origin: Encodable {
        var name: String
        var sw_version: String
    }
}
