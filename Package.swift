// swift-tools-version: 6.1
import Foundation
import PackageDescription

let package = Package(
    name: "Sightline",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sightline", targets: ["sightline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // Only what the server needs: no swift-configuration support.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // C libraries enter through these targets and nowhere else.
        .systemLibrary(name: "CFFmpeg", path: "Sources/CFFmpeg"),
        .systemLibrary(name: "CV4L2", path: "Sources/CV4L2"),
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "CMosquitto", path: "Sources/CMosquitto"),

        // Plain values every stage shares (frames, pixel buffers, detections, the `Record` schema); depends on nothing.
        .target(name: "Values"),
        .target(name: "Capture", dependencies: ["CFFmpeg", "CV4L2", "Values"]),
        .target(name: "FrameRing", dependencies: ["Values"]),
        .target(name: "Detector", dependencies: ["CDNNL", "Values"]),
        .target(name: "Sink", dependencies: ["Values"]),
        .target(name: "Tracking", dependencies: ["Values"]),
        .target(name: "Annotate", dependencies: ["CFFmpeg", "Values"]),
        .target(name: "MQTT", dependencies: ["CMosquitto", "Values", .product(name: "Logging", package: "swift-log")]),
        .target(name: "HTTP", dependencies: [
            "Annotate", "Capture", "Detector", "Sink", "Tracking", "Values",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Daemon", dependencies: [
            "Capture", "FrameRing", "Detector", "Sink", "Tracking", "MQTT", "HTTP", "Values",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "sightline", dependencies: [
            "Daemon", "Detector", "Capture", "FrameRing", "Tracking", "Annotate", "Values",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "ValuesTests", dependencies: ["Values", "TestSupport"]),
        .testTarget(name: "CaptureTests", dependencies: ["Capture", "Values", "TestSupport"]),
        .testTarget(name: "DetectorTests", dependencies: ["Detector", "Capture", "Values", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "FrameRingTests", dependencies: ["FrameRing", "Sink", "Values"]),
        .testTarget(name: "AnnotateTests", dependencies: ["Annotate", "Capture", "Values"]),
        .testTarget(name: "SinkTests", dependencies: ["Sink", "Values"]),
        .testTarget(name: "TrackingTests", dependencies: ["Tracking", "Values"]),
        .testTarget(name: "MQTTTests", dependencies: ["MQTT", "TestSupport"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "Detector", "Sink", "Tracking", "HTTP", "Values", "TestSupport"]),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "Capture", "Detector", "Sink", "Tracking", "Values", "TestSupport"]),
        .testTarget(name: "SightlineTests", dependencies: ["TestSupport"]),
    ]
)

// libFuzzer harnesses (fuzz/README.md): only with SIGHTLINE_FUZZ set, as scripts/fuzz.sh builds them
// (`--sanitize fuzzer --sanitize address`, their own scratch path), never in the normal build.
if ProcessInfo.processInfo.environment["SIGHTLINE_FUZZ"] != nil {
    for (name, module) in [("FuzzModel", "Detector"), ("FuzzLabels", "Detector"), ("FuzzSidecar", "Detector"), ("FuzzConfig", "Daemon")] {
        package.targets.append(.executableTarget(name: name, dependencies: [.target(name: module)], path: "fuzz/Sources/\(name)",
                                                 swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    }
}
