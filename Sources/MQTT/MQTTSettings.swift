/// The `mqtt:` section of the configuration (docs/CONFIG.md, docs/MQTT.md), already checked by the config reader.
public struct MQTTSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Unique per broker: a second client with the same id disconnects the first.
    public var clientID: String
    /// First level of every topic; one per host when several share a broker (docs/DEPLOYMENT.md).
    public var topicPrefix: String
    public var username: String?
    /// From the environment or a credential file (`${NAME}`, `${credential:NAME}`), never literal in the file.
    public var password: String?
    public var tls: TLS?
    public var keepaliveSeconds: Int
    /// QoS of `object_start`/`object_end` on `<prefix>/<source>/events` (0, 1 or 2).
    public var eventsQoS: Int
    /// Per-frame records on `<prefix>/<source>/detections`: off by default, they are most of the traffic.
    public var detections: Bool
    /// At most this many detections messages per source and second; nil: every record.
    public var detectionsMaxPerSecond: Double?
    /// Seconds between `<prefix>/stats` messages; nil: none.
    public var statsIntervalSeconds: Double?
    public var homeAssistant: Bool
    /// Home Assistant's discovery prefix (its default is `homeassistant`).
    public var discoveryPrefix: String
    /// Messages held while the broker is away; beyond it the oldest are dropped (and counted).
    public var queueLimit: Int
    /// Labels that get Home Assistant entities and retained counts; nil: every label of the model.
    public var labels: [String]?

    public struct TLS: Sendable, Equatable {
        public var caFile: String
        public var certFile: String?
        public var keyFile: String?
        public init(caFile: String, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    public static let defaultPort = 1883
    public static let defaultTLSPort = 8883

    public init(host: String, port: Int = MQTTSettings.defaultPort, clientID: String, topicPrefix: String = "sightline",
                username: String? = nil, password: String? = nil, tls: TLS? = nil, keepaliveSeconds: Int = 30,
                eventsQoS: Int = 1, detections: Bool = false, detectionsMaxPerSecond: Double? = nil,
                statsIntervalSeconds: Double? = 10, homeAssistant: Bool = true, discoveryPrefix: String = "homeassistant",
                queueLimit: Int = 1000, labels: [String]? = nil) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.topicPrefix = topicPrefix
        self.username = username
        self.password = password
        self.tls = tls
        self.keepaliveSeconds = keepaliveSeconds
        self.eventsQoS = eventsQoS
        self.detections = detections
        self.detectionsMaxPerSecond = detectionsMaxPerSecond
        self.statsIntervalSeconds = statsIntervalSeconds
        self.homeAssistant = homeAssistant
        self.discoveryPrefix = discoveryPrefix
        self.queueLimit = queueLimit
        self.labels = labels
    }
}
